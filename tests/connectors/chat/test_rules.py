"""The chat rules every export kind keeps, checked on each: a bot's greeting or acknowledgement
never answers anyone, and two questions then one reply are measured from the first question."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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
from tests.connectors.store import inquiries, messages, open_store, poll

# Every scenario: a bot speaks at 09:00, the customer asks at 09:01 and again at 09:03, the bot
# speaks again at 09:04, an agent replies at 09:06: one inquiry, answered in 300 s.
T = [at(9 + minutes / 60) for minutes in (0, 1, 3, 4, 6)]


def slack(folder: Path) -> dict[str, Any]:
    root = T[1]
    bot = {"subtype": "bot_message", "bot_id": "B01HELP", "username": "Helpbot"}
    SlackExport(folder / "export").add(
        "support",
        message(None, T[0], **bot),  # a bot's greeting in the channel
        message("U09DANA", T[1], thread=root),
        message("U09DANA", T[2], thread=root),
        message("U07BOT", T[3], thread=root),  # a users.json bot
        message("U01SAM", T[4], thread=root),
    ).write()
    return {"kind": "slack_export", "path": "export", "channels": ["support"]}


def zendesk(folder: Path) -> dict[str, Any]:
    history = [
        zendesk_entry("chat.msg", T[0], "trigger"),
        zendesk_entry("chat.msg", T[1], "visitor"),
        zendesk_entry("chat.msg", T[2], "visitor"),
        zendesk_entry("chat.msg", T[3], "system"),
        zendesk_entry("chat.msg", T[4], "360786799676"),
    ]
    (folder / "chats.json").write_text(json.dumps([zendesk_chat("z1", history)]))
    return {"kind": "zendesk_chat", "path": "chats.json"}


def livechat_2(folder: Path) -> dict[str, Any]:
    events = [
        livechat_v2_event(T[0], "agent"),  # the greeting
        livechat_v2_event(T[1], "visitor"),
        livechat_v2_event(T[2], "visitor"),
        livechat_v2_event(T[3], "visitor", "event"),
        livechat_v2_event(T[4], "agent"),
    ]
    (folder / "chats.json").write_text(json.dumps([livechat_v2("L1", events, ended=None)]))
    return {"kind": "livechat", "path": "chats.json"}


def livechat_3(folder: Path) -> dict[str, Any]:
    greeting = {"properties": {"lc2": {"welcome_message": True}}}
    events = [
        v3_event("e1", T[0], "sam@shop.example", **greeting),
        v3_event("e2", T[1], CUSTOMER_ID),
        v3_event("e3", T[2], CUSTOMER_ID),
        v3_event("e4", T[3], "f1a0c0de-bot"),
        v3_event("e5", T[4], "sam@shop.example"),
    ]
    chat = livechat_v3("C1", [v3_thread("T1", events, active=True)])
    (folder / "chats.json").write_text(json.dumps(chat))
    return {"kind": "livechat", "path": "chats.json"}


KINDS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "slack_export": slack,
    "zendesk_chat": zendesk,
    "livechat_v2": livechat_2,
    "livechat_v3": livechat_3,
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bot_greetings_never_close_an_inquiry_and_two_questions_count_from_the_first(
    tmp_path: Path, kind: str
) -> None:
    source = {"name": "chat", **KINDS[kind](tmp_path)}
    settings, engine = open_store(tmp_path, [source])
    result = poll(engine, settings, "chat")
    assert result.rejected == 0 and result.messages >= 5
    (inquiry,) = inquiries(engine)
    assert (inquiry.status, inquiry.kind, inquiry.response_seconds) == ("answered", "first", 300.0)
    assert inquiry.breached  # chat sources default to a 2-minute reply target
    automatic = sorted(m.at.minute for m in messages(engine).values() if m.automatic)
    assert automatic == [0, 4]
