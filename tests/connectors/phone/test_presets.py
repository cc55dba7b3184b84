"""call_csv presets, each read from a fixture written to its system's documented layout, and
the `columns:` examples the phone page gives for exports whose layout no vendor documents."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tests.connectors.store import calls, inquiries, messages, open_store, poll

ROOT = Path(__file__).resolve().parents[3]


def write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def found(engine: Any) -> dict[str, tuple[str, float | None, float | None]]:
    return {k: (r.outcome, r.wait_seconds, r.talk_seconds) for k, r in calls(engine).items()}


# Talkdesk's calls report, its fields in the order docs.talkdesk.com/docs/calls-report lists them.
TALKDESK_FIELDS = (
    "call_id callsid type start_at end_at talkdesk_phone_number talkdesk_phone_display_name "
    "contact_phone_number user_id user_name user_email total_time talk_time wait_time hold_time "
    "abandon_time total_ringing_time disposition_code notes user_voice_rating ring_groups "
    "ivr_options is_in_business_hours is_callback_from_queue is_transfer handling_user_id "
    "handling_user_name handling_user_email recording_url is_external_transfer is_if_no_answer "
    "is_call_forwarding csat_score csat_survey_time team_id team_name rating_reason "
    "agent_disconnected data_status int_custom_field_n1 int_custom_field_n2 "
    "float_custom_field_n1 float_custom_field_n2 text_custom_field_n1 text_custom_field_n2 "
    "text_custom_field_n3 text_custom_field_n4 timestamp_custom_field_n1 disposition_set "
    "nested_disposition"
).split()


def talkdesk_row(
    call: str, kind: str, start: str, end: str, number: str, wait: int, talk: int
) -> str:
    values = dict.fromkeys(TALKDESK_FIELDS, "")
    values |= {
        "call_id": call,
        "type": kind,
        "start_at": start,
        "end_at": end,
        "talkdesk_phone_number": "+442079460999",
        "talkdesk_phone_display_name": "support",
        "contact_phone_number": number,
        "wait_time": str(wait),
        "talk_time": str(talk),
        "handling_user_name": "Sam Rivera" if kind == "inbound" else "",
        "is_in_business_hours": "true",
    }
    return ",".join(values[f] for f in TALKDESK_FIELDS)


def test_the_talkdesk_preset_reads_the_calls_report(tmp_path: Path) -> None:
    """`type` says the direction and what happened; wait_time and talk_time are seconds; times
    are UTC, with or without the `Z`; an outbound call to a missed caller is the callback."""
    write(
        tmp_path / "calls.csv",
        ",".join(TALKDESK_FIELDS),
        talkdesk_row(
            "t1",
            "inbound",
            "2026-11-20T10:00:00Z",
            "2026-11-20T10:05:35Z",
            "+447700900001",
            35,
            300,
        ),
        talkdesk_row(
            "t2", "missed", "2026-11-20T10:10:00Z", "2026-11-20T10:11:00Z", "+447700900002", 60, 0
        ),
        talkdesk_row(
            "t3", "abandoned", "2026-11-20 10:20:00", "2026-11-20 10:22:00", "+447700900003", 120, 0
        ),
        talkdesk_row(
            "t4",
            "short_abandoned",
            "2026-11-20T10:30:00Z",
            "2026-11-20T10:30:04Z",
            "+447700900004",
            4,
            0,
        ),
        talkdesk_row(
            "t5",
            "voicemail",
            "2026-11-20T10:40:00Z",
            "2026-11-20T10:42:00Z",
            "+447700900005",
            90,
            0,
        ),
        talkdesk_row(
            "t6",
            "outbound",
            "2026-11-20T11:00:00Z",
            "2026-11-20T11:03:00Z",
            "+447700900002",
            0,
            170,
        ),
        talkdesk_row(
            "t7",
            "outbound_missed",
            "2026-11-20T11:10:00Z",
            "2026-11-20T11:10:30Z",
            "+447700900005",
            0,
            0,
        ),
    )
    entry = {"name": "td", "kind": "call_csv", "path": "calls.csv", "preset": "talkdesk"}
    settings, engine = open_store(tmp_path, [entry], timezone="Europe/Berlin")
    result = poll(engine, settings, "td")
    assert result.rejected == 0
    assert found(engine) == {
        "call:t1": ("answered", 35, 300),
        "call:t2": ("abandoned", 60, 0),
        "call:t3": ("abandoned", 120, 0),
        "call:t4": ("abandoned", 4, 0),
        "call:t5": ("timeout", 90, 0),
    }
    stored = calls(engine)
    assert stored["call:t4"].short_abandon
    assert stored["call:t3"].entered_at.replace(tzinfo=UTC) == datetime(
        2026, 11, 20, 10, 20, tzinfo=UTC
    )
    assert {r.queue for r in stored.values()} == {"support"}
    status = {i.conversation: i.status for i in inquiries(engine)}
    assert status == {
        "tel:700900002": "answered",  # called back by t6
        "tel:700900003": "open",
        "tel:700900005": "answered",  # an outbound attempt counts, answered or not
    }
    assert result.left_out == {"outbound calls (callbacks, not queue calls)": 2}


FREESWITCH_EXAMPLE = (
    "caller_id_name caller_id_number destination_number context start_stamp answer_stamp "
    "end_stamp duration billsec hangup_cause uuid bleg_uuid accountcode read_codec write_codec"
).split()


def test_the_freeswitch_preset_reads_the_example_templates_rows(tmp_path: Path) -> None:
    """The `example` template as FreeSWITCH writes it (every value quoted, local times, no
    header): the wait is duration - billsec (answered 25 s after the call began; a call
    nobody answered waited all of its 40 s), the talk billsec. The template has no direction,
    so the source says every call is inbound."""
    write(
        tmp_path / "Master.csv",
        '"Dana","02079460001","1000","default","2026-11-20 10:00:00","2026-11-20 10:00:25",'
        '"2026-11-20 10:05:25","325","300","NORMAL_CLEARING","u-1","","1000","PCMU","PCMU"',
        '"","02079460002","1000","default","2026-11-20 10:10:00","","2026-11-20 10:10:40",'
        '"40","0","ORIGINATOR_CANCEL","u-2","","","PCMU","PCMU"',
    )
    entry = {
        "name": "fs",
        "kind": "call_csv",
        "path": "Master.csv",
        "preset": "freeswitch",
        "direction": "inbound",
        "timezone": "Europe/Berlin",
    }
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "fs").rejected == 0
    assert found(engine) == {"call:u-1": ("answered", 25, 300), "call:u-2": ("abandoned", 40, None)}
    assert calls(engine)["call:u-1"].entered_at.replace(tzinfo=UTC) == datetime(
        2026, 11, 20, 9, 0, tzinfo=UTC
    )
    (inquiry,) = inquiries(engine)
    assert inquiry.conversation == "tel:079460002"


def test_a_freeswitch_template_with_waitsec_gives_the_wait_until_the_bridge(tmp_path: Path) -> None:
    """An IVR answered after 2 s and the caller reached a person 22 s in: duration - billsec
    says 2, `${waitsec}` (creation to bridge) says 22, and waitsec is the wait. A call never
    bridged has waitsec 0 and waits until it ended."""
    fields = [*FREESWITCH_EXAMPLE, "waitsec"]
    write(
        tmp_path / "Master.csv",
        '"Dana","02079460001","1000","default","2026-11-20 10:00:00","2026-11-20 10:00:02",'
        '"2026-11-20 10:05:25","325","323","NORMAL_CLEARING","u-1","","","PCMU","PCMU","22"',
        '"Eve","02079460002","1000","default","2026-11-20 10:10:00","","2026-11-20 10:11:00",'
        '"60","0","ORIGINATOR_CANCEL","u-2","","","PCMU","PCMU","0"',
    )
    entry = {
        "name": "fs",
        "kind": "call_csv",
        "path": "Master.csv",
        "preset": "freeswitch",
        "fields": fields,
        "direction": "inbound",
    }
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "fs").rejected == 0
    assert found(engine) == {"call:u-1": ("answered", 22, 323), "call:u-2": ("abandoned", 60, None)}
    answered = calls(engine)["call:u-1"]  # answered by the person, at the bridge, not the IVR
    assert answered.answered_at.replace(tzinfo=UTC) == datetime(2026, 11, 20, 10, 0, 22, tzinfo=UTC)


def test_the_3cx_preset_reads_every_documented_field_and_the_talk_time(tmp_path: Path) -> None:
    """The 27 documented fields in their documented order, as 3CX writes them: no quotes, a
    `Call ` prefix on historyid, `HH:MM:SS` talk time in `duration`, a trailing comma."""
    write(
        tmp_path / "cdr.log",
        "Call 100001,4cc2c72490010000_1,00:08:10,2026/11/20 09:27:28,2026/11/20 09:27:36,"
        "2026/11/20 09:35:46,TerminatedByDst,02079460001,Ext.800,10020,800,800,ReplacedDst,"
        "Ext.101,101,,,,,Chain: 02079460001;Ext.800;Ext.101;,Line,Queue,Extension,"
        "02079460001,Support,Dana Agent,",
        "Call 100002,4cc2c72490010000_2,00:00:00,2026/11/20 09:40:00,,2026/11/20 09:41:30,"
        "TerminatedBySrc,02079460002,Ext.800,10020,800,800,,,,,,,,Chain: 02079460002;Ext.800;,"
        "Line,Queue,Queue,02079460002,Support,,",
    )
    entry = {"name": "3cx", "kind": "call_csv", "path": "cdr.log", "preset": "3cx"}
    settings, engine = open_store(tmp_path, [entry], timezone="UTC")
    assert poll(engine, settings, "3cx").rejected == 0
    assert found(engine) == {
        "call:Call 100001": ("answered", 8, 490),
        "call:Call 100002": ("abandoned", 90, 0),
    }


def test_the_aircall_preset_reads_closed_hours_calls_as_nobody_could_take_them(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "calls.csv",
        "id,direction,started_at,answered_at,ended_at,raw_digits,missed_call_reason,voicemail",
        "1,inbound,2026-11-20T19:00:00Z,,2026-11-20T19:00:20Z,+447700900001,Out_Of_Opening_Hours,",
    )
    entry = {"name": "ac", "kind": "call_csv", "path": "calls.csv", "preset": "aircall"}
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "ac").rejected == 0
    assert found(engine) == {"call:1": ("exit_empty", 20, None)}


def test_the_aircall_preset_on_a_call_history_download_says_what_to_do(tmp_path: Path) -> None:
    write(tmp_path / "calls.csv", AIRCALL_DOWNLOAD[0], *aircall_download_rows()[:1])
    entry = {"name": "ac", "kind": "call_csv", "path": "calls.csv", "preset": "aircall"}
    settings, engine = open_store(tmp_path, [entry])
    from monitor.store.ingest import poll_source

    result = poll_source(engine, settings, settings.sources[0], now=datetime.now(UTC))
    (rejection,) = result.rejections
    assert rejection.reason.startswith("the header has no column 'started_at' (the aircall preset")
    assert "map them with columns:" in rejection.reason


def documented_source(name: str) -> dict[str, Any]:
    """A source of the `columns:` examples in docs/connectors/phone.md, as it is written there."""
    page = (ROOT / "docs" / "connectors" / "phone.md").read_text()
    for block in re.findall(r"```yaml\n(.*?)```", page, re.DOTALL):
        for entry in yaml.safe_load(block) or []:
            if isinstance(entry, dict) and entry.get("name") == name:
                return entry
    raise AssertionError(f"no example named {name} on the phone page")


# The Call History download's header, as the public parsers of real downloads read it.
AIRCALL_DOWNLOAD = [
    "line,datetime (tz offset incl.),number timezone,datetime (utc),country_code,direction,from,"
    "to,answered,missed_call_reason,user,duration (total),duration (in call),voicemail,"
    "recording,comments,tags,call quality,team,call direction - type,call start time,"
    "call end time,aircall number,customer number,in-call duration,call id,call type,"
    "waiting time,time to answer,time in ivr,call id (internal),disconnected by,ivr branch,"
    "ivr widget,call timeline,callback details,callback failure,"
    "automatic callback pending time,time with ai voice agent,entry number,"
    "ai voice agent transfer branch"
]


def aircall_download_rows() -> list[str]:
    def row(n: int, when: str, direction: str, other: str, answered: str, reason: str,
            user: str, kind: str, waiting: str) -> str:  # fmt: skip
        ours = "+44 20 7946 0999"
        source, target = (other, ours) if direction == "inbound" else (ours, other)
        values = [
            "Support", when.replace(" ", "T") + "+00:00", "Europe/London", when, "GB",
            direction, source, target, answered, reason, user, "300", "240", "", "", "", "",
            "", "", kind, "", "", ours, other, "04:00", f"CA{n}", kind.split(" - ")[-1],
            waiting, "00:00:10", "00:00:05", str(n), "external", "", "", "", "", "", "", "",
            "", "",
        ]  # fmt: skip
        return ",".join(values)

    return [
        row(
            1,
            "2026-11-20 10:00:00",
            "inbound",
            "+447700900001",
            "Yes",
            "",
            "Sam",
            "Inbound - Answered",
            "00:00:35",
        ),
        row(
            2,
            "2026-11-20 10:10:00",
            "inbound",
            "+447700900002",
            "No",
            "agents_did_not_answer",
            "[No associated user]",
            "Inbound - Missed",
            "00:01:00",
        ),
        row(
            3,
            "2026-11-20 19:00:00",
            "inbound",
            "+447700900003",
            "No",
            "out_of_opening_hours",
            "[No associated user]",
            "Inbound - Out of business hours",
            "00:00:12",
        ),
        row(
            4,
            "2026-11-20 11:00:00",
            "outbound",
            "+447700900002",
            "Yes",
            "",
            "Sam",
            "Outbound",
            "00:00:00",
        ),
    ]


def test_the_documented_columns_for_aircalls_call_history_download_read_it(
    tmp_path: Path,
) -> None:
    write(tmp_path / "aircall-nov.csv", *AIRCALL_DOWNLOAD, *aircall_download_rows())
    entry = documented_source("aircall-download") | {"path": "aircall-*.csv"}
    settings, engine = open_store(tmp_path, [entry])
    assert poll(engine, settings, "aircall-download").rejected == 0
    assert found(engine) == {
        "call:1": ("answered", 35, None),
        "call:2": ("timeout", 60, None),
        "call:3": ("exit_empty", 12, None),
    }
    status = {i.conversation: i.status for i in inquiries(engine)}
    assert status == {"tel:700900002": "answered", "tel:700900003": "open"}


RINGCENTRAL = [
    '"Type","Phone Number","Name","Date","Time","Action","Action Result","Result Description",'
    '"Duration","Attachment"',
    '"Voice","(202) 555-0101","WASHINGTON, DC","Fri 11/20/2026","9:05:12 AM","Phone Call",'
    '"Missed","Missed","0:00:40",""',
    '"Voice","(202) 555-0102","WASHINGTON, DC","Fri 11/20/2026","2:15:00 PM","Phone Call",'
    '"Voicemail","Voicemail","0:01:10",""',
    '"Voice","(202) 555-0103","WASHINGTON, DC","Fri 11/20/2026","3:00:00 PM","Phone Call",'
    '"Accepted","Accepted","0:04:00",""',
]


def test_the_documented_columns_for_ringcentral_split_date_and_time(tmp_path: Path) -> None:
    """`Date` and `Time` are one time (`Fri 11/20/2026 9:05:12 AM`, New York time); missed calls
    wait their duration and ask for a callback; an accepted call has no wait to give and is
    rejected, located, with that reason."""
    write(tmp_path / "call-log-incoming-nov.csv", *RINGCENTRAL)
    entry = documented_source("ringcentral") | {"path": "call-log-incoming-*.csv"}
    settings, engine = open_store(tmp_path, [entry])
    result = poll(engine, settings, "ringcentral")
    assert [str(r) for r in result.rejections] == [
        "call-log-incoming-nov.csv:4: no wait: map `wait`, `duration` and `billable`, or "
        "`answered` and `ended`"
    ]
    stored = calls(engine)
    assert {k: (r.outcome, r.wait_seconds) for k, r in stored.items()} == {
        next(k for k, r in stored.items() if r.caller == "(202) 555-0101"): ("abandoned", 40),
        next(k for k, r in stored.items() if r.caller == "(202) 555-0102"): ("timeout", 70),
    }
    first = min(r.entered_at for r in stored.values()).replace(tzinfo=UTC)
    assert first == datetime(2026, 11, 20, 14, 5, 12, tzinfo=UTC)
    assert {m.conversation for m in messages(engine).values()} == {"tel:025550101", "tel:025550102"}
