"""The `chat_jsonl` connector: a generic chat log, one JSON object a line.

Each line is one message or one end-of-chat marker::

    {"conversation": "c-1042", "at": "2026-11-17T09:15:02+00:00", "author_role": "customer",
     "author": "Dana", "text": "Do you ship to Norway?", "id": "m-88121"}

`author_role` is `customer`, `agent`, `bot` or `system`; bot and system messages are on our side
and automatic, so a bot greeting never counts as a reply. `event` is `message` (the default) or
`ended` when the chat closed. Message text is read only to make a stable id for lines without
an `id`: it is never stored, logged or put in a rejection reason.

The file (or every file a glob matches) is tailed with `connectors.files`, so rotation and
truncation are survived and an interrupted poll resumes without loss or duplicates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from connectors import files
from connectors.base import Batch, Cursor
from connectors.file_source import LineFileSettings, LineFileSource, read_error
from connectors.json_records import RecordError, json_type, text
from monitor.measure.events import Channel, MessageEvent, MessageKind, Side, responder

ROLES = {"customer", "agent", "bot", "system"}
AUTOMATIC_ROLES = {"bot", "system"}
EVENTS = {"message": MessageKind.MESSAGE, "ended": MessageKind.ENDED}


class ChatJsonlSettings(LineFileSettings):
    """`path`: a file or a glob of JSONL files (`chats/*.jsonl`)."""

    channel: ClassVar[Channel] = Channel.CHAT


class LineError(RecordError):
    """A line that cannot become an event; the message is the rejection reason (no text).
    (The field readers of `connectors.json_records` raise its base class, RecordError.)"""


class ChatJsonlConnector(LineFileSource):
    kind = "chat_jsonl"
    settings = ChatJsonlSettings

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        yield from self._batches(self.tail_chunks(cursor), now)

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        yield from self._batches(self.read_chunks(paths), now)

    def _batches(self, chunks: Iterator[files.Chunk], now: datetime) -> Iterator[Batch]:
        records = self.collector(now)
        try:
            for chunk in chunks:
                records.rejected.extend(chunk.rejected)
                for location, data in chunk.lines:
                    records.take(location, parse_line, data)
                yield records.batch(chunk.cursor)
        except OSError as exc:
            raise read_error(exc, self.path) from None


def parse_line(data: bytes) -> MessageEvent | None:
    """One line as an event; None for a blank line; RecordError (the reason) when malformed."""
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(f"invalid UTF-8 at byte {exc.start + 1}") from None
    if not decoded.strip():
        return None
    try:
        record = json.loads(decoded)
    except json.JSONDecodeError as exc:
        raise LineError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError):
        # Valid syntax beyond the parser's limits: an over-long integer or very deep nesting.
        raise LineError("not valid JSON (a number or nesting beyond limits)") from None
    if not isinstance(record, dict):
        raise LineError(f"expected a JSON object, got {json_type(record)}")

    conversation = _identifier(record, "conversation", required=True)
    assert conversation is not None
    at = _timestamp(record.get("at"))
    role = text(record, "author_role", required=True)
    if role not in ROLES:
        raise LineError(f"unknown author_role {_short(role)} (expected {_expected(ROLES)})")
    event = text(record, "event") or "message"
    if event not in EVENTS:
        raise LineError(f"unknown event {_short(event)} (expected {_expected(EVENTS)})")
    author = text(record, "author")
    body = text(record, "text")
    external_id = _identifier(record, "id") or _content_id(
        conversation, at, role, event, author, body
    )
    return MessageEvent(
        external_id=external_id,
        conversation=conversation,
        at=at,
        side=Side.CUSTOMER if role == "customer" else Side.AGENT,
        kind=EVENTS[event],
        automatic=role in AUTOMATIC_ROLES,
        customer=author if role == "customer" and author else None,
        agent=responder(author) if role != "customer" else None,
        left_out=f"author_role: {role}" if role in AUTOMATIC_ROLES else None,
    )


def _content_id(
    conversation: str, at: datetime, role: str, event: str, author: str | None, text: str | None
) -> str:
    """A stable id for a line without `id`: the same line re-exported in another file (or with
    another UTC offset) gets the same id, so the store's unique key drops the repeat."""
    canonical = json.dumps(
        [conversation, at.isoformat(), role, event, author, text],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()


def _timestamp(value: object) -> datetime:
    if value is None:
        raise LineError("missing at")
    if not isinstance(value, str):
        raise LineError(f"at must be an ISO 8601 string, got {json_type(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise LineError("at is not an ISO 8601 time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        # Guessing a zone would shift every response time by hours; the exporter must say.
        raise LineError("at has no UTC offset (naive time; add Z or +HH:MM)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # the year 9999 (or 1) moved past the end of the calendar
        raise LineError("at is out of range") from None


def _identifier(record: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    """A string or a number (not a boolean) as a non-empty string; None when absent."""
    value = record.get(key)
    if value is None or value == "":
        if required:
            raise LineError(f"missing {key}" if value is None else f"{key} is empty")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise LineError(f"{key} must be a string or a number, got {json_type(value)}")
    return str(value)


def _short(value: str | None) -> str:
    # Roles and event names are vocabulary, not message text, but bound them anyway.
    return repr(value if value is None or len(value) <= 24 else value[:24] + "…")


def _expected(names: set[str] | dict[str, Any]) -> str:
    ordered = sorted(names)
    return ", ".join(ordered[:-1]) + " or " + ordered[-1]
