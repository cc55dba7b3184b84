"""call_csv: hosted phone systems' call logs (presets and a columns mapping), stored for real."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config_file import ConfigError
from tests.connectors.store import calls, inquiries, messages, open_store, poll, tally

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def epoch(minutes: float) -> str:
    return str(int(T0.timestamp() + minutes * 60))


def write(path: Path, *rows: str | bytes) -> Path:
    path.write_bytes(b"".join((r if isinstance(r, bytes) else r.encode()) + b"\n" for r in rows))
    return path


AIRCALL_HEADER = (
    "id,direction,started_at,answered_at,ended_at,raw_digits,missed_call_reason,voicemail"
)
AIRCALL_DAY = [
    AIRCALL_HEADER,
    f"1,inbound,{epoch(0)},{epoch(0.5)},{epoch(5)},+44 20 7946 0001,,",  # answered in 30 s
    f"2,inbound,{epoch(60)},{epoch(66)},{epoch(70)},+44 20 7946 0002,,",  # 6 min: warn
    f"3,inbound,{epoch(120)},{epoch(134)},{epoch(140)},+44 20 7946 0003,,",  # 14 min: max
    f"4,inbound,{epoch(180)},,{epoch(182)},+44 20 7946 0004,short_abandoned,",
    f"5,inbound,{epoch(240)},,{epoch(241)},+44 20 7946 0005,agents_did_not_answer,"
    "https://example.invalid/vm/5",
    f"6,inbound,{epoch(300)},,{epoch(300)},+44 20 7946 0006,no_available_agent,",
    f"7,inbound,{epoch(330)},,{epoch(331)},anonymous,abandoned_in_ivr,",
    f"8,outbound,{epoch(400)},{epoch(400.2)},{epoch(405)},+44 20 7946 0005,,",  # calls back 5
]


def aircall(**extra: object) -> dict[str, object]:
    return {"name": "aircall", "kind": "call_csv", "path": "calls.csv", "preset": "aircall"} | extra


def test_an_aircall_day_gives_outcomes_waits_breaches_and_callbacks(tmp_path: Path) -> None:
    write(tmp_path / "calls.csv", *AIRCALL_DAY)
    settings, engine = open_store(tmp_path, [aircall(queue="main line")])
    result = poll(engine, settings, "aircall")
    assert result.rejected == 0
    found = {k: (r.outcome, r.wait_seconds) for k, r in calls(engine).items()}
    assert found == {
        "call:1": ("answered", 30),
        "call:2": ("answered", 360),
        "call:3": ("answered", 840),
        "call:4": ("abandoned", 120),
        "call:5": ("timeout", 60),
        "call:6": ("exit_empty", 0),
        "call:7": ("abandoned", 60),
    }
    assert {r.queue for r in calls(engine).values()} == {"main line"}
    assert tally(engine, "support_hold_breaches_total", threshold="warn") == 2
    assert tally(engine, "support_hold_breaches_total", threshold="max") == 1
    # Aircall's short_abandoned is a short abandon: abandoned, but no callback is owed
    assert [k for k, r in calls(engine).items() if r.short_abandon] == ["call:4"]
    status = {i.conversation: (i.channel, i.status, i.response_seconds) for i in inquiries(engine)}
    assert status == {
        "tel:079460005": ("voicemail", "answered", (400 - 241) * 60),
        "tel:079460006": ("voicemail", "open", None),
    }


def test_an_export_saved_again_as_a_new_file_adds_nothing(tmp_path: Path) -> None:
    write(tmp_path / "calls.csv", *AIRCALL_DAY)
    settings, engine = open_store(tmp_path, [aircall()])
    poll(engine, settings, "aircall")
    (tmp_path / "calls.csv").unlink()  # the next day's download replaces it: a new inode
    write(tmp_path / "calls.csv", *AIRCALL_DAY, f"9,inbound,{epoch(500)},{epoch(501)},,0207,,")
    again = poll(engine, settings, "aircall")
    assert (again.calls, again.messages) == (1, 0)


THREECX_FIELDS = ["historyid", "time-start", "time-answered", "time-end", "from-no", "to-no"]


def test_the_3cx_preset_reads_the_headerless_cdr_in_the_configured_field_order(
    tmp_path: Path,
) -> None:
    rows = [
        "h1,2026/11/20 09:00:00,2026/11/20 09:00:20,2026/11/20 09:05:00,02079460001,100",
        "h2,2026/11/20 09:10:00,,2026/11/20 09:16:00,02079460002,100",
        "h3,2026/11/20 09:30:00,2026/11/20 09:30:05,2026/11/20 09:31:00,100,02079460002",
        "h4,2026/11/20 09:40:00,2026/11/20 09:40:05,2026/11/20 09:41:00,100,101",  # internal
    ]
    write(tmp_path / "cdr.log", *rows)
    entry = {
        "name": "3cx",
        "kind": "call_csv",
        "path": "cdr.log",
        "preset": "3cx",
        "fields": THREECX_FIELDS,
        "timezone": "Europe/Berlin",
    }
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "3cx").rejected == 0
    found = {k: (r.outcome, r.wait_seconds) for k, r in calls(engine).items()}
    assert found == {"call:h1": ("answered", 20), "call:h2": ("abandoned", 360)}
    assert calls(engine)["call:h1"].entered_at.replace(tzinfo=UTC) == T0  # 09:00 in Berlin
    (inquiry,) = inquiries(engine)
    assert (inquiry.status, inquiry.response_seconds) == ("answered", 14 * 60)
    assert messages(engine)["out:h3"].side == "agent"


def test_a_columns_mapping_with_a_wait_column_a_time_format_and_outcomes(tmp_path: Path) -> None:
    rows = [
        "Call;Started;Queue;Hold;From;Result",
        "a;20/11/2026 09:00;Sales;45;02079460001;Connected",
        "b;20/11/2026 09:10;Support;400;02079460002;Caller hung up",
        "c;20/11/2026 09:20;;800;02079460003;Voicemail",
    ]
    write(tmp_path / "log.csv", *(r.replace(";", ",") for r in rows))
    entry = {
        "name": "pbx",
        "kind": "call_csv",
        "path": "log.csv",
        "columns": {
            "id": "Call",
            "entered": "Started",
            "queue": "Queue",
            "wait": "Hold",
            "caller": "From",
            "outcome": "Result",
        },
        "time_format": ["%d/%m/%Y %H:%M"],
        "timezone": "UTC",
        "outcomes": {
            "connected": "answered",
            "caller hung up": "abandoned",
            "voicemail": "voicemail",
        },
    }
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "pbx").rejected == 0
    found = {k: (r.queue, r.outcome, r.wait_seconds) for k, r in calls(engine).items()}
    assert found == {
        "call:a": ("Sales", "answered", 45),
        "call:b": ("Support", "abandoned", 400),
        "call:c": ("calls", "timeout", 800),
    }
    assert {i.conversation for i in inquiries(engine)} == {"tel:079460002", "tel:079460003"}


def test_bad_lines_are_skipped_with_counted_located_reasons(tmp_path: Path) -> None:
    rows: list[str | bytes] = [
        AIRCALL_HEADER,
        f"1,inbound,{epoch(0)},{epoch(0.5)},{epoch(5)},02079460001,,",
        f"2,inbound,,,{epoch(5)},02079460002,,",  # line 3: no start
        "3,inbound,1",  # line 4: wrong column count
        "9" * (1024 * 1024 + 1),  # line 5: a 1 MB line
        b"\x00\x00\xff junk",  # line 6
        f"6,inbound,{epoch(9)},,{epoch(10)},0207946\xff\xfe,,".encode("latin-1"),  # line 7
        f"7,sideways,{epoch(9)},,{epoch(10)},02079460007,,",  # line 8: unknown direction
        f"8,inbound,{epoch(9)},,{epoch(10)},02079460008,fell_asleep,",  # line 9: unknown outcome
        f"9,inbound,{epoch(20)},,{epoch(21)},02079460009,short_abandoned,",
    ]
    write(tmp_path / "calls.csv", *rows)
    settings, engine = open_store(tmp_path, [aircall()])
    result = poll(engine, settings, "aircall")
    reasons = {r.location: r.reason for r in result.rejections}
    assert result.rejected == 7 == len(reasons)
    assert reasons["calls.csv:3"] == "missing started_at"
    assert reasons["calls.csv:4"] == "expected 8 columns, got 3"
    assert "longer than the limit" in reasons["calls.csv:5"]
    assert reasons["calls.csv:6"].startswith("binary data")
    assert reasons["calls.csv:7"].startswith("invalid UTF-8 in raw_digits")
    assert reasons["calls.csv:8"].startswith("unknown direction")
    assert reasons["calls.csv:9"].startswith("unknown outcome")
    assert set(calls(engine)) == {"call:1", "call:9"}


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"columns": {"caller": "From"}}, "'entered'"),
        ({"columns": {"entered": "a", "colour": "b"}}, "unknown column key 'colour'"),
        ({"preset": "3cx", "fields": None, "header": False, "columns": {"entered": "x"}}, None),
        ({"columns": {"entered": "a"}, "header": False}, "needs `fields:`"),
        ({"preset": "nortel"}, "preset"),
    ],
)
def test_settings_are_checked(
    tmp_path: Path, entry: dict[str, object], problem: str | None
) -> None:
    raw = {"name": "x", "kind": "call_csv", "path": "c.csv"} | entry
    if problem is None:
        open_store(tmp_path, [raw])  # the preset's documented field order is the default
        return
    with pytest.raises(ConfigError, match=problem):
        open_store(tmp_path, [raw])


def test_a_spreadsheet_saved_freeswitch_cdr_is_read_through_fields_and_columns(
    tmp_path: Path,
) -> None:
    # mod_cdr_csv's "example" template, re-saved by a spreadsheet: no quotes, no seconds.
    rows = [
        ",02079460001,1002,default,2020/2/10 22:41,,2020/2/10 22:42,62,0,NO_USER_RESPONSE,u1,,,,",
        "Dana,02079460002,1002,default,2020/2/10 22:40,2020/2/10 22:40,2020/2/10 22:41,64,61,"
        "NORMAL_CLEARING,u2,,1002,PCMU,PCMU",
    ]
    write(tmp_path / "Master.csv", *rows)
    fields = (
        "caller_id_name caller_id_number destination_number context start_stamp answer_stamp "
        "end_stamp duration billsec hangup_cause uuid bleg_uuid accountcode read_codec write_codec"
    ).split()
    entry = {
        "name": "freeswitch",
        "kind": "call_csv",
        "path": "Master.csv",
        "header": False,
        "fields": fields,
        "columns": {
            "id": "uuid",
            "entered": "start_stamp",
            "answered": "answer_stamp",
            "ended": "end_stamp",
            "talk": "billsec",
            "caller": "caller_id_number",
            "callee": "destination_number",
        },
        "timezone": "Asia/Shanghai",
    }
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "freeswitch").rejected == 0
    found = {k: (r.outcome, r.wait_seconds, r.talk_seconds) for k, r in calls(engine).items()}
    assert found == {"call:u1": ("abandoned", 60, 0), "call:u2": ("answered", 0, 61)}
    assert calls(engine)["call:u2"].entered_at.replace(tzinfo=UTC) == datetime(
        2020, 2, 10, 14, 40, tzinfo=UTC
    )
