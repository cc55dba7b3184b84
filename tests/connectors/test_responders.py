"""Who answered, as every connector records it: the e-mail sender, the chat or Slack author,
the queue_log member, the CDR answering channel, a call log's agent column; and why the
messages that never pair were left out (the header or subtype). Each source's real file
shape, polled into a real store."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from connectors.phone.asterisk_cdr import member_of
from monitor.measure.events import RESPONDER_SEPARATOR, responder, responder_names
from tests.connectors.chat.builders import (
    CUSTOMER_ID,
    SlackExport,
    at,
    livechat_v2,
    livechat_v2_event,
    livechat_v3,
    message,
    v3_event,
    v3_thread,
    zendesk_chat,
    zendesk_entry,
)
from tests.connectors.store import calls, inquiries, messages, open_store, poll
from tests.mailboxes import message as mail
from tests.mailboxes import write_mbox

T0 = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def names(value: str | None) -> tuple[str, ...]:
    return responder_names(value)


def test_a_responder_keeps_each_identifier_once_most_readable_first() -> None:
    assert responder("Ann  Smith", "U0ANN", None, "", "ann smith", "ann@example.com") == (
        RESPONDER_SEPARATOR.join(["Ann Smith", "U0ANN", "ann@example.com"])
    )
    assert responder(None, " ") is None
    # The separator inside a name cannot split it into an identifier of someone else's.
    assert names(responder(f"Eve{RESPONDER_SEPARATOR}ann@example.com")) == ("Eve ann@example.com",)
    # Cut whole: a long list loses its last identifiers, never half of one.
    many = responder(*(f"{n:03d}" + "x" * 90 for n in range(5)))
    assert all(len(part) == 93 for part in names(many))


def test_mail_records_the_sender_of_a_reply_and_why_an_auto_reply_is_left_out(
    tmp_path: Path,
) -> None:
    question = mail("q1@customer.test", subject="Order", date=T0)
    answer = mail(
        "r1@example.com",
        sender="Ann Smith <ann@example.com>",
        to=["dana@customer.test"],
        subject="Re: Order",
        date=T0 + timedelta(minutes=30),
        in_reply_to="q1@customer.test",
    )
    auto = mail(
        "a1@example.com",
        sender="help@example.com",
        to=["dana@customer.test"],
        date=T0 + timedelta(minutes=1),
        headers={"Auto-Submitted": "auto-replied; owner=help", "Precedence": "bulk"},
    )
    bounce = mail("b1@x.test", sender="MAILER-DAEMON@x.test", to=["help@example.com"], date=T0)
    listed = mail("l1@x.test", sender="news@x.test", date=T0, headers={"List-Id": "<n.x.test>"})
    note = mail("n1@example.com", sender="ann@example.com", to=["bob@example.com"], date=T0)
    write_mbox(
        tmp_path / "mail.mbox",
        [
            (question, T0),
            (auto, T0 + timedelta(minutes=1)),
            (answer, T0 + timedelta(minutes=30)),
            (bounce, T0),
            (listed, T0),
            (note, T0),
        ],
    )
    source = {"name": "mail", "kind": "mbox", "path": "mail.mbox"}
    settings, engine = open_store(tmp_path, [source], agents={"domains": ["example.com"]})
    poll(engine, settings, "mail")
    stored = messages(engine)
    assert stored["<r1@example.com>"].agent == "ann@example.com"
    assert stored["<q1@customer.test>"].agent is None  # customers are not responders
    assert stored["<a1@example.com>"].left_out == "Auto-Submitted: auto-replied"
    assert stored["<b1@x.test>"].left_out == "bounce: from MAILER-DAEMON"
    assert stored["<l1@x.test>"].left_out == "List-Id"
    assert stored["<n1@example.com>"].left_out == "every participant on our side"
    (inquiry,) = inquiries(engine)
    assert (inquiry.agent, inquiry.closed_by) == ("ann@example.com", "<r1@example.com>")


def test_a_chat_log_records_the_author_and_left_out_bots(tmp_path: Path) -> None:
    lines = [
        {"conversation": "c1", "at": "2026-11-19T09:00:00Z", "author_role": "customer"},
        {"conversation": "c1", "at": "2026-11-19T09:00:01Z", "author_role": "bot", "author": "Bo"},
        {
            "conversation": "c1",
            "at": "2026-11-19T09:01:00Z",
            "author_role": "agent",
            "author": "Cy",
        },
    ]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    source = {"name": "chat", "kind": "chat_jsonl", "path": "chat.jsonl"}
    settings, engine = open_store(tmp_path, [source])
    poll(engine, settings, "chat")
    by_agent = {m.agent: m.left_out for m in messages(engine).values()}
    assert by_agent == {None: None, "Bo": "author_role: bot", "Cy": None}
    assert [i.agent for i in inquiries(engine)] == ["Cy"]


def test_slack_records_a_members_name_id_and_email_and_a_bots_subtype(tmp_path: Path) -> None:
    export = SlackExport(tmp_path / "export")
    export.add(
        "support",
        message("U09DANA", at(9)),
        message(None, at(9.1), subtype="bot_message", bot_id="B01", username="Helpbot"),
        message("U02LENA", at(9.5), thread=at(9)),
    )
    export.write()
    source = {"name": "slack", "kind": "slack_export", "path": "export", "channels": ["support"]}
    settings, engine = open_store(tmp_path, [source])
    poll(engine, settings, "slack")
    stored = {m.external_id.rpartition(":")[2]: m for m in messages(engine).values()}
    reply = stored[f"{int(at(9.5).timestamp())}.000100"]
    assert names(reply.agent) == ("Lena Kowalski", "U02LENA", "lena@shop.example")
    bot = stored[f"{int(at(9.1).timestamp())}.000100"]
    assert bot.left_out == "subtype: bot_message"
    assert names(inquiries(engine)[0].agent)[1] == "U02LENA"


def test_zendesk_records_the_agents_name_and_nick_and_why_a_trigger_is_left_out(
    tmp_path: Path,
) -> None:
    history = [
        zendesk_entry("chat.msg", at(9), "visitor"),
        zendesk_entry("chat.msg", at(9.01), "trigger"),
        zendesk_entry("chat.memberjoin", at(9.02), "360786799676"),
        zendesk_entry("chat.msg", at(9.05), "360786799676"),
    ]
    (tmp_path / "chats.json").write_text(json.dumps({"chats": [zendesk_chat("c1", history)]}))
    source = {"name": "zd", "kind": "zendesk_chat", "path": "chats.json"}
    settings, engine = open_store(tmp_path, [source])
    poll(engine, settings, "zd", NOW)
    left = sorted(m.left_out for m in messages(engine).values() if m.left_out)
    assert left == [
        "nick: 'agent:trigger'",
        "the first reply of a chat, standing for a contact with the visitor",
        "type: 'chat.memberjoin'",
    ]
    (inquiry,) = inquiries(engine)
    assert names(inquiry.agent) == ("Sam Porter", "agent:360786799676")


def test_livechat_records_the_agents_name_and_id_in_both_versions(tmp_path: Path) -> None:
    v2 = livechat_v2(
        "V2",
        [
            livechat_v2_event(at(9), "visitor"),
            livechat_v2_event(at(9.01), "supervisor"),
            livechat_v2_event(at(9.1), "agent"),
        ],
        ended=at(10),
    )
    events = [
        v3_event("e1", at(11), CUSTOMER_ID),
        v3_event("e2", at(11.05), "sam@shop.example", visibility="agents"),
        v3_event("e3", at(11.1), "sam@shop.example"),
    ]
    v3 = livechat_v3("V3", [v3_thread("T1", events)])
    (tmp_path / "archive.json").write_text(json.dumps({"chats": [v2, v3]}))
    source = {"name": "lc", "kind": "livechat", "path": "archive.json"}
    settings, engine = open_store(tmp_path, [source])
    poll(engine, settings, "lc", NOW)
    assert [names(i.agent) for i in inquiries(engine)] == [
        ("Sam Porter", "sam@shop.example"),
        ("Sam Porter", "sam@shop.example"),
    ]
    left = sorted(m.left_out for m in messages(engine).values() if m.left_out)
    assert left == ["user_type: supervisor (a whisper)", "visibility: agents (a note)"]


def queue_line(offset: int, callid: str, agent: str, event: str, *data: object) -> str:
    epoch = int(T0.timestamp()) + offset
    return "|".join([str(epoch), callid, "support", agent, event, *map(str, data)])


def test_queue_log_records_the_member_that_connected_in_either_reading_path(
    tmp_path: Path,
) -> None:
    """Plain lines take the fused loop; padded ones (` CONNECT`) the general path."""
    lines = [
        queue_line(0, "1.1", "NONE", "ENTERQUEUE", "", "02079460001", 1),
        queue_line(10, "1.1", "Agent/1001", "CONNECT", 10, "9.1", 2),
        queue_line(70, "1.1", "Agent/1001", "COMPLETECALLER", 10, 60, 1),
        queue_line(100, "1.2", "NONE", "ENTERQUEUE", "", "02079460002", 1),
        queue_line(120, "1.2", " PJSIP/1002 ", "connect", 20, "9.2", 2),
        queue_line(180, "1.2", " PJSIP/1002 ", "completeagent", 20, 60, 1),
        # Completed with no CONNECT read: the completing line names the member.
        queue_line(300, "1.3", "Ann Smith", "COMPLETECALLER", 5, 60, 1),
        queue_line(400, "1.4", "NONE", "ENTERQUEUE", "", "02079460004", 1),
        queue_line(430, "1.4", "NONE", "ABANDON", 1, 1, 30),
    ]
    (tmp_path / "queue_log").write_text("\n".join(lines) + "\n")
    source = {"name": "q", "kind": "asterisk_queue_log", "path": "queue_log"}
    settings, engine = open_store(tmp_path, [source])
    poll(engine, settings, "q")
    agents = {key.partition("@")[0]: call.agent for key, call in calls(engine).items()}
    assert agents == {"1.1": "Agent/1001", "1.2": "PJSIP/1002", "1.3": "Ann Smith", "1.4": None}


def test_queue_log_keeps_the_member_of_a_caller_still_talking_across_polls(
    tmp_path: Path,
) -> None:
    path = tmp_path / "queue_log"
    path.write_text(queue_line(0, "2.1", "NONE", "ENTERQUEUE", "", "02079460001", 1) + "\n")
    source = {"name": "q", "kind": "asterisk_queue_log", "path": "queue_log"}
    settings, engine = open_store(tmp_path, [source])
    poll(engine, settings, "q", T0 + timedelta(seconds=5))  # shown waiting
    with path.open("a") as handle:
        handle.write(queue_line(10, "2.1", "PJSIP/1007", "CONNECT", 10, "9.1", 2) + "\n")
    poll(engine, settings, "q", T0 + timedelta(seconds=20))
    (call,) = calls(engine).values()
    assert (call.outcome, call.agent) == ("answered", "PJSIP/1007")


def rewrite_cursor(engine: Any, source: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit the source's stored cursor in place, as an older version would have saved it."""
    with engine.begin() as conn:
        stored = conn.execute(
            text("SELECT cursor FROM source_state WHERE source = :s"), {"s": source}
        )
        cursor = json.loads(stored.scalar_one())
        change(cursor)
        conn.execute(
            text("UPDATE source_state SET cursor = :c WHERE source = :s"),
            {"c": json.dumps(cursor), "s": source},
        )


def test_a_queue_log_cursor_saved_before_members_were_kept_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_text(queue_line(0, "3.1", "NONE", "ENTERQUEUE", "", "02079460001", 1) + "\n")
    source = {"name": "q", "kind": "asterisk_queue_log", "path": "queue_log"}
    settings, engine = open_store(tmp_path, [source])
    poll(engine, settings, "q", T0 + timedelta(seconds=5))

    def eight_fields(cursor: dict[str, Any]) -> None:
        assert [len(stint) for stint in cursor["open"]] == [9]
        cursor["open"] = [stint[:8] for stint in cursor["open"]]

    rewrite_cursor(engine, "q", eight_fields)
    with path.open("a") as handle:
        handle.write(queue_line(10, "3.1", "PJSIP/1007", "CONNECT", 10, "9.1", 2) + "\n")
    poll(engine, settings, "q", T0 + timedelta(seconds=20))
    (call,) = calls(engine).values()
    assert (call.outcome, call.agent) == ("answered", "PJSIP/1007")


def cdr_row(
    uniqueid: str, src: str, dst: str, context: str, channel: str, dstchannel: str, **times: str
) -> str:
    start, answer, end = times["start"], times.get("answer", ""), times["end"]
    billsec = times.get("billsec", "0")
    app = times.get("app", "Dial")
    disposition = "ANSWERED" if answer else "NO ANSWER"
    return (
        f'"","{src}","{dst}","{context}","""Caller"" <{src}>","{channel}","{dstchannel}",'
        f'"{app}","","{start}","{answer}","{end}","60","{billsec}","{disposition}",'
        f'"DOCUMENTATION","{uniqueid}",""'
    )


def test_a_cdr_records_the_answering_channel_and_the_channel_that_called_back(
    tmp_path: Path,
) -> None:
    rows = [
        cdr_row(
            "1.1",
            "02079460001",
            "600",
            "from-pstn",
            "PJSIP/trunk-00000001",
            "PJSIP/1001-0000002a",
            start="2026-11-19 09:00:00",
            answer="2026-11-19 09:00:12",
            end="2026-11-19 09:01:00",
            billsec="48",
        ),
        cdr_row(
            "1.2",
            "1002",
            "02079460009",
            "from-internal",
            "PJSIP/1002-0000003b",
            "PJSIP/trunk-00000002",
            start="2026-11-19 10:00:00",
            end="2026-11-19 10:01:00",
        ),
    ]
    (tmp_path / "Master.csv").write_text("\n".join(rows) + "\n")
    source = {"name": "cdr", "kind": "asterisk_cdr", "path": "Master.csv", "timezone": "UTC"}
    settings, engine = open_store(tmp_path, [source])
    poll(engine, settings, "cdr", NOW)
    assert [c.agent for c in calls(engine).values()] == ["PJSIP/1001"]
    callback = messages(engine)["out:1.2"]
    assert callback.agent == "PJSIP/1002"
    assert member_of("Local/1001@from-queue-00000012;2") == "Local/1001@from-queue"
    assert member_of("") is None


def test_a_cdr_cursor_saved_before_calling_channels_were_kept_still_loads(
    tmp_path: Path,
) -> None:
    times = {"start": "2026-11-19 09:00:00", "end": "2026-11-19 09:01:00"}
    rows = [
        cdr_row(
            "4.1",
            "02079460001",
            "600",
            "from-pstn",
            "PJSIP/trunk-00000001",
            "PJSIP/1001-0000002a",
            answer="2026-11-19 09:00:12",
            billsec="48",
            **times,
        ),
        cdr_row("4.2", "1002", "02079460009", "from-internal", "PJSIP/1002-0000003b", "", **times),
    ]
    (tmp_path / "Master.csv").write_text("\n".join(rows) + "\n")
    source = {"name": "cdr", "kind": "asterisk_cdr", "path": "Master.csv", "timezone": "UTC"}
    settings, engine = open_store(tmp_path, [source])
    poll(engine, settings, "cdr", T0 + timedelta(seconds=90))  # still settling: pending

    def without_channels(cursor: dict[str, Any]) -> None:
        assert len(cursor["pending"]) == 2
        for leg in cursor["pending"]:
            del leg["channel"]

    rewrite_cursor(engine, "cdr", without_channels)
    poll(engine, settings, "cdr", NOW)
    assert [c.agent for c in calls(engine).values()] == ["PJSIP/1001"]
    assert messages(engine)["out:4.2"].agent is None  # its caller was not kept then


def test_a_call_log_records_its_agent_column_for_answered_calls_and_callbacks(
    tmp_path: Path,
) -> None:
    (tmp_path / "calls.csv").write_text(
        "id,start,answer,end,from,to,dir,user\n"
        "1,2026-11-19T09:00:00Z,2026-11-19T09:00:10Z,2026-11-19T09:05:00Z,"
        "02079460001,600,in,Ann Smith\n"
        "2,2026-11-19T10:00:00Z,,2026-11-19T10:00:30Z,02079460002,600,in,Ann Smith\n"
        "3,2026-11-19T11:00:00Z,,2026-11-19T11:01:00Z,600,02079460002,out,Bob Brown\n"
    )
    columns = {
        "id": "id",
        "entered": "start",
        "answered": "answer",
        "ended": "end",
        "caller": "from",
        "callee": "to",
        "direction": "dir",
        "agent": "user",
    }
    source = {"name": "log", "kind": "call_csv", "path": "calls.csv", "columns": columns}
    settings, engine = open_store(tmp_path, [source])
    poll(engine, settings, "log", NOW)
    stored = calls(engine)
    # An unanswered call was answered by nobody, whatever the column says.
    assert (stored["call:1"].agent, stored["call:2"].agent) == ("Ann Smith", None)
    assert messages(engine)["out:3"].agent == "Bob Brown"
    callback = [i for i in inquiries(engine) if i.status == "answered"]
    assert [i.agent for i in callback] == ["Bob Brown"]
