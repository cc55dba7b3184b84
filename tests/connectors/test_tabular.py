"""The tabular reading layer every tabular phone kind shares (connectors.tabular): columns,
split times, durations, derived waits, a fixed direction; read through real sources."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config_file import ConfigError
from tests.connectors.store import calls, inquiries, messages, open_store, poll


def write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def call_log(**extra: object) -> dict[str, object]:
    return {"name": "log", "kind": "call_csv", "path": "calls.csv", **extra}


def test_a_time_split_over_a_date_and_a_time_column_and_durations_as_h_mm_ss(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "calls.csv",
        "Date,Time,From,Hold,Talk,Result",
        "20/11/2026,09:00:00,02079460001,0:00:45,0:04:10,ok",
        "20/11/2026,09:30:00,02079460002,1:02:03,,gone",
    )
    entry = call_log(
        columns={
            "entered": ["Date", "Time"],
            "caller": "From",
            "wait": "Hold",
            "talk": "Talk",
            "outcome": "Result",
        },
        time_format=["%d/%m/%Y %H:%M:%S"],
        timezone="Europe/Berlin",
        outcomes={"ok": "answered", "gone": "abandoned"},
    )
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "log").rejected == 0
    stored = sorted(calls(engine).values(), key=lambda r: r.entered_at)
    assert [(r.outcome, r.wait_seconds, r.talk_seconds) for r in stored] == [
        ("answered", 45, 250),
        ("abandoned", 3723, None),
    ]
    assert stored[0].entered_at.replace(tzinfo=UTC) == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def test_a_split_time_with_one_half_missing_is_a_located_rejection(tmp_path: Path) -> None:
    write(tmp_path / "calls.csv", "Date,Time,From", "20/11/2026,,02079460001")
    entry = call_log(columns={"entered": ["Date", "Time"], "caller": "From"})
    settings, engine = open_store(tmp_path, [entry])
    from monitor.store.ingest import poll_source

    result = poll_source(engine, settings, settings.sources[0], now=datetime.now(UTC))
    assert [str(r) for r in result.rejections] == ["calls.csv:2: missing Time"]


def test_the_wait_is_duration_less_billable_seconds_when_the_times_lost_their_seconds(
    tmp_path: Path,
) -> None:
    """A spreadsheet re-save cut the times to minutes (answered − entered reads 0); duration −
    billsec still says 3 s before the answer, and 62 s for a call nobody answered."""
    write(
        tmp_path / "Master.csv",
        "Dana,02079460001,1002,default,2020/2/10 22:40,2020/2/10 22:40,2020/2/10 22:41,64,61,"
        "NORMAL_CLEARING,u2,,1002,PCMU,PCMU",
        ",02079460003,1002,default,2020/2/10 22:41,,2020/2/10 22:42,62,0,NO_USER_RESPONSE,u1,,,,",
    )
    entry = call_log(
        path="Master.csv", preset="freeswitch", direction="inbound", timezone="Asia/Shanghai"
    )
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "log").rejected == 0
    found = {k: (r.outcome, r.wait_seconds, r.talk_seconds) for k, r in calls(engine).items()}
    assert found == {"call:u2": ("answered", 3, 61), "call:u1": ("abandoned", 62, None)}


def test_without_a_wait_or_duration_the_wait_is_from_the_times(tmp_path: Path) -> None:
    write(
        tmp_path / "calls.csv",
        "Start,Answer,End,From",
        "2026-11-20T09:00:00Z,2026-11-20T09:00:20Z,2026-11-20T09:05:00Z,02079460001",
        "2026-11-20T09:10:00Z,,2026-11-20T09:16:00Z,02079460002",
        "2026-11-20T09:20:00Z,,,02079460003",
    )
    entry = call_log(
        columns={"entered": "Start", "answered": "Answer", "ended": "End", "caller": "From"}
    )
    settings, engine = open_store(tmp_path, [entry])
    result = poll(engine, settings, "log")
    assert [str(r) for r in result.rejections] == [
        "calls.csv:4: no wait: map `wait`, `duration` and `billable`, or `answered` and `ended`"
    ]
    waits = sorted((r.outcome, r.wait_seconds) for r in calls(engine).values())
    assert waits == [("abandoned", 360), ("answered", 20)]


def test_a_duration_without_an_end_time_gives_the_end(tmp_path: Path) -> None:
    write(
        tmp_path / "calls.csv",
        "Start,Length,Billable,From",
        "2026-11-20T09:00:00Z,95,80,02079460001",
    )
    entry = call_log(
        columns={"entered": "Start", "duration": "Length", "billable": "Billable", "caller": "From"}
    )
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "log").rejected == 0
    (call,) = calls(engine).values()
    assert (call.outcome, call.wait_seconds, call.talk_seconds) == ("answered", 15, 80)
    assert call.answered_at.replace(tzinfo=UTC) == datetime(2026, 11, 20, 9, 0, 15, tzinfo=UTC)
    assert call.left_at.replace(tzinfo=UTC) == datetime(2026, 11, 20, 9, 1, 35, tzinfo=UTC)


def test_a_fixed_direction_makes_every_call_of_a_file_inbound(tmp_path: Path) -> None:
    """Short numbers on both sides would be taken as internal; the source says the file is all
    inbound, whatever its direction column says."""
    write(
        tmp_path / "calls.csv",
        "Start,End,From,To,Way",
        "2026-11-20T09:00:00Z,2026-11-20T09:01:00Z,1002,&,out",
    )
    entry = call_log(
        columns={"entered": "Start", "ended": "End", "caller": "From", "callee": "To",
                 "direction": "Way"},
        direction="inbound",
    )  # fmt: skip
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "log").rejected == 0
    (call,) = calls(engine).values()
    assert (call.outcome, call.wait_seconds) == ("abandoned", 60)


def test_column_names_match_ignoring_case_when_only_one_column_matches(tmp_path: Path) -> None:
    write(
        tmp_path / "calls.csv",
        "START,END,from,FROM_NAME",
        "2026-11-20T09:00:00Z,2026-11-20T09:01:00Z,02079460001,Dana",
    )
    entry = call_log(columns={"entered": "Start", "ended": "End", "caller": "From"})
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "log").rejected == 0
    assert [r.caller for r in calls(engine).values()] == ["02079460001"]

    (tmp_path / "twice").mkdir()
    write(tmp_path / "twice" / "calls.csv", "Start,End,From,from", "2026-11-20T09:00:00Z,,1,2")
    entry = call_log(columns={"entered": "Start", "ended": "End", "caller": "FROM"})
    settings, engine = open_store(tmp_path / "twice", [entry])
    from monitor.store.ingest import poll_source

    result = poll_source(engine, settings, settings.sources[0], now=datetime.now(UTC))
    assert [r.reason for r in result.rejections] == ["the header has no column 'FROM'"]


def test_a_named_column_the_file_lacks_rejects_every_row_a_presets_is_not_read(
    tmp_path: Path,
) -> None:
    """The freeswitch preset's `waitsec` is not in the example template: not read. A column the
    source itself names must be there: every row says which is missing."""
    write(
        tmp_path / "Master.csv",
        "Dana,02079460001,1002,default,2026-11-20 10:00:00,2026-11-20 10:00:05,"
        "2026-11-20 10:01:00,60,55,NORMAL_CLEARING,u1,,1002,PCMU,PCMU",
    )
    entry = call_log(path="Master.csv", preset="freeswitch", direction="inbound")
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "log").rejected == 0
    named = call_log(
        name="named",
        path="Master.csv",
        preset="freeswitch",
        direction="inbound",
        columns={"queue": "queue_name"},
    )
    (tmp_path / "monitor.db").unlink()
    settings, engine = open_store(tmp_path, [named])
    from monitor.store.ingest import poll_source

    result = poll_source(engine, settings, settings.sources[0], now=datetime.now(UTC))
    assert [str(r) for r in result.rejections] == [
        "Master.csv:1: the header has no column 'queue_name'"
    ]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"columns": {"entered": "a", "caller": ["b", "c"]}}, "caller takes one column"),
        ({"columns": {"entered": ["a"]}}, r"entered takes \[date column, time column\]"),
        ({"columns": {"entered": "a"}, "delimiter": ";;"}, "delimiter"),
        ({"columns": {"entered": "a"}, "direction": "sideways"}, "direction"),
        ({"columns": {"entered": ""}}, "entered names no column"),
    ],
)
def test_tabular_settings_are_checked(
    tmp_path: Path, entry: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        open_store(tmp_path, [call_log(**entry)])


def test_an_answering_service_log_with_the_time_in_two_columns(tmp_path: Path) -> None:
    write(
        tmp_path / "messages.csv",
        "Day;At;Number;Returned",
        "20.11.2026;09:00;+44 20 7946 0001;20.11.2026 09:25",
        "20.11.2026;10:00;+44 20 7946 0002;",
    )
    entry = {
        "name": "service",
        "kind": "answering_service_csv",
        "path": "messages.csv",
        "delimiter": ";",
        "columns": {
            "taken_at": ["Day", "At"],
            "callback_number": "Number",
            "callback_at": "Returned",
        },
        "time_format": ["%d.%m.%Y %H:%M"],
        "timezone": "Europe/London",
    }
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "service").rejected == 0
    status = {i.conversation: (i.status, i.response_seconds) for i in inquiries(engine)}
    assert status == {"tel:079460001": ("answered", 25 * 60), "tel:079460002": ("open", None)}
    assert len(messages(engine)) == 3


def test_an_answering_service_log_without_a_header_names_its_fields(tmp_path: Path) -> None:
    write(tmp_path / "messages.csv", "2026-11-20 09:00,+44 20 7946 0001,")
    entry = {
        "name": "service",
        "kind": "answering_service_csv",
        "path": "messages.csv",
        "header": False,
        "fields": ["taken_at", "callback_number", "callback_at"],
        "timezone": "UTC",
    }
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "service").rejected == 0
    (inquiry,) = inquiries(engine)
    assert inquiry.opened_at.replace(tzinfo=UTC) == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
