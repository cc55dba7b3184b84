"""A call is answered when a person answers, not when the PBX does.

Each fixture is written to its system's documented layout, and each test's docstring gives the
outcome and the wait expected, worked out by hand."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.checks import run_checks
from monitor.config_file import settings_from_mapping
from tests.connectors.phone.test_customers import PBX, THREECX, cdr, threecx, write
from tests.connectors.store import aware, calls, inquiries, open_store, poll


def found(engine: Any) -> dict[str, tuple[str, float | None]]:
    return {k: (r.outcome, r.wait_seconds) for k, r in sorted(calls(engine).items())}


def test_a_3cx_call_ending_at_endcall_is_missed_though_it_has_an_answer_time(
    tmp_path: Path,
) -> None:
    """A customer rings at 09:00:00; 3CX routes the call to EndCall, which answers at 09:00:01
    and hangs up at 09:00:09: no person, so `exit_empty` with a wait of 9 s (until the system
    hung up), a callback inquiry for the number, and the poll names where the system ended it.
    A second caller whose queue answered at once hung up after 80 s: abandoned, wait 80 s. A
    third reached extension 101 directly after 15 s: answered, wait 15 s."""
    write(
        tmp_path / "cdr.log",
        threecx(1, "09:00:00", caller="+442079460001", types=("Line", "EndCall", "EndCall"),
                answered=1, length=9, to_dn="899", final_dn="899"),
        threecx(2, "09:10:00", caller="+442079460002", types=("Line", "Queue", "Queue"),
                answered=1, length=80, reason="TerminatedBySrc", final_dn="800"),
        threecx(3, "09:20:00", caller="+442079460003", types=("Line", "Extension", "Extension"),
                answered=15, length=75, to_dn="101"),
    )  # fmt: skip
    settings, engine = open_store(tmp_path, [THREECX], timezone="UTC")
    result = poll(engine, settings, "3cx")
    assert found(engine) == {
        "call:Call 1": ("exit_empty", 9),
        "call:Call 2": ("abandoned", 80),
        "call:Call 3": ("answered", 15),
    }
    assert len(inquiries(engine)) == 2  # both missed callers are owed a callback
    assert result.noted == Counter({"calls the system ended at 3CX EndCall 899": 1})


def test_an_ivr_only_call_and_a_voicemail_call_in_an_asterisk_cdr_are_not_answered(
    tmp_path: Path,
) -> None:
    """Three trunk calls, as Asterisk 12+ writes them:
    - IVR only: the PBX answers at once (Answer, BackGround), the caller listens for 50 s and
      hangs up; nobody else was on the call (no dstchannel): abandoned, wait 50 s;
    - the IVR sends the caller to FreePBX's "Terminate Call: hangup" (app-blackhole, Hangup)
      after 12 s: ended by the system, `exit_empty`, wait 12 s;
    - voicemail: extension 101 rings 20 s unanswered, then VoiceMail answers and records for
      30 s: `timeout` (reached voicemail), wait 20 s (until voicemail took it).
    Each asks for a callback."""
    write(
        tmp_path / "Master.csv",
        cdr("1.1", "09:00:00", src="+442079460001", dst="s", channel="PJSIP/trunk-00000001",
            context="ivr-1", lastapp="BackGround", lastdata="custom/welcome", talk=50),
        cdr("2.1", "09:10:00", src="+442079460002", dst="hangup", channel="PJSIP/trunk-00000002",
            context="app-blackhole", lastapp="Hangup", talk=12),
        cdr("3.1", "09:20:00", src="+442079460003", dst="101", channel="PJSIP/trunk-00000003",
            context="from-did-direct", dstchannel="PJSIP/101-00000004", ring=20,
            linkedid="3.1"),
        cdr("3.2", "09:20:20", src="+442079460003", dst="vmu101", channel="PJSIP/trunk-00000003",
            context="macro-vm", lastapp="VoiceMail", lastdata="101@default,u", talk=30,
            linkedid="3.1"),
    )  # fmt: skip
    settings, engine = open_store(tmp_path, [PBX])
    result = poll(engine, settings, "pbx")
    assert found(engine) == {
        "call:1.1": ("abandoned", 50),
        "call:2.1": ("exit_empty", 12),
        "call:3.1": ("timeout", 20),
    }
    assert len(inquiries(engine)) == 3
    assert result.noted == Counter({"calls the system ended at app-blackhole,hangup (Hangup)": 1})


# mod_cdr_csv's `example` template (conf/vanilla/autoload_configs/cdr_csv.conf.xml) + waitsec.
FREESWITCH_WAITSEC = (
    "caller_id_name caller_id_number destination_number context start_stamp answer_stamp "
    "end_stamp duration billsec hangup_cause uuid bleg_uuid accountcode read_codec write_codec "
    "waitsec"
).split()


def test_a_freeswitch_call_answered_by_an_ivr_waits_until_the_bridge_to_a_person(
    tmp_path: Path,
) -> None:
    """mod_cdr_csv's `example` template plus `${waitsec}`:
    - the IVR answers at 10:00:02 and bridges the caller to an agent at 10:00:40 (waitsec 40):
      answered, wait 40 s (not the 2 s until the IVR's answer), answered at 10:00:40;
    - the IVR answers at 10:10:01, the caller never reaches anyone and hangs up at 10:11:01
      (waitsec 0): not answered, abandoned after 60 s, and a callback inquiry."""
    write(
        tmp_path / "Master.csv",
        '"Dana","02079460001","1000","default","2026-11-20 10:00:00","2026-11-20 10:00:02",'
        '"2026-11-20 10:05:00","300","298","NORMAL_CLEARING","u-1","","","PCMU","PCMU","40"',
        '"Eve","02079460002","1000","default","2026-11-20 10:10:00","2026-11-20 10:10:01",'
        '"2026-11-20 10:11:00","60","59","NORMAL_CLEARING","u-2","","","PCMU","PCMU","0"',
    )
    entry = {
        "name": "fs",
        "kind": "call_csv",
        "path": "Master.csv",
        "preset": "freeswitch",
        "fields": FREESWITCH_WAITSEC,
        "timezone": "UTC",
    }
    settings, engine = open_store(tmp_path, [entry])
    result = poll(engine, settings, "fs")
    assert found(engine) == {"call:u-1": ("answered", 40), "call:u-2": ("abandoned", 60)}
    answered = aware(calls(engine)["call:u-1"].answered_at)
    assert answered == datetime(2026, 11, 20, 10, 0, 40, tzinfo=UTC)
    assert len(inquiries(engine)) == 1
    assert not result.noted.get("answered calls the file cannot tell")


def test_the_example_template_says_once_that_it_cannot_tell_a_person_from_the_pbx(
    tmp_path: Path,
) -> None:
    """The stock `example` template has no bridge time: an answer there may be an IVR's.
    `check` says so once for the file, and the poll once, with how many answered calls it
    concerns (both calls here are counted answered, waits 2 s and 1 s, as the file says)."""
    write(
        tmp_path / "Master.csv",
        '"Dana","02079460001","1000","default","2026-11-20 10:00:00","2026-11-20 10:00:02",'
        '"2026-11-20 10:05:00","300","298","NORMAL_CLEARING","u-1","","","PCMU","PCMU"',
        '"Eve","02079460002","1000","default","2026-11-20 10:10:00","2026-11-20 10:10:01",'
        '"2026-11-20 10:11:00","60","59","NORMAL_CLEARING","u-2","","","PCMU","PCMU"',
    )
    entry = {
        "name": "fs",
        "kind": "call_csv",
        "path": "Master.csv",
        "preset": "freeswitch",
        "timezone": "UTC",
        "direction": "inbound",
    }
    mapping = {"sources": [entry], "database": f"sqlite:///{tmp_path / 'check.db'}"}
    lines: list[str] = []
    run_checks(settings_from_mapping(mapping, tmp_path), lines.append)
    (line,) = [x for x in lines if x.startswith("ok    source fs")]
    assert "cannot tell from the phone system's own answer" in line
    assert "answered_by_person" in line
    settings, engine = open_store(tmp_path, [entry])
    result = poll(engine, settings, "fs")
    assert found(engine) == {"call:u-1": ("answered", 2), "call:u-2": ("answered", 1)}
    (remark,) = result.noted
    assert remark.startswith("answered calls the file cannot tell") and result.noted[remark] == 2
    assert result.summary().count("cannot tell") == 1


def test_a_call_log_row_answered_by_an_auto_attendant_is_not_answered(tmp_path: Path) -> None:
    """A call log with one "Answered" time and an "Answered by" column. With
    `answered_by_person: ["Answered by", ["!Auto Attendant", "!Voicemail"]]`:
    - answered by Dana after 12 s: answered, wait 12 s;
    - answered by the Auto Attendant at once, ended 45 s in with no person: not answered; the
      log does not say who hung up, so the caller gave up there: abandoned, wait 45 s, and a
      callback inquiry."""
    write(
        tmp_path / "calls.csv",
        "Start,From,Answered,End,Answered by",
        "2026-11-20 09:00:00,+442079460001,2026-11-20 09:00:12,2026-11-20 09:04:00,Dana",
        "2026-11-20 09:10:00,+442079460002,2026-11-20 09:10:00,2026-11-20 09:10:45,Auto Attendant",
    )
    source = {
        "name": "log",
        "kind": "call_csv",
        "path": "calls.csv",
        "timezone": "UTC",
        "direction": "inbound",
        "columns": {"entered": "Start", "caller": "From", "answered": "Answered", "ended": "End"},
        "answered_by_person": ["Answered by", ["!Auto Attendant", "!Voicemail"]],
    }
    settings, engine = open_store(tmp_path, [source])
    result = poll(engine, settings, "log")
    outcomes = {r.caller: (r.outcome, r.wait_seconds) for r in calls(engine).values()}
    assert outcomes == {
        "+442079460001": ("answered", 12),
        "+442079460002": ("abandoned", 45),
    }
    assert len(inquiries(engine)) == 1
    assert not result.noted


def test_a_3cx_call_ending_in_voicemail_is_a_voicemail_not_an_abandon(tmp_path: Path) -> None:
    """3CX writes the voicemail box a call ended in as its final-type `VoiceMail` (the 3CX CDR
    fields final-type and to-type: "Final destination type", "Destination type"):
    - a customer rings at 09:00:00 and the call goes straight to the voicemail of extension 101
      (to-type and final-type VoiceMail), which answers at 09:00:20; the caller leaves a
      message and hangs up at 09:01:00: no person answered, the caller reached voicemail:
      `timeout` (the voicemail outcome), wait 20 s (until voicemail's own answer), a callback;
    - a customer rings at 09:10:00, queue 800 answers at once (music on hold), and after the
      queue's timeout the call goes to voicemail, where the caller hangs up at 09:12:00: the
      answer time is the queue's, so nothing says when voicemail took the call: `timeout`,
      wait 120 s (until the call ended), a callback.
    The old code took both for callers who gave up (`abandoned`)."""
    write(
        tmp_path / "cdr.log",
        threecx(1, "09:00:00", caller="+442079460001", reason="TerminatedBySrc",
                types=("Line", "VoiceMail", "VoiceMail"), answered=20, length=60, to_dn="101"),
        threecx(2, "09:10:00", caller="+442079460002", reason="TerminatedBySrc",
                types=("Line", "Queue", "VoiceMail"), answered=0, length=120),
    )  # fmt: skip
    settings, engine = open_store(tmp_path, [THREECX], timezone="UTC")
    result = poll(engine, settings, "3cx")
    assert found(engine) == {"call:Call 1": ("timeout", 20), "call:Call 2": ("timeout", 120)}
    left = aware(calls(engine)["call:Call 1"].left_at)
    assert left == datetime(2026, 11, 20, 9, 0, 20, tzinfo=UTC)
    assert len(inquiries(engine)) == 2  # both callers are owed a callback
    assert not result.noted  # voicemail is no destination where the system ended a call


# mod_cdr_csv's `example` template plus `${last_app}` (the last dialplan application the
# A-leg ran: `voicemail` as mod_voicemail registers it, `bridge` as mod_dptools does).
FREESWITCH_LAST_APP = [*FREESWITCH_WAITSEC[:-1], "last_app"]


def test_a_freeswitch_call_whose_last_app_is_voicemail_is_a_voicemail(tmp_path: Path) -> None:
    """mod_cdr_csv's `example` template plus `${last_app}`:
    - an IVR answers at 11:00:02, the caller is sent to voicemail and hangs up at 11:01:30
      (duration 90, billsec 88, last_app `voicemail`): no person answered, the caller reached
      voicemail: `timeout` (the voicemail outcome), wait 90 s (the template does not say when
      voicemail took over from the IVR, so until the call ended), a callback;
    - a call the IVR answers at 11:10:01 and bridges to an agent, ending at 11:15:00 (last_app
      `bridge`): answered as the file says, wait 1 s (this template has no bridge time).
    The old code counted the voicemail call answered within 2 s."""
    write(
        tmp_path / "Master.csv",
        '"Dana","02079460001","1000","default","2026-11-20 11:00:00","2026-11-20 11:00:02",'
        '"2026-11-20 11:01:30","90","88","NORMAL_CLEARING","u-1","","","PCMU","PCMU","voicemail"',
        '"Eve","02079460002","1000","default","2026-11-20 11:10:00","2026-11-20 11:10:01",'
        '"2026-11-20 11:15:00","300","299","NORMAL_CLEARING","u-2","","","PCMU","PCMU","bridge"',
    )
    entry = {
        "name": "fs",
        "kind": "call_csv",
        "path": "Master.csv",
        "preset": "freeswitch",
        "fields": FREESWITCH_LAST_APP,
        "timezone": "UTC",
        "direction": "inbound",
    }
    settings, engine = open_store(tmp_path, [entry])
    poll(engine, settings, "fs")
    assert found(engine) == {"call:u-1": ("timeout", 90), "call:u-2": ("answered", 1)}
    assert len(inquiries(engine)) == 1
