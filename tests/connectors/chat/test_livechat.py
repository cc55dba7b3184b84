"""The livechat connector: hand-built v2 and v3 archives polled into a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monitor.config_file import settings_from_mapping
from monitor.store.ingest import build_connector
from tests.connectors.chat.builders import (
    CUSTOMER_ID,
    at,
    killed_after_each_batch,
    livechat_v2,
    livechat_v2_event,
    livechat_v3,
    v3_event,
    v3_thread,
)
from tests.connectors.store import inquiries, messages, open_store, poll, tally


def v2_answered() -> dict[str, Any]:
    """A greeting at the start, two questions, Sam, a supervisor's whisper, the visitor closes."""
    return livechat_v2(
        "MH022RD0K5",
        [
            livechat_v2_event(at(9), "agent"),  # the greeting, sent as the chat starts
            livechat_v2_event(at(9 + 1 / 60), "visitor"),
            livechat_v2_event(at(9 + 1.5 / 60), "visitor", "attachment", files=["x.jpg"]),
            livechat_v2_event(at(9 + 2 / 60), "supervisor"),  # a whisper: not a reply
            livechat_v2_event(at(9 + 3 / 60), "agent"),
            livechat_v2_event(at(9 + 20 / 60), "visitor", "event", text="closed the chat"),
        ],
        ended=at(9 + 20 / 60),
        queue={"duration": 20},
    )


def v2_missed() -> dict[str, Any]:
    return livechat_v2(
        "MH022RD0K6",
        [livechat_v2_event(at(10), "agent"), livechat_v2_event(at(10 + 1 / 60), "visitor")],
        ended=at(10 + 4 / 60),
    )


def v3_chat() -> dict[str, Any]:
    """Two visits (threads) of one chat: the first answered after a bot, the second missed."""
    first = v3_thread(
        "K600PKZON8",
        [
            v3_event(
                "K600PKZON8_1",
                at(11),
                "sam@shop.example",
                properties={"lc2": {"welcome_message": True}},
            ),
            v3_event("K600PKZON8_2", at(11 + 1 / 60), None, "filled_form"),
            v3_event("K600PKZON8_3", at(11 + 2 / 60), CUSTOMER_ID),
            v3_event("K600PKZON8_4", at(11 + 2.5 / 60), "f1a0c0de-bot"),
            v3_event("K600PKZON8_5", at(11 + 3 / 60), "sam@shop.example", visibility="agents"),
            v3_event("K600PKZON8_6", at(11 + 6 / 60), "sam@shop.example"),
            v3_event(
                "K600PKZON8_7",
                at(11 + 9 / 60),
                "system",
                "system_message",
                system_message_type="manual_archived_agent",
            ),
        ],
    )
    second = v3_thread(
        "K600PKZON9",
        [
            v3_event("K600PKZON9_1", at(14), CUSTOMER_ID),
            v3_event("K600PKZON9_2", at(14 + 5 / 60), "system", "system_message"),
        ],
    )
    ongoing = v3_thread("K600PKZONA", [v3_event("K600PKZONA_1", at(16), CUSTOMER_ID)], active=True)
    return livechat_v3("PJ0MRSHTDG", [first, second, ongoing])


def livechat(path: str = "archive.json", **extra: Any) -> dict[str, Any]:
    return {"name": "livechat", "kind": "livechat", "path": path, **extra}


def status(engine: Any) -> dict[tuple[str, str], tuple[str, float | None]]:
    return {(i.conversation, i.kind): (i.status, i.response_seconds) for i in inquiries(engine)}


def test_a_livechat_archive_gives_inquiries_missed_chats_and_automatic_messages(
    tmp_path: Path,
) -> None:
    archive = {"chats": [v2_answered(), v2_missed(), v3_chat()], "total": 3, "pages": 1}
    (tmp_path / "archive.json").write_text(json.dumps(archive, indent=3))
    settings, engine = open_store(tmp_path, [livechat()])
    result = poll(engine, settings, "livechat")
    assert (result.messages, result.rejected) == (22, 0)
    assert status(engine) == {
        # From the first question; the greeting and the whisper answered nothing.
        ("MH022RD0K5", "first"): ("answered", 120.0),
        ("MH022RD0K6", "first"): ("missed", None),
        # The bot's message and the internal note are not replies either.
        ("PJ0MRSHTDG/K600PKZON8", "first"): ("answered", 240.0),
        ("PJ0MRSHTDG/K600PKZON9", "first"): ("missed", None),
        ("PJ0MRSHTDG/K600PKZONA", "first"): ("open", None),
    }
    assert tally(engine, "support_chats_missed_total") == 2
    stored = messages(engine)
    flags = {
        (m.conversation.rpartition("/")[2], m.at.strftime("%H:%M:%S")): (m.automatic, m.internal)
        for m in stored.values()
        if m.automatic or m.internal
    }
    assert flags == {
        ("MH022RD0K5", "09:00:00"): (True, False),  # greeting
        ("MH022RD0K5", "09:02:00"): (False, True),  # supervisor
        ("MH022RD0K5", "09:20:00"): (True, False),  # "closed the chat"
        ("MH022RD0K6", "10:00:00"): (True, False),  # greeting
        ("K600PKZON8", "11:00:00"): (True, False),  # welcome_message
        ("K600PKZON8", "11:01:00"): (True, False),  # the pre-chat form
        ("K600PKZON8", "11:02:30"): (True, False),  # the bot
        ("K600PKZON8", "11:03:00"): (False, True),  # visible to agents only
        ("K600PKZON8", "11:09:00"): (True, False),  # system message
        ("K600PKZON9", "14:05:00"): (True, False),
    }
    assert stored["PJ0MRSHTDG/K600PKZON8/K600PKZON8_3"].customer == "Mary Brown"
    assert stored["PJ0MRSHTDG/K600PKZON8:end"].kind == "ended"


def test_v2_dates_without_epochs_are_read_in_the_chat_timezone(tmp_path: Path) -> None:
    chat = v2_answered()
    for event in chat["events"]:
        del event["timestamp"]
        # The dates were written in UTC above; say they are Berlin time instead.
    chat["timezone"] = "Europe/Berlin"
    del chat["ended_timestamp"]
    chat["ended"] = "Tue, 11/17/26 09:20:00 AM"
    (tmp_path / "archive.json").write_text(json.dumps([chat]))
    settings, engine = open_store(tmp_path, [livechat()])
    assert poll(engine, settings, "livechat").rejected == 0
    first = min(m.at for m in messages(engine).values() if m.side == "customer")
    assert first.strftime("%H:%M") == "08:01"  # 09:01 in Berlin is 08:01 UTC in November
    assert status(engine) == {("MH022RD0K5", "first"): ("answered", 120.0)}


def test_the_configured_timezone_is_used_for_chats_without_one(tmp_path: Path) -> None:
    chat = v2_missed()
    for event in chat["events"]:
        del event["timestamp"]
    del chat["timezone"]
    (tmp_path / "archive.json").write_text(json.dumps(chat))
    settings, engine = open_store(tmp_path, [livechat(timezone="America/New_York")])
    poll(engine, settings, "livechat")
    hours = sorted(m.at.hour for m in messages(engine).values() if m.kind == "message")
    assert hours == [15, 15]  # 10:00 in New York


def test_bad_chats_and_events_are_rejected_with_their_place(tmp_path: Path) -> None:
    bad_v2 = v2_answered()
    bad_v2["events"][1]["user_type"] = "robot"
    bad_v2["events"][2]["type"] = "sticker"
    del bad_v2["events"][3]["timestamp"]
    del bad_v2["events"][3]["date"]
    bad_v2["events"][4]["date"] = "SECRET o'clock"
    del bad_v2["events"][4]["timestamp"]
    bad_v3 = v3_chat()
    bad_v3["threads"][0]["events"][2]["author_id"] = "someone@else.example"
    del bad_v3["threads"][0]["events"][3]["created_at"]
    bad_v3["threads"][0]["events"][5]["type"] = "poll"
    bad_v3["threads"][1] = "SECRET"
    bad_v3["threads"][2]["id"] = None
    chats = [bad_v2, bad_v3, {"id": "X1", "SECRET": 1}, {"messages": []}, 5, v2_missed()]
    (tmp_path / "archive.json").write_text(json.dumps({"chats": chats}))
    settings, engine = open_store(tmp_path, [livechat()])
    result = poll(engine, settings, "livechat")
    reasons = {r.location: r.reason for r in result.rejections}
    where = "archive.json .chats"
    assert reasons == {
        f"{where}[0].events[1]": (
            "unknown user_type 'robot' (expected agent, supervisor or visitor)"
        ),
        f"{where}[0].events[2]": "unknown event type 'sticker'",
        f"{where}[0].events[3]": "missing timestamp and date",
        f"{where}[0].events[4]": (
            "date is not a LiveChat date such as 'Wed, 01/23/13 11:40:53 am'"
        ),
        f"{where}[1].threads[0].events[2]": "author_id is not among the chat's users",
        f"{where}[1].threads[0].events[3]": "missing created_at",
        f"{where}[1].threads[0].events[5]": "unknown event type 'poll'",
        f"{where}[1].threads[1]": "expected a thread object, got a string",
        f"{where}[1].threads[2]": "missing id",
        f"{where}[2]": "neither threads (v3) nor messages or events (v2)",
        f"{where}[3]": "missing id",
        f"{where}[4]": "expected a chat object, got a number",
    }
    assert not [r for r in reasons.values() if "SECRET" in r]
    assert status(engine)[("MH022RD0K6", "first")] == ("missed", None)
    assert poll(engine, settings, "livechat").rejected == 0


def test_an_author_in_the_agents_setting_is_an_agent_without_users(tmp_path: Path) -> None:
    chat = v3_chat()
    chat["users"] = [u for u in chat["users"] if u["type"] == "customer"]
    (tmp_path / "archive.json").write_text(json.dumps(chat))
    settings, engine = open_store(
        tmp_path, [livechat()], agents={"addresses": ["sam@shop.example"]}
    )
    result = poll(engine, settings, "livechat")
    assert [r.reason for r in result.rejections] == ["author_id is not among the chat's users"]
    assert status(engine)[("PJ0MRSHTDG/K600PKZON8", "first")] == ("answered", 240.0)


def test_a_re_export_adds_nothing_and_appended_jsonl_chats_are_read(tmp_path: Path) -> None:
    path = tmp_path / "archive.jsonl"
    path.write_text(json.dumps(v2_answered()) + "\n")
    settings, engine = open_store(tmp_path, [livechat("archive*")])
    assert poll(engine, settings, "livechat").messages == 7
    with path.open("a") as handle:
        handle.write(json.dumps(v2_missed()) + "\n")
    assert poll(engine, settings, "livechat").messages == 3
    # The same two chats again, as an API page saved to a file.
    (tmp_path / "archive-page-1.json").write_text(
        json.dumps({"chats": [v2_missed(), v2_answered()]})
    )
    again = poll(engine, settings, "livechat")
    assert (again.messages, again.rejected) == (0, 0)


def test_an_interrupted_poll_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    (tmp_path / "archive.json").write_text(json.dumps([v2_answered(), v2_missed(), v3_chat()]))
    settings = settings_from_mapping({"sources": [livechat()]}, tmp_path)
    connector = build_connector(settings, settings.sources[0])
    connector.max_records = 3  # type: ignore[attr-defined]
    everything = [e for b in connector.fetch(None, at(0, 3)) for e in b.events]
    collected = killed_after_each_batch(connector, at(0, 3))
    assert collected == everything and len(everything) == 22


def test_an_archive_shaped_like_the_v2_documentation_parses(tmp_path: Path) -> None:
    """Modelled on the documented v2 "get list of chats" response: both time forms, goals,
    surveys and custom variables, a queue, a supervisor, an attachment, a "closed" event whose
    time is out of order, and `messages` holding only the text lines of `events`."""
    chat = v2_answered()
    chat.update(
        {
            "started": "Tue, 11/17/26 09:00:00 am",
            "ended": "Tue, 11/17/26 09:20:00 am",
            "chat_start_url": "https://shop.example/tents",
            "referrer": "https://search.example",
            "engagement": "immediate_start",
            "supervisors": [{"display_name": "Jane Lead", "email": "jane@shop.example"}],
            "prechat_survey": [{"key": "E-mail:", "value": "", "id": "13589376348060238"}],
            "postchat_survey": [{"key": "Rate us", "value": "Good", "id": "137164167769201638"}],
            "custom_variables": [{"key": "customer_login", "value": "mary_b"}],
            "goals": [{"id": 71, "name": "sale", "timestamp": 1795424400, "order": {"price": "9"}}],
        }
    )
    chat["events"][-1]["timestamp"] -= 900  # the "closed" event's time disagrees with its date
    (tmp_path / "archive.json").write_text(json.dumps({"chats": [chat], "total": 1, "pages": 1}))
    settings, engine = open_store(tmp_path, [livechat()])
    result = poll(engine, settings, "livechat")
    assert (result.messages, result.rejected) == (7, 0)
    assert status(engine) == {("MH022RD0K5", "first"): ("answered", 120.0)}


def test_a_v3_chat_shaped_like_the_agent_api_get_chat_response_parses(tmp_path: Path) -> None:
    """Modelled on the Agent Chat API's `get_chat` response: one `thread` (not `threads`),
    RFC 3339 times with microseconds, users with offsets in their own times, property
    namespaces, previous/next thread ids, a thread still active."""
    chat = {
        "id": "PJ0MRSHTDG",
        "thread": {
            "id": "K600PKZON8",
            "created_at": "2026-11-17T07:57:41.512000Z",
            "active": True,
            "user_ids": [CUSTOMER_ID, "sam@shop.example"],
            "events": [
                v3_event("Q20N9CKRX2_1", at(7.9), CUSTOMER_ID),
                v3_event("Q20N9CKRX2_2", at(7.95), "sam@shop.example", recipients="all"),
            ],
            "properties": {"0805e283233042b37f460ed8fbf22160": {"string_property": "x"}},
            "access": {"group_ids": [0]},
            "previous_thread_id": "K600PKZOM8",
            "next_thread_id": "K600PKZOO8",
        },
        "users": [
            {
                "id": CUSTOMER_ID,
                "type": "customer",
                "present": True,
                "created_at": "2026-11-17T08:53:20.693553+01:00",
                "statistics": {"chats_count": 1},
            },
            {
                "id": "sam@shop.example",
                "name": "Agent Smith",
                "email": "sam@shop.example",
                "type": "agent",
                "present": True,
                "avatar": "https://example.com/avatar.jpg",
            },
        ],
        "properties": {"0805e283233042b37f460ed8fbf22160": {"string_property": "x"}},
        "access": {"group_ids": [0]},
        "is_followed": True,
    }
    (tmp_path / "archive.json").write_text(json.dumps(chat, indent=1))
    settings, engine = open_store(tmp_path, [livechat()])
    result = poll(engine, settings, "livechat")
    assert (result.messages, result.rejected) == (2, 0)
    assert status(engine) == {("PJ0MRSHTDG/K600PKZON8", "first"): ("answered", 180.0)}
