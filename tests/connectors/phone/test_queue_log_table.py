"""asterisk_queue_log, the table forms: the realtime table (SQLite, PostgreSQL) and a CSV export."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, create_engine

from monitor.config_file import settings_from_mapping
from monitor.measure.events import CallEvent, CallOutcome
from monitor.store.ingest import build_connector
from tests.connectors.store import aware, calls, open_store, poll
from tests.servers import PostgresServer

# Rows as Asterisk writes them with queue_log_realtime_use_gmt=no: Berlin wall-clock time.
ROWS = [
    ("2026-11-20 10:00:00.100000", "t.1", "support", "NONE", "ENTERQUEUE", "", "02079460001", "1"),
    ("2026-11-20 10:00:02.000000", "NONE", "support", "SIP/201", "PAUSE", "lunch", "", ""),
    ("2026-11-20 10:00:30.000000", "t.1", "support", "SIP/201", "CONNECT", "30", "t.9", "2"),
    ("2026-11-20 10:01:00.000000", "t.2", "support", "NONE", "ENTERQUEUE", "", "02079460002", "1"),
    ("2026-11-20 10:02:30.000000", "t.1", "support", "SIP/201", "COMPLETECALLER", "30", "120", "1"),
    ("2026-11-20 10:08:00.000000", "t.2", "support", "NONE", "ABANDON", "1", "1", "420"),
    ("2026-11-20 10:09:00.000000", "t.3", "support", "NONE", "ENTERQUEUE", "", "02079460003", "1"),
]  # fmt: skip
NOW = datetime(2026, 11, 20, 9, 12, tzinfo=UTC)  # 10:12 in Berlin


def make_table(url: str, *, split: bool = True, with_id: bool = True) -> Table:
    columns: list[Column[Any]] = [Column("id", Integer, primary_key=True)] if with_id else []
    columns += [Column("time", DateTime), Column("callid", String(40))]
    columns += [Column(n, String(40)) for n in ("queuename", "agent", "event")]
    if split:
        columns += [Column(f"data{n}", String(100)) for n in range(1, 6)]
    else:
        columns.append(Column("data", String(200)))
    table = Table("queue_log", MetaData(), *columns)
    engine = create_engine(url)
    table.create(engine)
    engine.dispose()
    return table


def insert(url: str, table: Table, rows: list[tuple[str, ...]]) -> None:
    names = [c.name for c in table.columns if c.name != "id"]
    split = "data1" in names
    values = []
    for time, callid, queue, agent, event, *data in rows:
        row: dict[str, Any] = {
            "time": datetime.fromisoformat(time),
            "callid": callid,
            "queuename": queue,
            "agent": agent,
            "event": event,
        }
        if split:
            row.update({f"data{n + 1}": value for n, value in enumerate(data)})
        else:
            row["data"] = "|".join(data)
        values.append(row)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(table.insert(), values)
    engine.dispose()


def table_source(url: str, **extra: object) -> dict[str, object]:
    return {
        "name": "queue",
        "kind": "asterisk_queue_log",
        "table_url": url,
        "timezone": "Europe/Berlin",
        **extra,
    }


def outcomes(folder: Path, engine: Any) -> dict[str, tuple[str, float | None]]:
    return {k.split("@")[0]: (r.outcome, r.wait_seconds) for k, r in calls(engine).items()}


EXPECTED = {"t.1": ("answered", 30.0), "t.2": ("abandoned", 420.0), "t.3": ("waiting", None)}


def check_table(tmp_path: Path, url: str, table: Table) -> None:
    insert(url, table, ROWS[:4])
    settings, engine = open_store(tmp_path, [table_source(url, every="1m")])
    poll(engine, settings, "queue", now=NOW)
    # t.1 is talking (answered, not ended): it is stored once it ends; t.2 is on hold
    assert outcomes(tmp_path, engine) == {"t.2": ("waiting", None)}
    insert(url, table, ROWS[4:])
    poll(engine, settings, "queue", now=NOW)
    assert outcomes(tmp_path, engine) == EXPECTED
    stored = {k.split("@")[0]: r for k, r in calls(engine).items()}
    assert aware(stored["t.1"].entered_at) == datetime(2026, 11, 20, 9, 0, 0, 100000, tzinfo=UTC)
    again = poll(engine, settings, "queue", now=NOW)
    assert again.calls == 0


def test_the_realtime_table_on_sqlite_in_local_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'asterisk.db'}"
    check_table(tmp_path, url, make_table(url))


def test_the_realtime_table_on_postgresql(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database(f"ast_{uuid.uuid4().hex[:12]}")
    check_table(tmp_path, url, make_table(url))


def test_a_table_with_one_data_column_and_no_id_in_utc(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'asterisk.db'}"
    table = make_table(url, split=False, with_id=False)
    insert(url, table, ROWS)
    settings = settings_from_mapping({"sources": [table_source(url, table_utc=True)]}, tmp_path)
    connector = build_connector(settings, settings.sources[0])
    events = [e for b in connector.fetch(None, NOW) for e in b.events]
    found = {e.external_id.split("@")[0]: e for e in events if isinstance(e, CallEvent)}
    assert found["t.2"].outcome is CallOutcome.ABANDONED
    assert found["t.1"].entered_at == datetime(2026, 11, 20, 10, 0, 0, 100000, tzinfo=UTC)


def test_a_missing_table_is_a_permanent_error_naming_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'asterisk.db'}"
    create_engine(url).connect().close()
    settings, engine = open_store(tmp_path, [table_source(url)])
    from monitor.store.ingest import poll_source

    result = poll_source(engine, settings, settings.sources[0], now=NOW)
    assert (result.error, result.permanent) == ("no table 'queue_log' in table_url", True)


def test_a_csv_export_of_the_table_is_read_with_its_header(tmp_path: Path) -> None:
    header = "id,time,callid,queuename,agent,event,data1,data2,data3,data4,data5"
    lines = [header] + [",".join([str(n), *row, "", ""]) for n, row in enumerate(ROWS[:5], start=1)]
    lines.insert(3, "99,not a time,t.x,support,NONE,ENTERQUEUE,,,,,")
    (tmp_path / "queue_log.csv").write_text("\n".join(lines) + "\n")
    source = {
        "name": "queue",
        "kind": "asterisk_queue_log",
        "path": "queue_log.csv",
        "format": "csv",
        "timezone": "Europe/Berlin",
    }
    settings, engine = open_store(tmp_path, [source])
    result = poll(engine, settings, "queue", now=NOW)
    assert [str(r) for r in result.rejections] == [
        "queue_log.csv:4: time is not a time in the configured formats (epoch, iso)"
    ]
    assert outcomes(tmp_path, engine) == {"t.1": ("answered", 30.0), "t.2": ("waiting", None)}
    with (tmp_path / "queue_log.csv").open("a") as handle:
        handle.write(",".join(["9", *ROWS[5], "", ""]) + "\n")
    poll(engine, settings, "queue", now=NOW)  # the header is remembered in the cursor
    assert outcomes(tmp_path, engine)["t.2"] == ("abandoned", 420.0)


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({}, "set exactly one of path"),
        ({"path": "q", "table_url": "sqlite://"}, "set exactly one of path"),
    ],
)
def test_a_source_reads_exactly_one_of_a_file_and_a_table(
    tmp_path: Path, settings_: dict[str, object], message: str
) -> None:
    with pytest.raises(Exception, match=message):
        settings_from_mapping(
            {"sources": [{"name": "q", "kind": "asterisk_queue_log", **settings_}]}, tmp_path
        )


def test_rows_stored_out_of_time_order_are_paired_in_time_order(tmp_path: Path) -> None:
    # Wazo's documented rows list CONNECT before its ENTERQUEUE; the table is read by time.
    url = f"sqlite:///{tmp_path / 'asterisk.db'}"
    table = make_table(url)
    insert(url, table, list(reversed(ROWS)))
    settings, engine = open_store(tmp_path, [table_source(url)])
    poll(engine, settings, "queue", now=NOW)
    assert outcomes(tmp_path, engine) == EXPECTED
