"""asterisk_cdr: a hand-built day of Master.csv rows, stored through the ingest loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.connectors.store import NOW, calls, inquiries, messages, open_store, poll, tally

# Rows are written in Berlin wall-clock time (UTC+1 in November), as Asterisk writes them.
DAY = datetime(2026, 11, 20, tzinfo=ZoneInfo("Europe/Berlin"))


def local(hms: str) -> datetime:
    h, m, s = (int(x) for x in hms.split(":"))
    return DAY.replace(hour=h, minute=m, second=s)


def cdr(
    uid: str,
    src: str,
    dst: str,
    start: str,
    ring: int,
    talk: int | None,
    *,
    context: str = "from-pstn",
    dstchannel: str = "SIP/201-0001",
    lastapp: str = "Dial",
    disposition: str | None = None,
    linkedid: str | None = None,
    clid: str | None = None,
    channel: str | None = None,
    lastdata: str = "",
) -> str:
    """One cdr_csv row with the 21 columns of newcdrcolumns=yes (answer unquoted when empty).
    The caller's channel is an extension's (`SIP/201-…`) for a short `src`, else the trunk's."""
    if channel is None:
        channel = f"SIP/{src}-00000001" if src.isdigit() and len(src) <= 6 else "SIP/trunk-0001"
    begin = local(start)
    answer = begin + timedelta(seconds=ring) if talk is not None else None
    end = begin + timedelta(seconds=ring + (talk or 0))
    fmt = "%Y-%m-%d %H:%M:%S"
    disposition = disposition or ("ANSWERED" if talk is not None else "NO ANSWER")
    quoted = [
        "",
        src,
        dst,
        context,
        clid if clid is not None else f'"" <{src}>',
        channel,
        dstchannel,
        lastapp,
        lastdata,
        begin.strftime(fmt),
    ]
    fields = [f'"{q.replace(chr(34), chr(34) * 2)}"' for q in quoted]
    fields.append(f'"{answer.strftime(fmt)}"' if answer else "")
    fields += [f'"{end.strftime(fmt)}"', str(ring + (talk or 0)), str(talk or 0)]
    fields += [f'"{disposition}"', '"DOCUMENTATION"', f'"{uid}"', '""', '""']
    fields += [f'"{linkedid or uid}"', "1"]
    return ",".join(fields)


def write(path: Path, *rows: str | bytes) -> Path:
    path.write_bytes(b"".join((r if isinstance(r, bytes) else r.encode()) + b"\n" for r in rows))
    return path


def source(**extra: object) -> dict[str, object]:
    return {
        "name": "pbx",
        "kind": "asterisk_cdr",
        "path": "Master.csv",
        "timezone": "Europe/Berlin",
        **extra,
    }


CALLER = "+44 20 7946 0001"

A_DAY = [
    # 1. A ring group: one phone gave up after 20 s, another answered at 40 s.
    cdr("10.1", CALLER, "6000", "09:00:00", 20, None, linkedid="10.1"),
    cdr("10.1", CALLER, "6000", "09:00:00", 40, 120, dstchannel="SIP/202-0002"),
    # 2. Answered after 6 minutes: breaches hold_warn (5 min) only.
    cdr("11.1", "+44 20 7946 0002", "6000", "09:30:00", 360, 60),
    # 3. Answered after 14 minutes: breaches hold_warn and hold_max (13 min).
    cdr("12.1", "+44 20 7946 0003", "6000", "10:00:00", 840, 30),
    # 4. Nobody answered; the caller hung up after 2 minutes: a callback inquiry.
    cdr("13.1", "020 7946 0004", "6000", "11:00:00", 120, None),
    # 5. Rang out to voicemail after 30 s: the VoiceMail leg is answered by the PBX itself.
    cdr("14.1", "020 7946 0005", "6000", "12:00:00", 30, None, linkedid="14.1"),
    cdr(
        "14.2",
        "020 7946 0005",
        "vmu6000",
        "12:00:30",
        0,
        25,
        dstchannel="",
        lastapp="VoiceMail",
        linkedid="14.1",
    ),
    # 6. Every phone busy.
    cdr("15.1", "020 7946 0006", "6000", "13:00:00", 0, None, disposition="BUSY"),
    # 7. A hidden number that nobody answered: a call, but no callback to make.
    cdr("16.1", "anonymous", "6000", "13:30:00", 45, None),
    # 8. An internal call between extensions: not a customer call.
    cdr("17.1", "201", "202", "14:00:00", 5, 60, context="from-internal"),
    # 9. Call-back of call 4, at 15:00 local: closes its inquiry after 3 h 58 min.
    cdr("18.1", "201", "02079460004", "15:00:00", 10, 90, context="from-internal"),
]


def test_a_day_of_cdr_rows_gives_outcomes_waits_and_hold_breaches(tmp_path: Path) -> None:
    write(tmp_path / "Master.csv", *A_DAY)
    settings, engine = open_store(tmp_path, [source()])
    result = poll(engine, settings, "pbx")
    assert result.rejected == 0
    found = {k: (r.outcome, r.wait_seconds) for k, r in calls(engine).items()}
    assert found == {
        "call:10.1": ("answered", 40),
        "call:11.1": ("answered", 360),
        "call:12.1": ("answered", 840),
        "call:13.1": ("abandoned", 120),
        "call:14.1": ("timeout", 30),
        "call:15.1": ("exit_empty", 0),
        "call:16.1": ("abandoned", 45),
    }
    first = calls(engine)["call:10.1"]
    assert first.entered_at.replace(tzinfo=UTC) == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert (first.queue, first.talk_seconds) == ("calls", 120)  # no Queue application ran
    assert tally(engine, "support_hold_breaches_total", threshold="warn") == 2
    assert tally(engine, "support_hold_breaches_total", threshold="max") == 1
    assert tally(engine, "support_calls_total", outcome="answered") == 3

    by_number = {i.conversation: i for i in inquiries(engine)}
    assert set(by_number) == {"tel:079460004", "tel:079460005", "tel:079460006"}
    assert all(i.channel == "voicemail" for i in by_number.values())
    called_back = by_number["tel:079460004"]
    assert (called_back.status, called_back.response_seconds) == ("answered", 3 * 3600 + 58 * 60)
    assert by_number["tel:079460005"].status == "open"
    assert messages(engine)["out:18.1"].side == "agent"


def test_a_second_poll_adds_nothing(tmp_path: Path) -> None:
    write(tmp_path / "Master.csv", *A_DAY)
    settings, engine = open_store(tmp_path, [source()])
    poll(engine, settings, "pbx")
    again = poll(engine, settings, "pbx", NOW + timedelta(hours=1))
    assert again.messages + again.calls == 0


def test_legs_written_in_two_polls_make_one_call(tmp_path: Path) -> None:
    path = write(
        tmp_path / "Master.csv", cdr("20.1", CALLER, "6000", "17:00:00", 20, None, linkedid="20.1")
    )
    settings, engine = open_store(tmp_path, [source()])
    # 16:00:20 UTC: the first leg just ended; the call may still be ringing elsewhere.
    just_after = datetime(2026, 11, 20, 16, 0, 30, tzinfo=UTC)
    assert poll(engine, settings, "pbx", just_after).calls == 0
    with path.open("a") as handle:
        handle.write(cdr("20.1", CALLER, "6000", "17:00:00", 50, 30, dstchannel="SIP/203") + "\n")
    assert poll(engine, settings, "pbx", just_after + timedelta(seconds=60)).calls == 0
    assert poll(engine, settings, "pbx", just_after + timedelta(minutes=5)).calls == 1
    (call,) = calls(engine).values()
    assert (call.outcome, call.wait_seconds) == ("answered", 50)
    assert inquiries(engine) == []  # the first leg's NO ANSWER was not a missed call


def test_a_lone_unanswered_leg_is_settled_once_it_is_old(tmp_path: Path) -> None:
    write(tmp_path / "Master.csv", cdr("21.1", CALLER, "6000", "17:00:00", 20, None))
    settings, engine = open_store(tmp_path, [source()])
    assert poll(engine, settings, "pbx", datetime(2026, 11, 20, 16, 1, tzinfo=UTC)).calls == 0
    later = poll(engine, settings, "pbx", datetime(2026, 11, 20, 16, 3, tzinfo=UTC))
    assert (later.calls, later.messages) == (1, 1)


def test_the_cdr_custom_layout_is_detected(tmp_path: Path) -> None:
    # The stock cdr_custom mapping: clid first, every field quoted, 19 columns.
    rows = [
        '""""" <client2>","02079460010","6000","from-pstn","PJSIP/client2-00000004",'
        '"PJSIP/client1-00000005","Dial","PJSIP/client1","2026-11-20 10:00:00","",'
        '"2026-11-20 10:00:30","30","0","NO ANSWER","DOCUMENTATION","","1690325531.5","",4',
        '""""" <client2>","02079460011","6000","from-pstn","PJSIP/client2-00000006",'
        '"PJSIP/client1-00000007","Dial","PJSIP/client1","2026-11-20 10:10:00",'
        '"2026-11-20 10:10:04","2026-11-20 10:10:17","17","13","ANSWERED","DOCUMENTATION","",'
        '"1690325659.8","",6',
    ]
    write(tmp_path / "Master.csv", *rows)
    settings, engine = open_store(tmp_path, [source(timezone="UTC", queue="support")])
    assert poll(engine, settings, "pbx").rejected == 0
    found = {k: (r.queue, r.outcome, r.wait_seconds) for k, r in calls(engine).items()}
    assert found == {
        "call:1690325531.5": ("support", "abandoned", 30),
        "call:1690325659.8": ("support", "answered", 4),
    }


def test_contexts_and_queue_labels_come_from_the_settings(tmp_path: Path) -> None:
    rows = [
        cdr("30.1", "02079460020", "sales", "10:00:00", 5, 20, context="ivr-main"),
        cdr("31.1", "02079460021", "support", "10:00:00", 5, 20, context="ivr-main"),
    ]
    write(tmp_path / "Master.csv", *rows)
    options = source(inbound_contexts=["ivr-*"], queues={"sales": "Sales"})
    settings, engine = open_store(tmp_path, [options])
    poll(engine, settings, "pbx")
    # `queues` lists the queues exported: a call of any other is `other` (bounded labels).
    assert {k: r.queue for k, r in calls(engine).items()} == {
        "call:30.1": "Sales",
        "call:31.1": "other",
    }


def test_bad_lines_are_skipped_with_counted_located_reasons(tmp_path: Path) -> None:
    good = cdr("40.1", CALLER, "6000", "09:00:00", 10, 60)
    missing_start = good.replace('"2026-11-20 09:00:00"', '""', 1)
    rows: list[str | bytes] = [
        good,
        missing_start,  # line 2
        '"","1","2","three"',  # line 3: wrong column count
        "x" * (1024 * 1024 + 10),  # line 4: a 1 MB line
        b"\x00\x01\x02\xff\xfe binary junk \x00",  # line 5
        cdr("41.1", "0207946\xa5\xa5", "6000", "09:10:00", 5, 5).encode("latin-1"),  # 6: src
        good.replace(",70,60,", ",seventy,60,").replace('"40.1"', '"42.1"'),  # line 7: duration
        # A CallerID name with raw 0xA5 bytes (as in real files) costs nothing: it is unused.
        cdr("43.1", CALLER, "6000", "09:20:00", 7, 5, clid='"\xa5\xa5b" <1>').encode("latin-1"),
        cdr("44.1", CALLER, "6000", "09:30:00", 9, 5),
    ]
    write(tmp_path / "Master.csv", *rows)
    settings, engine = open_store(tmp_path, [source()])
    result = poll(engine, settings, "pbx")
    reasons = {r.location: r.reason for r in result.rejections}
    assert result.rejected == 6 == len(reasons)
    assert reasons["Master.csv:2"] == "missing start"
    assert reasons["Master.csv:3"] == "expected 16, 17, 18, 19 or 21 columns, got 4"
    assert "longer than the limit" in reasons["Master.csv:4"]
    assert reasons["Master.csv:5"].startswith("binary data")
    assert reasons["Master.csv:6"].startswith("invalid UTF-8 in src")
    assert reasons["Master.csv:7"] == "duration is not a number of seconds"
    assert set(calls(engine)) == {"call:40.1", "call:43.1", "call:44.1"}


def test_a_truncated_log_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = write(tmp_path / "Master.csv", *A_DAY[:3])
    settings, engine = open_store(tmp_path, [source()])
    assert poll(engine, settings, "pbx").calls == 2
    write(path, cdr("50.1", CALLER, "6000", "16:00:00", 12, 30))  # copytruncate, then a new row
    assert poll(engine, settings, "pbx").calls == 1
    assert "call:50.1" in calls(engine)


def test_a_bad_cursor_is_a_permanent_error(tmp_path: Path) -> None:
    from connectors.base import ConnectorError
    from monitor.store.ingest import build_connector

    write(tmp_path / "Master.csv", *A_DAY)
    settings, _ = open_store(tmp_path, [source()])
    connector = build_connector(settings, settings.sources[0])
    with pytest.raises(ConnectorError, match="cursor"):
        list(connector.fetch({"v": 1, "tail": None, "pending": [{"x": 1}]}, NOW))


def test_a_poll_counts_the_rows_left_out_and_those_still_settling(tmp_path: Path) -> None:
    """What a CDR poll does not measure is said per reason: calls that are no queue calls,
    and the rows of calls that may still be ringing elsewhere (measured by a later poll)."""
    ringing = cdr("20.1", CALLER, "6000", "17:00:00", 20, None)  # ended 16:00:20 UTC
    write(tmp_path / "Master.csv", *A_DAY, ringing)
    settings, engine = open_store(tmp_path, [source()])
    just_after = datetime(2026, 11, 20, 16, 0, 30, tzinfo=UTC)
    assert poll(engine, settings, "pbx", just_after).left_out == {
        "internal calls": 1,
        "outbound calls (callbacks, not queue calls)": 1,
        "rows of calls still settling": 1,
    }
    later = poll(engine, settings, "pbx", just_after + timedelta(minutes=5))
    assert (later.calls, later.left_out) == (1, {})


def test_a_non_stock_cdr_custom_mapping_is_named_by_fields_or_as_before_by_columns(
    tmp_path: Path,
) -> None:
    """A cdr_custom.conf writing its own order (and the start as epoch seconds)."""
    names = "uniqueid start src dst dcontext channel dstchannel lastapp answer end duration "
    names += "billsec disposition"
    fields = names.split()
    row = (
        '"60.1","1795165200","02079460030","6000","from-pstn","SIP/trunk-1","SIP/201-1","Dial",'
        '"1795165215","1795165275","75","60","ANSWERED"'
    )
    write(tmp_path / "Master.csv", row)
    for setting in ({"fields": fields}, {"columns": fields}):
        (tmp_path / "monitor.db").unlink(missing_ok=True)
        settings, engine = open_store(tmp_path, [source(**setting)])
        assert poll(engine, settings, "pbx").rejected == 0
        (call,) = calls(engine).values()
        assert (call.outcome, call.wait_seconds, call.talk_seconds) == ("answered", 15, 60)


def test_a_dump_of_the_cdr_table_with_a_header_and_no_end_column(tmp_path: Path) -> None:
    """The cdr table as a database dump writes it: a header, `calldate` for the start, no
    `end` (start + duration), no linkedid; the file says it holds inbound calls only."""
    write(
        tmp_path / "cdr.csv",
        "calldate,clid,src,dst,dcontext,channel,dstchannel,lastapp,lastdata,duration,billsec,"
        "disposition,amaflags,accountcode,uniqueid,userfield,answer",
        '2026-11-20 10:00:00,"""Dana"" <201>",201,6000,ext-local,SIP/201-1,SIP/202-2,Dial,'
        "SIP/202,75,60,ANSWERED,3,,70.1,,2026-11-20 10:00:15",
        "2026-11-20 10:05:00,,202,6000,ext-local,SIP/202-3,,Dial,SIP/203,40,0,NO ANSWER,3,,71.1,,",
    )
    entry = source(path="cdr.csv", header=True, columns={"start": "calldate"}, direction="inbound")
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "pbx").rejected == 0
    found = {k: (r.outcome, r.wait_seconds, r.talk_seconds) for k, r in calls(engine).items()}
    assert found == {"call:70.1": ("answered", 15, 60), "call:71.1": ("abandoned", 40, None)}
    left = calls(engine)["call:71.1"].left_at.replace(tzinfo=UTC)
    assert left == local("10:05:40").astimezone(UTC)
