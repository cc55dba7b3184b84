"""Who is a customer: call direction as each phone system records it.

Fixtures are written to each system's documented layout: the 3CX CDR's 27 fields in 3CX's
order, Asterisk's cdr_csv with newcdrcolumns (21 columns), the flat queue_log."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.connectors.store import calls, inquiries, open_store, poll

DAY = datetime(2026, 11, 20, tzinfo=UTC)
FMT = "%Y-%m-%d %H:%M:%S"


def write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def threecx(
    n: int,
    start: str,
    *,
    caller: str,
    types: tuple[str, str, str],
    answered: int | None,
    length: int,
    reason: str = "TerminatedByDst",
    to_dn: str = "800",
    final_dn: str = "101",
) -> str:
    """One 3CX CDR line, the 27 documented fields in the documented order (3CX's CDR output:
    historyid, callid, duration (talk, H:MM:SS), time-start, time-answered, time-end,
    reason-terminated, from-no, to-no, from-dn, to-dn, dial-no, reason-changed, final-number,
    final-dn, bill-code, bill-rate, bill-cost, bill-name, chain, from-type, to-type,
    final-type, from-dispname, to-dispname, final-dispname, missed-queue-calls)."""
    begin = datetime.fromisoformat(f"2026-11-20T{start}")
    answer = "" if answered is None else (begin + timedelta(seconds=answered)).strftime(FMT)
    end = begin + timedelta(seconds=length)
    talk = 0 if answered is None else length - answered
    fields = [
        f"Call {n}",
        f"4cc2c72490010000_{n}",
        f"{talk // 3600:02d}:{talk % 3600 // 60:02d}:{talk % 60:02d}",
        begin.strftime(FMT).replace("-", "/"),
        answer.replace("-", "/"),
        end.strftime(FMT).replace("-", "/"),
        reason,
        caller,
        f"Ext.{to_dn}",
        "10020",
        to_dn,
        to_dn,
        "",
        f"Ext.{final_dn}",
        final_dn,
        "",
        "",
        "",
        "",
        f"Chain: {caller};Ext.{to_dn};Ext.{final_dn};",
        *types,
        caller,
        "Support",
        "",
        "",
    ]
    return ",".join(fields)


def cdr(
    uid: str,
    start: str,
    *,
    src: str,
    dst: str,
    channel: str,
    context: str,
    dstchannel: str = "",
    lastapp: str = "Dial",
    lastdata: str = "",
    ring: int = 0,
    talk: int | None = None,
    disposition: str | None = None,
    linkedid: str | None = None,
) -> str:
    """One Asterisk cdr_csv row with newcdrcolumns=yes (21 columns: accountcode, src, dst,
    dcontext, clid, channel, dstchannel, lastapp, lastdata, start, answer, end, duration,
    billsec, disposition, amaflags, uniqueid, userfield, peeraccount, linkedid, sequence)."""
    begin = datetime.fromisoformat(f"2026-11-20T{start}")
    answer = "" if talk is None else f'"{(begin + timedelta(seconds=ring)).strftime(FMT)}"'
    end = begin + timedelta(seconds=ring + (talk or 0))
    state = disposition or ("ANSWERED" if talk is not None else "NO ANSWER")
    quoted = ["", src, dst, context, f'"" <{src}>', channel, dstchannel, lastapp, lastdata]
    fields = [f'"{q.replace(chr(34), chr(34) * 2)}"' for q in quoted]
    fields += [f'"{begin.strftime(FMT)}"', answer, f'"{end.strftime(FMT)}"']
    fields += [str(ring + (talk or 0)), str(talk or 0), f'"{state}"', '"DOCUMENTATION"']
    fields += [f'"{uid}"', '""', '""', f'"{linkedid or uid}"', "1"]
    return ",".join(fields)


def queue_log(offset: int, callid: str, queue: str, event: str, *data: object) -> str:
    """One flat queue_log line: epoch|callid|queue|agent|event|data1|..."""
    at = int(DAY.timestamp()) + 9 * 3600 + offset
    agent = "PJSIP/101" if event in ("CONNECT", "COMPLETECALLER") else "NONE"
    return "|".join([str(at), callid, queue, agent, event, *map(str, data)])


def outcomes(engine: Any) -> dict[str, tuple[str, str, float | None, str | None]]:
    return {
        k: (r.outcome, r.queue, r.wait_seconds, r.caller) for k, r in sorted(calls(engine).items())
    }


THREECX = {"name": "3cx", "kind": "call_csv", "path": "cdr.log", "preset": "3cx"}
PBX = {"name": "pbx", "kind": "asterisk_cdr", "path": "Master.csv", "timezone": "UTC"}


def test_a_withheld_caller_in_a_3cx_cdr_is_a_customer_call_with_no_callback(
    tmp_path: Path,
) -> None:
    """3CX says in its own from-type that both calls came in on a Line, whatever number they
    show. The first withheld caller (`anonymous`) reached extension 101 through queue 800 after
    20 s: answered, wait 20 s. The second (no number at all) hung up in the queue after 90 s:
    abandoned, wait 90 s, and no callback inquiry, since there is no number to call. Counting
    digits alone made both internal calls, and neither was counted."""
    write(
        tmp_path / "cdr.log",
        threecx(1, "09:00:00", caller="anonymous", types=("Line", "Queue", "Extension"),
                answered=20, length=200),
        threecx(2, "09:10:00", caller="", types=("Line", "Queue", "Queue"), answered=None,
                length=90, reason="TerminatedBySrc", final_dn="800"),
    )  # fmt: skip
    settings, engine = open_store(tmp_path, [THREECX], timezone="UTC")
    result = poll(engine, settings, "3cx")
    assert result.rejected == 0 and not result.left_out
    assert outcomes(engine) == {
        "call:Call 1": ("answered", "calls", 20, "anonymous"),
        "call:Call 2": ("abandoned", "calls", 90, None),
    }
    assert inquiries(engine) == []  # nobody to call back


def test_a_withheld_caller_from_a_trunk_in_an_asterisk_cdr_is_a_customer_call(
    tmp_path: Path,
) -> None:
    """A caller with privacy on arrives from the trunk as `anonymous` (Asterisk's PJSIP writes
    RFC 3323 privacy so) into a hand-written `incoming` context, rings queue 500 for 45 s and
    hangs up: an inbound customer call from its trunk channel, abandoned after 45 s, labelled
    by the Queue application's first argument, and no callback (no number)."""
    write(
        tmp_path / "Master.csv",
        cdr("1.1", "09:00:00", src="anonymous", dst="500", channel="PJSIP/sipgate-00000001",
            context="incoming", lastapp="Queue", lastdata="500,t,,,300", ring=45),
    )  # fmt: skip
    settings, engine = open_store(tmp_path, [PBX])
    result = poll(engine, settings, "pbx")
    assert result.rejected == 0 and not result.left_out
    assert outcomes(engine) == {"call:1.1": ("abandoned", "500", 45, "anonymous")}
    assert inquiries(engine) == []


def test_an_extension_calling_an_extension_through_from_did_direct_is_internal(
    tmp_path: Path,
) -> None:
    """FreePBX routes extension 1001 calling 1002 through `from-did-direct`, a context on the
    inbound list: its channel (PJSIP/1001-…, an endpoint named by the extension's number) makes
    it internal, left out and counted. A named endpoint (PJSIP/alice) is one of ours when
    `extensions:` says so; without it, it would be taken for a trunk."""
    write(
        tmp_path / "Master.csv",
        cdr("2.1", "09:00:00", src="1001", dst="1002", channel="PJSIP/1001-00000002",
            context="from-did-direct", dstchannel="PJSIP/1002-00000003", ring=5, talk=60),
        cdr("3.1", "09:05:00", src="1003", dst="1002", channel="PJSIP/alice-00000004",
            context="from-did-direct", dstchannel="PJSIP/1002-00000005", ring=5, talk=60),
    )  # fmt: skip
    settings, engine = open_store(
        tmp_path, [{**PBX, "extensions": ["1???", "PJSIP/1*", "PJSIP/alice*"]}]
    )
    result = poll(engine, settings, "pbx")
    assert calls(engine) == {}
    assert result.left_out == Counter({"internal calls": 2})


def test_a_3cx_makecall_row_is_left_out_and_counted(tmp_path: Path) -> None:
    """A call 3CX placed itself (its MakeCall) is no customer's: left out, counted by reason.
    The other row, from a Line, is a customer call."""
    write(
        tmp_path / "cdr.log",
        threecx(3, "09:00:00", caller="101", types=("MakeCall", "Extension", "Extension"),
                answered=3, length=30),
        threecx(4, "09:01:00", caller="+442079460004", types=("Line", "Extension", "Extension"),
                answered=5, length=65),
    )  # fmt: skip
    settings, engine = open_store(tmp_path, [THREECX], timezone="UTC")
    result = poll(engine, settings, "3cx")
    assert list(outcomes(engine)) == ["call:Call 4"]
    assert result.left_out == Counter(
        {"calls the phone system placed itself (3CX MakeCall/PlayFile)": 1}
    )


def test_an_asterisk_call_file_is_left_out_and_counted(tmp_path: Path) -> None:
    """The CDR specification's "Unanswered 'Outbound' Call" of a call file: no src, dst `s`,
    the dialled channel as Party A with lastapp AppDial: the PBX placed it."""
    write(
        tmp_path / "Master.csv",
        cdr("4.1", "09:00:00", src="", dst="s", channel="SIP/alice-00000001", context="default",
            lastapp="AppDial", lastdata="(Outgoing Line)", ring=30),
    )  # fmt: skip
    settings, engine = open_store(tmp_path, [PBX])
    result = poll(engine, settings, "pbx")
    assert calls(engine) == {}
    assert result.left_out == Counter({"calls the PBX originated (originate, call files)": 1})


def test_a_queue_leg_with_an_empty_dstchannel_is_labelled_by_its_queue(tmp_path: Path) -> None:
    """FreePBX sends a trunk call through `ext-queues` into Queue(501,t,,,300); the queue
    application answers the caller, nobody takes it, the caller hangs up after 70 s: the leg
    has no dstchannel. Labelled `501` (the name queue_log gives the queue), not `ext-queues`;
    abandoned after 70 s, and a callback inquiry for the caller. A call that ran no Queue is
    labelled by the source's single default label."""
    write(
        tmp_path / "Master.csv",
        cdr("5.1", "09:00:00", src="+442079460005", dst="501", channel="PJSIP/trunk-00000007",
            context="ext-queues", lastapp="Queue", lastdata="501,t,,,300", talk=70,
            disposition="ANSWERED"),
        cdr("6.1", "09:30:00", src="+442079460006", dst="101", channel="PJSIP/trunk-00000008",
            context="from-did-direct", dstchannel="PJSIP/101-00000009", ring=8, talk=30),
    )  # fmt: skip
    settings, engine = open_store(tmp_path, [PBX])
    poll(engine, settings, "pbx")
    assert outcomes(engine) == {
        "call:5.1": ("abandoned", "501", 70, "+442079460005"),
        "call:6.1": ("answered", "calls", 8, "+442079460006"),
    }
    assert len(inquiries(engine)) == 1


def test_staff_testing_a_queue_is_left_out_of_the_queue_log_and_counted(tmp_path: Path) -> None:
    """ENTERQUEUE's second field is the caller id: extension 1001 calling queue 500 is staff
    testing it, left out (answered or not) and counted; the customer beside it is measured."""
    write(
        tmp_path / "queue_log",
        queue_log(0, "a.1", "500", "ENTERQUEUE", "", "1001", "1"),
        queue_log(5, "a.1", "500", "CONNECT", 5, "a.2", 2),
        queue_log(0, "b.1", "500", "ENTERQUEUE", "", "+442079460001", "1"),
        queue_log(30, "b.1", "500", "ABANDON", 1, 1, 30),
        queue_log(40, "a.1", "500", "COMPLETECALLER", 5, 35, 1),
    )
    source = {"name": "q", "kind": "asterisk_queue_log", "path": "queue_log"}
    settings, engine = open_store(tmp_path, [source])
    result = poll(engine, settings, "q")
    assert list(outcomes(engine).values()) == [("abandoned", "500", 30, "+442079460001")]
    assert result.left_out["calls from our own extensions (staff testing a queue)"] == 1


@pytest.mark.parametrize("in_child", [False, True], ids=["read inline", "read in a child"])
def test_poll_says_when_it_guesses_the_direction_and_how_many_each_way(
    tmp_path: Path, in_child: bool
) -> None:
    """A call log with no direction column and no channel: direction is counted from the
    numbers, and the poll says how many calls it classed each way by that guess, also when
    the source is read in a child process (as the CLI's `poll` reads it)."""
    write(
        tmp_path / "calls.csv",
        "Start,From,To,Answered,End",
        "2026-11-20 09:00:00,+442079460001,200,2026-11-20 09:00:10,2026-11-20 09:05:00",
        "2026-11-20 09:10:00,Restricted,200,2026-11-20 09:10:10,2026-11-20 09:15:00",
        "2026-11-20 09:20:00,201,202,2026-11-20 09:20:05,2026-11-20 09:21:00",
    )
    source = {
        "name": "log",
        "kind": "call_csv",
        "path": "calls.csv",
        "timezone": "UTC",
        "columns": {
            "entered": "Start",
            "caller": "From",
            "callee": "To",
            "answered": "Answered",
            "ended": "End",
        },
    }
    settings, engine = open_store(tmp_path, [source])
    result = poll(engine, settings, "log", in_child=in_child)
    assert len(calls(engine)) == 2  # the withheld caller is a customer too
    assert result.noted["inbound calls (a guess from the numbers)"] == 2
    assert result.left_out == Counter({"internal calls (a guess from the numbers)": 1})
    assert "noted: " in result.summary() and "a guess from the numbers" in result.summary()


def test_a_queue_log_and_a_cdr_of_one_server_agree_on_customers_queues_and_abandons(
    tmp_path: Path,
) -> None:
    """The same morning of one FreePBX server, as its queue_log and its Master.csv write it:
    queue 500 answered one caller after 12 s and lost one after 40 s, queue 501 lost one after
    25 s, and extension 1001 tested queue 500. Both sources give the same customer calls per
    queue (500: 2, 501: 1), the same abandoned calls, and the same queue names."""
    write(
        tmp_path / "queue_log",
        queue_log(0, "10.1", "500", "ENTERQUEUE", "", "+442079460010", "1"),
        queue_log(12, "10.1", "500", "CONNECT", 12, "10.2", 3),
        queue_log(72, "10.1", "500", "COMPLETECALLER", 12, 60, 1),
        queue_log(100, "11.1", "500", "ENTERQUEUE", "", "+442079460011", "1"),
        queue_log(140, "11.1", "500", "ABANDON", 1, 1, 40),
        queue_log(200, "12.1", "501", "ENTERQUEUE", "", "anonymous", "1"),
        queue_log(225, "12.1", "501", "ABANDON", 1, 1, 25),
        queue_log(300, "13.1", "500", "ENTERQUEUE", "", "1001", "1"),
        queue_log(310, "13.1", "500", "ABANDON", 1, 1, 10),
    )
    write(
        tmp_path / "Master.csv",
        cdr("10.1", "09:00:00", src="+442079460010", dst="500", channel="PJSIP/trunk-0000000a",
            context="ext-queues", dstchannel="Local/101@from-queue-0000000b;1", lastapp="Queue",
            lastdata="500,t,,,300", ring=12, talk=60),
        cdr("11.1", "09:01:40", src="+442079460011", dst="500", channel="PJSIP/trunk-0000000c",
            context="ext-queues", lastapp="Queue", lastdata="500,t,,,300", talk=40,
            disposition="ANSWERED"),
        cdr("12.1", "09:03:20", src="anonymous", dst="501", channel="PJSIP/trunk-0000000d",
            context="ext-queues", lastapp="Queue", lastdata="501,t,,,300", talk=25,
            disposition="ANSWERED"),
        cdr("13.1", "09:05:00", src="1001", dst="500", channel="PJSIP/1001-0000000e",
            context="ext-queues", lastapp="Queue", lastdata="500,t,,,300", talk=10,
            disposition="ANSWERED"),
    )  # fmt: skip
    sources = [{"name": "q", "kind": "asterisk_queue_log", "path": "queue_log"}, PBX]
    settings, engine = open_store(tmp_path, sources)
    poll(engine, settings, "q")
    poll(engine, settings, "pbx")
    by_source: dict[str, Counter[tuple[str, str]]] = {"q": Counter(), "pbx": Counter()}
    for row in calls(engine).values():
        by_source[row.source][(row.queue, row.outcome)] += 1
    assert (
        by_source["q"]
        == by_source["pbx"]
        == Counter({("500", "answered"): 1, ("500", "abandoned"): 1, ("501", "abandoned"): 1})
    )
