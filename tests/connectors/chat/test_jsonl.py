"""The chat_jsonl connector: lines to message events, rejections, cursors, check and import."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.base import Batch, ConnectorContext, ConnectorError, Rejection
from connectors.chat.jsonl import ChatJsonlConnector, ChatJsonlSettings
from monitor.config import Agents
from monitor.measure.events import MessageEvent, MessageKind, Side

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "chat" / "website-chat.jsonl"


def line(**fields: Any) -> str:
    record = {"conversation": "c1", "at": "2026-11-17T09:00:00+00:00", "author_role": "customer"}
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def write_lines(path: Path, *lines: str | bytes) -> Path:
    data = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
    path.write_bytes(data)
    return path


def make(tmp_path: Path, path: str = "website.jsonl", **options: int) -> ChatJsonlConnector:
    settings = ChatJsonlSettings.model_validate(
        {"name": "website-chat", "kind": "chat_jsonl", "path": path}
    )
    context = ConnectorContext(agents=Agents(), base_dir=tmp_path, timezone=ZoneInfo("UTC"))
    return ChatJsonlConnector(settings, context, **options)


def events_of(batches: Iterator[Batch] | list[Batch]) -> list[MessageEvent]:
    found = [event for batch in batches for event in batch.events]
    assert all(isinstance(event, MessageEvent) for event in found)
    return found  # type: ignore[return-value]


def rejections_of(batches: list[Batch]) -> list[Rejection]:
    return [rejection for batch in batches for rejection in batch.rejected]


def read(tmp_path: Path, *lines: str | bytes) -> list[Batch]:
    write_lines(tmp_path / "website.jsonl", *lines)
    return list(make(tmp_path).fetch(None, NOW))


def test_customer_and_agent_messages_become_events(tmp_path: Path) -> None:
    batches = read(
        tmp_path,
        line(id="m1", author="Dana Whitfield", text="Do you ship to Norway?"),
        line(id="m2", at="2026-11-17T09:01:30Z", author_role="agent", author="Sam", text="Yes!"),
    )
    customer, agent = events_of(batches)
    assert customer == MessageEvent(
        external_id="m1",
        conversation="c1",
        at=datetime(2026, 11, 17, 9, tzinfo=UTC),
        side=Side.CUSTOMER,
        customer="Dana Whitfield",
    )
    assert agent.side is Side.AGENT and not agent.automatic
    assert agent.customer is None  # an agent's name is not who is waiting
    assert agent.kind is MessageKind.MESSAGE


def test_bot_and_system_messages_are_automatic(tmp_path: Path) -> None:
    bot, system = events_of(
        read(tmp_path, line(author_role="bot", text="Hi!"), line(author_role="system"))
    )
    assert (bot.side, bot.automatic) == (Side.AGENT, True)
    assert (system.side, system.automatic) == (Side.AGENT, True)


def test_ended_event_marks_the_end_of_the_chat(tmp_path: Path) -> None:
    (ended,) = events_of(read(tmp_path, line(author_role="system", event="ended")))
    assert ended.kind is MessageKind.ENDED


def test_timestamps_are_normalised_to_utc(tmp_path: Path) -> None:
    (event,) = events_of(read(tmp_path, line(at="2026-11-17T10:30:00+01:00")))
    assert event.at == datetime(2026, 11, 17, 9, 30, tzinfo=UTC)


def test_numeric_conversation_and_id_become_strings(tmp_path: Path) -> None:
    (event,) = events_of(read(tmp_path, line(conversation=1042, id=77)))
    assert (event.conversation, event.external_id) == ("1042", "77")


def test_naive_timestamp_is_rejected_with_its_line_number(tmp_path: Path) -> None:
    batches = read(tmp_path, line(), line(at="2026-11-17T09:05:00"), line(id="after"))
    assert [event.external_id for event in events_of(batches)][-1] == "after"
    (rejection,) = rejections_of(batches)
    assert rejection.location == "website.jsonl:2"
    assert "no UTC offset" in rejection.reason


def test_reexported_line_keeps_its_id(tmp_path: Path) -> None:
    write_lines(tmp_path / "a.jsonl", line(text="hello"), line(author_role="agent", text="hi"))
    write_lines(
        tmp_path / "b.jsonl",
        line(author_role="bot", text="welcome"),
        line(text="hello", at="2026-11-17T10:00:00+01:00", extra="ignored"),
    )
    ids_a = [e.external_id for e in events_of(make(tmp_path, "a.jsonl").fetch(None, NOW))]
    ids_b = [e.external_id for e in events_of(make(tmp_path, "b.jsonl").fetch(None, NOW))]
    assert ids_a[0] == ids_b[1]
    assert len(set(ids_a) | set(ids_b)) == 3  # other fields give other ids


def test_blank_lines_are_skipped_silently(tmp_path: Path) -> None:
    batches = read(tmp_path, "", line(), "   ", line(id="m2"))
    assert len(events_of(batches)) == 2 and not rejections_of(batches)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('{"conversation": "c1", SECRET', "not valid JSON"),
        ('["SECRET"]', "expected a JSON object, got an array"),
        (line(conversation=None), "missing conversation"),
        (line(conversation=""), "conversation is empty"),
        (line(conversation=True), "conversation must be a string or a number"),
        (line(at=None), "missing at"),
        (line(at=1763370000), "at must be an ISO 8601 string"),
        (line(at="yesterday"), "at is not an ISO 8601 time"),
        (line(author_role="visitor"), "unknown author_role 'visitor'"),
        (line(author_role=None), "missing author_role"),
        (line(event="transferred"), "unknown event 'transferred'"),
        (line(id=["x"]), "id must be a string or a number"),
        (line(author=5), "author must be a string"),
        (line(text={"SECRET": 1}), "text must be a string, got an object"),
    ],
)
def test_malformed_line_is_rejected_and_the_rest_is_read(
    tmp_path: Path, bad: str, reason: str
) -> None:
    batches = read(tmp_path, bad, line(id="ok"))
    assert [event.external_id for event in events_of(batches)] == ["ok"]
    (rejection,) = rejections_of(batches)
    assert rejection.location == "website.jsonl:1"
    assert reason in rejection.reason
    assert "SECRET" not in rejection.reason


def test_rejection_reasons_never_contain_the_message_text(tmp_path: Path) -> None:
    batches = read(
        tmp_path,
        line(text="my card is 4111 1111", at="not a time"),
        line(text="my card is 4111 1111", author_role="nobody"),
        '{"text": "my card is 4111 1111", ',
    )
    reasons = [str(rejection) for rejection in rejections_of(batches)]
    assert len(reasons) == 3
    assert not [reason for reason in reasons if "4111" in reason]


def test_invalid_utf8_line_is_rejected(tmp_path: Path) -> None:
    batches = read(tmp_path, b'{"conversation": "c\xff"}', line(id="ok"))
    assert [event.external_id for event in events_of(batches)] == ["ok"]
    (rejection,) = rejections_of(batches)
    assert rejection.location == "website.jsonl:1"
    assert "invalid UTF-8" in rejection.reason


def test_huge_line_is_skipped_and_the_rest_is_read(tmp_path: Path) -> None:
    write_lines(tmp_path / "website.jsonl", line(text="x" * 500), line(id="ok"))
    batches = list(make(tmp_path, max_line_bytes=200).fetch(None, NOW))
    assert [event.external_id for event in events_of(batches)] == ["ok"]
    assert [r.location for r in rejections_of(batches)] == ["website.jsonl:1"]


def test_interrupted_after_first_batch_resumes_without_loss_or_duplicates(
    tmp_path: Path,
) -> None:
    lines = [line(id=f"m{i}", at=f"2026-11-17T09:{i:02d}:00Z") for i in range(7)]
    write_lines(tmp_path / "website.jsonl", *lines[:3], "not json", *lines[3:])
    connector = make(tmp_path, max_lines=3)
    full = events_of(connector.fetch(None, NOW))

    fetched = connector.fetch(None, NOW)
    first = next(fetched)
    fetched.close()  # type: ignore[attr-defined]  # the poll is killed after storing batch 1 and its cursor
    stored_cursor = json.loads(json.dumps(first.cursor))
    resumed = events_of(connector.fetch(stored_cursor, NOW))

    collected = [*first.events, *resumed]
    assert len(first.events) == 3
    assert collected == full
    assert len({event.external_id for event in collected}) == len(full) == 7


def test_cursor_round_trips_through_json(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "website.jsonl", line(id="m1"))
    connector = make(tmp_path)
    (batch,) = connector.fetch(None, NOW)
    cursor = json.loads(json.dumps(batch.cursor))
    assert cursor == batch.cursor
    assert list(connector.fetch(cursor, NOW)) == []
    with path.open("a") as handle:
        handle.write(line(id="m2") + "\n")
    assert [e.external_id for e in events_of(connector.fetch(cursor, NOW))] == ["m2"]


def test_unusable_cursor_is_a_permanent_error(tmp_path: Path) -> None:
    write_lines(tmp_path / "website.jsonl", line())
    with pytest.raises(ConnectorError, match="cursor") as caught:
        list(make(tmp_path).fetch({"v": 99}, NOW))
    assert caught.value.permanent


def test_glob_reads_every_matching_file_relative_to_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "chats").mkdir()
    write_lines(tmp_path / "chats" / "day1.jsonl", line(id="a"))
    write_lines(tmp_path / "chats" / "day2.jsonl", line(id="b"))
    write_lines(tmp_path / "chats" / "notes.txt", line(id="c"))
    connector = make(tmp_path, "chats/*.jsonl")
    assert sorted(e.external_id for e in events_of(connector.fetch(None, NOW))) == ["a", "b"]


def test_check_counts_files_and_their_size(tmp_path: Path) -> None:
    (tmp_path / "chats").mkdir()
    (tmp_path / "chats" / "a.jsonl").write_bytes(b"x" * 700_000)
    (tmp_path / "chats" / "b.jsonl").write_bytes(b"x" * 500_000)
    assert make(tmp_path, "chats/*.jsonl").check() == "2 files, 1.2 MB"
    assert make(tmp_path, "chats/a.jsonl").check() == "1 file, 700.0 kB"


def test_check_fails_permanently_when_no_file_matches(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="no file matches") as caught:
        make(tmp_path, "missing/*.jsonl").check()
    assert caught.value.permanent
    assert "\n" not in str(caught.value)


def test_fetch_fails_when_no_file_matches(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="no file matches"):
        list(make(tmp_path, "website.jsonl").fetch(None, NOW))


def test_fetch_paths_reads_the_given_files_fully(tmp_path: Path) -> None:
    export = tmp_path / "export.jsonl"
    export.write_text(line(id="m1") + "\n" + line(id="m2"))  # no final newline: a finished file
    connector = make(tmp_path, "website.jsonl")
    batches = list(connector.fetch_paths([export], NOW))
    assert [e.external_id for e in events_of(batches)] == ["m1", "m2"]


def test_fetch_paths_fails_for_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="no such file"):
        list(make(tmp_path).fetch_paths([tmp_path / "nope.jsonl"], NOW))


def test_settings_refuse_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        ChatJsonlSettings.model_validate(
            {"name": "w", "kind": "chat_jsonl", "path": "x.jsonl", "pth": "y"}
        )


def test_bundled_demo_reads_without_rejections(tmp_path: Path) -> None:
    connector = make(tmp_path, str(EXAMPLE))
    batches = list(connector.fetch(None, NOW))
    events = events_of(batches)
    assert not rejections_of(batches)
    assert len({event.conversation for event in events}) >= 50
    assert len({event.external_id for event in events}) == len(events)
    assert {event.kind for event in events} == {MessageKind.MESSAGE, MessageKind.ENDED}


def test_registry_finds_the_connector() -> None:
    from connectors import connector_class

    assert connector_class("chat_jsonl") is ChatJsonlConnector
