"""No JSON value, however odd, makes a chat-export parser raise: each becomes events or a
located rejection (hypothesis generates chats, history entries, events and Slack messages
shaped like the real ones but with any values in their fields)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config_file import settings_from_mapping
from monitor.measure.events import MessageEvent
from monitor.store.ingest import build_connector
from tests.connectors.chat.builders import SlackExport, at

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "chat",
            "offline_msg",
            "chat.msg",
            "chat.memberleave",
            "visitor:1",
            "agent:trigger",
            "agent:7",
            "message",
            "event",
            "agent",
            "visitor",
            "supervisor",
            "customer",
            "bot_message",
            "channel_join",
            "1795165200.000100",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-11-20T09:00:00Z",
            "Wed, 01/23/13 11:40:53 am",
            "99999999999.1",
            "U01",
        ]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = [
    "id",
    "type",
    "timestamp",
    "end_timestamp",
    "visitor",
    "history",
    "nick",
    "sender_type",
    "name",
    "msg_id",
    "agent_names",
    "events",
    "messages",
    "threads",
    "thread",
    "users",
    "user_type",
    "created_at",
    "author_id",
    "active",
    "ended_timestamp",
    "date",
    "timezone",
    "properties",
    "visibility",
    "ts",
    "thread_ts",
    "user",
    "subtype",
    "bot_id",
    "hidden",
    "user_team",
    "team",
]
RECORDS = st.recursive(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6),
    lambda inner: st.dictionaries(
        st.sampled_from(KEYS), inner | st.lists(inner, max_size=3), max_size=4
    ),
    max_leaves=10,
)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def parse(folder: Path, kind: str, records: list[Any]) -> None:
    source: dict[str, Any] = {"name": "fuzz", "kind": kind, "path": "input.json"}
    if kind == "slack_export":
        SlackExport(folder / "export").add("support", *records, day="2026-11-20").write()
        source = {**source, "path": "export", "channels": ["support"]}
    else:
        (folder / "input.json").write_text(json.dumps({"chats": records}))
    config = settings_from_mapping({"sources": [source]}, folder)
    for batch in build_connector(config, config.sources[0]).fetch(None, at(0, 3)):
        assert all(isinstance(e, MessageEvent) for e in batch.events)
        assert all(r.location and r.reason for r in batch.rejected)


@FUZZ
@given(records=st.lists(RECORDS, max_size=4))
def test_no_zendesk_chat_makes_the_parser_raise(tmp_path_factory: Any, records: list[Any]) -> None:
    parse(tmp_path_factory.mktemp("zendesk"), "zendesk_chat", records)


@FUZZ
@given(records=st.lists(RECORDS, max_size=4))
def test_no_livechat_chat_makes_the_parser_raise(tmp_path_factory: Any, records: list[Any]) -> None:
    parse(tmp_path_factory.mktemp("livechat"), "livechat", records)


@FUZZ
@given(records=st.lists(RECORDS | VALUES, max_size=4))
def test_no_slack_message_makes_the_parser_raise(tmp_path_factory: Any, records: list[Any]) -> None:
    parse(tmp_path_factory.mktemp("slack"), "slack_export", records)
