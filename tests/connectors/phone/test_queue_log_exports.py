"""asterisk_queue_log exports with columns of their own, psql's console tables, and `verbs:`."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config_file import ConfigError
from tests.connectors.store import NOW, calls, inquiries, messages, open_store, poll

T0 = int(datetime(2026, 11, 20, 14, 0, tzinfo=UTC).timestamp())
HEADER = (
    "uid,date_time,callid,queue_name,type,event,param1,param2,param3,entpos,expos,htime,ttime,time"
)


def row(
    uid: int, offset: int, callid: str, queue: str, member: str, event: str, *rest: object
) -> str:
    """One row as the table dump writes it: `rest` is param1..3, entpos, expos, htime, ttime;
    `time` is the local wall-clock time (UTC-5), the only quoted field."""
    params = [str(v) for v in rest] + [""] * (7 - len(rest))
    local = datetime.fromtimestamp(T0 + offset, UTC) - timedelta(hours=5)
    fields = [str(uid), str(T0 + offset), callid, queue, member, event, *params]
    return ",".join(fields) + f',"{local:%Y-%m-%d %H:%M:%S}"'


# A day's dump shaped like a real one: member in `type`, the caller in `param1`, the waits in
# htime/ttime (RINGNOANSWER's htime in milliseconds), outbound-dial tracking with verbs of its
# own (the number dialled in param1), agent and system rows.
DUMP = [
    HEADER,
    row(1, 0, "NONE", "NONE", "NONE", "QUEUESTART", "", "", "", 0, 0, 0, 0),
    row(2, 10, "100.1", "IT", "Local/1127@callback-agent", "ADDMEMBER", "", "", "", 0, 0, 0, 0),
    row(3, 10, "100.1", "NONE", "Agent/1127", "AGENTCALLBACKLOGIN", "hint:1127@default"),
    # a: rang out twice, answered after 52 s, talked 300 s
    row(4, 100, "200.1", "IT", "NONE", "ENTERQUEUE", "17035550101", "", "", 1, 0, 0, 0),
    row(5, 110, "200.1", "IT", "Agent/1127", "RINGNOANSWER", "17035550101", "", "", 1, 1, 10000, 0),
    row(6, 125, "200.1", "IT", "Agent/1141", "RINGNOANSWER", "17035550101", "", "", 1, 1, 9000, 0),
    row(7, 152, "200.1", "IT", "Agent/1127", "CONNECT", "", "210.4", 6, 0, 0, 52, 0),
    row(
        8, 452, "200.1", "IT", "Agent/1127", "COMPLETECALLER", "17035550101", "", "", 1, 0, 52, 300
    ),
    # b: hung up after 95 s, called back later by OUTDIAL (the number written without the 1)
    row(9, 500, "300.1", "IT", "NONE", "ENTERQUEUE", "17035550102", "", "", 1, 0, 0, 0),
    row(10, 595, "300.1", "IT", "NONE", "ABANDON", "17035550102", "", "", 1, 1, 95, 0),
    # c: answered after 8 s, the agent hung up after 40 s
    row(11, 700, "400.1", "IT", "NONE", "ENTERQUEUE", "17035550103", "", "", 1, 0, 0, 0),
    row(12, 708, "400.1", "IT", "Agent/1141", "CONNECT", "", "410.2", 3, 0, 0, 8, 0),
    row(13, 748, "400.1", "IT", "Agent/1141", "COMPLETEAGENT", "17035550103", "", "", 1, 0, 8, 40),
    # d: the queue's timeout after 300 s
    row(14, 800, "500.1", "IT", "NONE", "ENTERQUEUE", "17035550104", "", "", 2, 0, 0, 0),
    row(15, 1100, "500.1", "IT", "NONE", "EXITWITHTIMEOUT", "17035550104", "", "", 2, 1, 300, 0),
    # e: blind-transferred to 1142 after 12 s of waiting and 38 of talk
    row(16, 1200, "600.1", "IT", "NONE", "ENTERQUEUE", "17035550105", "", "", 1, 0, 0, 0),
    row(17, 1212, "600.1", "IT", "Agent/1128", "CONNECT", "", "610.3", 2, 0, 0, 12, 0),
    row(
        18,
        1250,
        "600.1",
        "IT",
        "Agent/1128",
        "BLINDTRANSFER",
        "17035550105",
        1142,
        "transfer",
        1,
        0,
        12,
        38,
    ),
    # f: attended transfer after 20 s and 30 s
    row(19, 1300, "700.1", "IT", "NONE", "ENTERQUEUE", "17035550106", "", "", 1, 0, 0, 0),
    row(20, 1320, "700.1", "IT", "Agent/1128", "CONNECT", "", "710.3", 2, 0, 0, 20, 0),
    row(
        21,
        1350,
        "700.1",
        "IT",
        "Agent/1128",
        "ATTENDEDTRANSFER",
        "17035550106",
        "",
        "",
        1,
        0,
        20,
        30,
    ),
    # an agent dials b back; the dial's outcome rows follow
    row(22, 2000, "800.1", "NONE", "Agent/1127", "OUTDIAL", "7035550102", "", "", 0, 0, 0, 0),
    row(
        23,
        2030,
        "800.1",
        "NONE",
        "Agent/1127",
        "OUTANSWER",
        "7035550102",
        "COMPLETEAGENT",
        "",
        0,
        0,
        2,
        28,
    ),
    row(24, 2100, "900.1", "NONE", "Agent/1141", "OUTDIAL", "881142", "", "", 0, 0, 0, 0),
    row(25, 2101, "900.1", "NONE", "Agent/1141", "OUTCANCEL", "881142", "", "", 0, 0, 1, 0),
]
OUTBOUND_DIAL = {
    "OUTDIAL": "outbound_call",
    "OUTANSWER": "ignore",
    "OUTCANCEL": "ignore",
    "OUTCHANUNAVAIL": "ignore",
    "OUTCONGESTION": "ignore",
    "OUTTRANSFER": "ignore",
}
ENDS = {"COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "EXITWITHTIMEOUT", "BLINDTRANSFER"}
ENDS |= {"ATTENDEDTRANSFER"}


def dump_source(**extra: object) -> dict[str, object]:
    return {
        "name": "queue",
        "kind": "asterisk_queue_log",
        "path": "queue_log.csv",
        "format": "csv",
        "preset": "htime_ttime",
        **extra,
    }


def waits_by_call(engine: Any) -> dict[str, tuple[str, float | None, float | None]]:
    return {
        k.split("@")[0]: (r.outcome, r.wait_seconds, r.talk_seconds)
        for k, r in calls(engine).items()
    }


def test_a_table_dump_with_its_own_columns_is_read_through_the_htime_ttime_preset(
    tmp_path: Path,
) -> None:
    """Each call's wait is its hold time (htime) and its talk time ttime; RINGNOANSWER's htime
    (milliseconds of ringing) is no wait; member and system rows are left out."""
    (tmp_path / "queue_log.csv").write_text("\n".join(DUMP) + "\n")
    settings, engine = open_store(tmp_path, [dump_source(verbs=OUTBOUND_DIAL)])
    result = poll(engine, settings, "queue")
    assert result.rejected == 0
    assert waits_by_call(engine) == {
        "200.1": ("answered", 52, 300),
        "300.1": ("abandoned", 95, None),
        "400.1": ("answered", 8, 40),
        "500.1": ("timeout", 300, None),
        "600.1": ("transferred", 12, 38),
        "700.1": ("transferred", 20, 30),
    }
    assert {r.caller for r in calls(engine).values()} == {f"1703555010{n}" for n in range(1, 7)}
    assert result.left_out == {
        "agent, member and system lines": 5,
        "lines of verbs set to ignore (verbs:)": 2,
        "outbound calls (callbacks, not queue calls)": 2,
    }


def test_the_waits_agree_with_the_files_own_htime_column_call_by_call(tmp_path: Path) -> None:
    (tmp_path / "queue_log.csv").write_text("\n".join(DUMP) + "\n")
    settings, engine = open_store(tmp_path, [dump_source(verbs=OUTBOUND_DIAL)])
    poll(engine, settings, "queue")
    stored = waits_by_call(engine)
    ends = [r for r in csv.DictReader(io.StringIO("\n".join(DUMP))) if r["event"] in ENDS]
    assert len(ends) == len(stored) == 6
    for end in ends:
        assert stored[end["callid"]][1] == float(end["htime"]), end["callid"]


def test_an_outbound_dial_verb_closes_the_callback_of_the_caller_it_dials(tmp_path: Path) -> None:
    """b hung up at 14:09:55 and was dialled back at 14:33:20 (OUTDIAL, param1 the number): the
    callback closes b's inquiry; the timeout d is owed one still. An extension dialled
    (881142) is no callback. Without `verbs:` the OUTDIAL rows are verbs not measured."""
    (tmp_path / "queue_log.csv").write_text("\n".join(DUMP) + "\n")
    settings, engine = open_store(tmp_path, [dump_source(verbs=OUTBOUND_DIAL)])
    poll(engine, settings, "queue")
    status = {i.conversation: (i.status, i.response_seconds) for i in inquiries(engine)}
    assert status == {"tel:035550102": ("answered", 2000 - 595), "tel:035550104": ("open", None)}
    (callback,) = [m for m in messages(engine).values() if m.side == "agent"]
    assert callback.external_id == "out:800.1@" + str(T0 + 2000)

    (tmp_path / "without").mkdir()
    (tmp_path / "without" / "queue_log.csv").write_text("\n".join(DUMP) + "\n")
    settings, engine = open_store(tmp_path / "without", [dump_source()])
    result = poll(engine, settings, "queue")
    assert result.left_out["lines of verbs not measured"] == 4
    assert {i.status for i in inquiries(engine)} == {"open"}


def test_columns_map_an_export_whose_names_differ_from_asterisks(tmp_path: Path) -> None:
    """The realtime layout under other names, with the time split over a date and a time."""
    lines = [
        "Day;Clock;Call;Queue;Member;Verb;P1;P2;P3",
        "2026-11-20;14:00:00;a.1;sales;NONE;ENTERQUEUE;;02079460001;1",
        "2026-11-20;14:00:45;a.1;sales;SIP/201;CONNECT;45;a.2;3",
        "2026-11-20;14:03:45;a.1;sales;SIP/201;COMPLETEAGENT;45;180;1",
    ]
    (tmp_path / "queue_log.csv").write_text("\n".join(lines) + "\n")
    columns = {
        "time": ["Day", "Clock"],
        "callid": "Call",
        "queue": "Queue",
        "agent": "Member",
        "event": "Verb",
        "data1": "P1",
        "data2": "P2",
        "data3": "P3",
    }
    entry = {
        "name": "queue",
        "kind": "asterisk_queue_log",
        "path": "queue_log.csv",
        "format": "csv",
        "delimiter": ";",
        "columns": columns,
        "timezone": "Europe/London",
        "time_format": ["%Y-%m-%d %H:%M:%S"],
    }
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "queue").rejected == 0
    (call,) = calls(engine).values()
    assert (call.outcome, call.wait_seconds, call.talk_seconds) == ("answered", 45, 180)
    assert call.caller == "02079460001"


# psql's console output of the realtime table: padded cells between `|`, a ruler under the
# header, a footer; times local with microseconds.
PSQL = """\
          time          | callid | queuename | agent | event | data1 | data2 | data3 | data4 | data5
------------------------+--------+-----------+-------+-------+-------+-------+-------+-------+------
 2026-11-20 15:00:00.250000 | 31.1 | q1 | NONE       | ENTERQUEUE    |       | 0612345678 | 1 | |
 2026-11-20 15:00:09.250000 | 31.1 | q1 | Agent/3001 | CONNECT       | 9     | 31.2       | 1 | |
 2026-11-20 15:04:09.250000 | 31.1 | q1 | Agent/3001 | COMPLETEAGENT | 9     | 240        | 1 | |
 2026-11-20 15:05:00.000000 | NONE | q1 | Agent/3001 | PAUSE         | lunch |            |   | |
   2026-11-20 15:06:00.000000 | 32.1 | q1 | NONE     | ENTERQUEUE    |       | 0612345679 | 1 | |
 2026-11-20 15:07:10.000000 | 32.1 | q1 | NONE       | ABANDON       | 1     | 1          | 70 | |
(6 rows)
"""


def test_psqls_console_table_is_read_with_a_pipe_delimiter(tmp_path: Path) -> None:
    (tmp_path / "queue_log.txt").write_text(PSQL)
    entry = {
        "name": "queue",
        "kind": "asterisk_queue_log",
        "path": "queue_log.txt",
        "format": "csv",
        "delimiter": "|",
        "timezone": "Europe/Paris",
    }
    settings, engine = open_store(tmp_path, [entry])
    result = poll(engine, settings, "queue")
    assert result.rejected == 0
    assert waits_by_call(engine) == {"31.1": ("answered", 9, 240), "32.1": ("abandoned", 70, None)}
    assert result.left_out == {"agent, member and system lines": 1}


FLAT = [
    f"{T0}|1.1|support|NONE|ENTERQUEUE||02079460001|1",
    f"{T0 + 25}|1.1|support|SIP/201|CALLERCONNECTED|25|1.2|2",
    f"{T0 + 85}|1.1|support|SIP/201|COMPLETECALLER|25|60|1",
    f"{T0 + 100}|2.1|support|NONE|ENTERQUEUE||02079460002|1",
    f"{T0 + 160}|2.1|support|NONE|HUNGUP|1|1|60",
    f"{T0 + 900}|3.1|NONE|SIP/201|OUTCALL|02079460002|ANSWER|30",
    f"{T0 + 950}|4.1|NONE|SIP/201|DIALLER_STATS|x",
]


def test_verbs_give_custom_verbs_a_meaning_in_the_flat_file(tmp_path: Path) -> None:
    """CALLERCONNECTED has CONNECT's fields and HUNGUP ABANDON's; Asterisk's own OUTCALL (from
    QueueUpdate, otherwise left out) is made an outbound call: the callback of 2.1."""
    (tmp_path / "queue_log").write_text("\n".join(FLAT) + "\n")
    verbs = {
        "CALLERCONNECTED": "CONNECT",
        "HungUp": "abandon",
        "OUTCALL": "outbound_call",
        "DIALLER_STATS": "ignore",
    }
    entry = {"name": "queue", "kind": "asterisk_queue_log", "path": "queue_log", "verbs": verbs}
    settings, engine = open_store(tmp_path, [entry])
    result = poll(engine, settings, "queue")
    assert result.rejected == 0
    assert waits_by_call(engine) == {"1.1": ("answered", 25, 60), "2.1": ("abandoned", 60, None)}
    (inquiry,) = inquiries(engine)
    assert (inquiry.status, inquiry.response_seconds) == ("answered", 900 - 160)
    assert result.left_out == {
        "lines of verbs set to ignore (verbs:)": 1,
        "outbound calls (callbacks, not queue calls)": 1,
    }


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"verbs": {"ENTERQUEUE": "ignore"}}, "standard verb, whose meaning is fixed"),
        ({"verbs": {"OUTDIAL": "callback"}}, "expected outbound_call, ignore or a standard verb"),
        ({"preset": "htime_ttime"}, "preset is for a table or format: csv"),
        ({"format": "csv", "columns": {"when": "x"}}, "unknown column key 'when'"),
        ({"format": "csv", "columns": {"callid": ["a", "b"]}}, "takes one column, not a list"),
        ({"format": "csv", "header": False}, "needs `fields:`"),
    ],
)
def test_settings_are_checked(tmp_path: Path, entry: dict[str, object], problem: str) -> None:
    raw = {"name": "q", "kind": "asterisk_queue_log", "path": "queue_log"} | entry
    with pytest.raises(ConfigError, match=problem):
        open_store(tmp_path, [raw])


def test_a_dump_without_the_presets_columns_is_rejected_row_by_row_with_the_reason(
    tmp_path: Path,
) -> None:
    lines = ["when,callid,queuename,agent,event,data1", f"{T0},1.1,q,NONE,ENTERQUEUE,"]
    (tmp_path / "queue_log.csv").write_text("\n".join(lines) + "\n")
    settings, engine = open_store(tmp_path, [dump_source()])
    from monitor.store.ingest import poll_source

    result = poll_source(engine, settings, settings.sources[0], now=NOW)
    assert [str(r) for r in result.rejections] == [
        "queue_log.csv:1: the header has no column 'date_time'",
        "queue_log.csv:2: the header has no column 'date_time'",
    ]


def test_a_call_cut_off_at_the_end_of_a_dump_waited_at_least_until_its_last_call_row(
    tmp_path: Path,
) -> None:
    """A dump ends (a LIMIT in the query) with a caller in the queue: given up as unknown after
    `unknown_after`, it was seen waiting until the dump's last call row, not until the poll
    that reads the dump hours or years later."""
    cut = [
        row(26, 2200, "990.1", "IT", "NONE", "ENTERQUEUE", "17035550107", "", "", 1, 0, 0, 0),
        row(27, 2250, "990.1", "IT", "Agent/1127", "RINGNOANSWER", "17035550107", "", "", 1, 1),
        row(28, 2300, "991.1", "IT", "NONE", "ENTERQUEUE", "17035550108", "", "", 2, 0, 0, 0),
    ]
    (tmp_path / "queue_log.csv").write_text("\n".join(DUMP + cut) + "\n")
    source = dump_source(verbs=OUTBOUND_DIAL, unknown_after="1h")
    settings, engine = open_store(tmp_path, [source])
    poll(engine, settings, "queue")  # NOW is 4 hours after the dump's first row
    assert waits_by_call(engine)["990.1"] == ("unknown", 100, None)
    assert waits_by_call(engine)["991.1"] == ("unknown", 0, None)
