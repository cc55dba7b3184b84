"""The `answering_service_mail` connector: the message notifications an answering service
e-mails (most services e-mail each message they take and offer no export).

It reads them where they land, as the e-mail kinds do: `from: imap` (an IMAP folder, with the
`imap` kind's keys: host, username, password, folders...), `from: mbox` (the `mbox` kind's
`path`) or `from: maildir` (the `maildir` kind's `path` and `folders`), with their reading,
cursors and limits (connectors.mail.imap, .mbox, .maildir): never marking anything read
(`BODY.PEEK`), a cursor per folder or file. No sent folder is read.

This is the one kind that reads message bodies, and only to extract these keys, each by a
pattern with a named group `value`
(`callback_number: 'Call back on:\\s*(?P<value>[+\\d ()-]{7,})'`):

- `taken_at`: when the message was taken, read with `time_format` in `timezone`; without a
  pattern, the notification's arrival (INTERNALDATE, the mbox `From ` line, the Maildir
  delivery time; else its `Date:`);
- `caller`, `callback_number`: who rang and the number to call back (at least one of the two);
- `urgency`: shown beside the message (`urgency: High`);
- `callback_at`: when the service says the call was returned (a callback in the message's
  conversation), and `id`: the service's message id (default: the Message-ID).

The patterns run on the text `Subject: <subject>`, an empty line, then the body as text
(connectors.mail.body_text: MIME decoded, HTML reduced to text, at most 64 k characters),
with RE2 (google-re2), whose matching takes time linear in the text whatever the pattern, so
neither a pattern nor an outsider's text can make a poll hang. The body is read into memory
only up to `max_message_bytes` (a longer message is rejected, unread), matched, and dropped:
it is never stored or logged, and rejection reasons name the key, never the text.

A notification is trusted only as far as its sender: anyone can write an e-mail that looks
like one. Mail whose From address is not one of `senders` (addresses, or domains of the
service) is skipped and counted ("not from the answering service"). A notification from the
service in which neither number is found, or whose `taken_at` is not found, is a located
rejection (`FOLDER uid N`, `file:line`, `folder/cur/name`); the rest is stored.

The messages are answering_service_csv's (monitor.measure.events.answering_message): an
inquiry on channel `answering_service` in the callback conversation of the number, closed by
a later outbound call to it or the caller getting through in any phone source, or by the
callback the service reports: `callback_at` in the notification, or a notification matching
`returned` (a "call returned" mail) whose numbers and `callback_at` (else its arrival) are a
callback to that number (monitor.measure.events.callback_made).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo

import re2
from pydantic import AfterValidator, Field, ValidatorFunctionWrapHandler, model_validator

from connectors.base import (
    Batch,
    Connector,
    ConnectorContext,
    ConnectorError,
    Cursor,
    Made,
    Records,
)
from connectors.csv_rows import DEFAULT_TIME_FORMATS, parse_time
from connectors.mail.body_text import message_text, tidy
from connectors.mail.headers import parse
from connectors.mail.imap import ImapConnector
from connectors.mail.imap import _arrival as internaldate
from connectors.mail.imap_session import ImapSettings
from connectors.mail.maildir import MaildirConnector, MaildirSettings
from connectors.mail.mbox import MboxConnector, MboxSettings
from connectors.mail.message import MAX_HEADER_BYTES, MailArchive, MailError, too_long
from monitor.config import SourceSettings, TimezoneName
from monitor.errors import BadRecord
from monitor.measure.events import Channel, Event, answering_message, callback_made

KEYS = ("taken_at", "caller", "callback_number", "urgency", "callback_at", "id")
Key = Literal["taken_at", "caller", "callback_number", "urgency", "callback_at", "id"]
DEFAULT_MAX_MESSAGE = 256 * 1024
DEFAULT_BATCH = 100  # notifications per batch: bodies are in memory, so fewer than headers
MAX_BATCH_BYTES = 64 * 1024 * 1024  # batch_size x max_message_bytes: a batch's bodies at most
MAX_VALUE = 200  # characters of an extracted value kept
NOT_FROM_SERVICE = "messages not from the answering service's senders"
UNMATCHED_CALLBACKS = "callbacks to numbers too short to match"


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a pattern that does not compile is a config error, not a log
    return options


_RE2_OPTIONS = _options()


def compile_pattern(pattern: str) -> Any:
    """`pattern` compiled by RE2; ValueError saying why not."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        why = exc.args[0] if exc.args else exc
        why = why.decode("utf-8", "replace") if isinstance(why, bytes) else str(why)
        raise ValueError(
            f"not a regular expression RE2 accepts ({why}; no look-arounds or back-references)"
        ) from None


def _value_pattern(pattern: str) -> str:
    if "value" not in compile_pattern(pattern).groupindex:
        raise ValueError("the pattern has no group named value: write (?P<value>...)")
    return pattern


def _any_pattern(pattern: str) -> str:
    compile_pattern(pattern)
    return pattern


ValuePattern = Annotated[str, AfterValidator(_value_pattern)]
Pattern = Annotated[str, AfterValidator(_any_pattern)]


class AnsweringServiceMailSettings(SourceSettings):
    """The kind's own keys; the reading keys are those of the kind named by `from`, checked
    by the model of that reader (the subclasses below)."""

    channel: ClassVar[Channel] = Channel.ANSWERING_SERVICE
    read_from: Literal["imap", "mbox", "maildir"] = Field(alias="from")
    # Addresses (messages@service.example) or domains (service.example) the service sends from.
    senders: list[str] = Field(min_length=1)
    patterns: dict[Key, ValuePattern]
    returned: Pattern | None = None  # a notification matching this reports a callback
    time_format: list[str] = Field(default_factory=lambda: list(DEFAULT_TIME_FORMATS))
    timezone: TimezoneName | None = None  # for taken_at/callback_at without an offset
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE, ge=1024, le=MAX_HEADER_BYTES)
    batch_size: int = Field(default=DEFAULT_BATCH, ge=1, le=1000)

    @model_validator(mode="wrap")
    @classmethod
    def _reader_keys(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # `from` picks the model that knows the reader's keys (and refuses the others').
        if cls is AnsweringServiceMailSettings and isinstance(data, dict):
            model = READER_SETTINGS.get(data.get("from"))  # type: ignore[arg-type]
            if model is not None:
                return model.model_validate(data)
        return handler(data)

    @model_validator(mode="after")
    def _numbers(self) -> AnsweringServiceMailSettings:
        if not {"caller", "callback_number"} & set(self.patterns):
            raise ValueError("patterns: give callback_number or caller (or both)")
        if self.batch_size * self.max_message_bytes > MAX_BATCH_BYTES:
            raise ValueError(
                f"batch_size x max_message_bytes is over {MAX_BATCH_BYTES // 2**20} MB, what "
                "a batch may hold in memory: lower one of them"
            )
        return self

    @property
    def sender_addresses(self) -> frozenset[str]:
        return frozenset(s.strip().lower() for s in self.senders if "@" in s)

    @property
    def sender_domains(self) -> frozenset[str]:
        return frozenset(s.strip().lower().lstrip("@") for s in self.senders if "@" not in s)


class ImapNotificationSettings(AnsweringServiceMailSettings, ImapSettings):
    read_from: Literal["imap"] = Field(alias="from")
    sent_folder: None = None  # notifications arrive; nothing of ours is read
    all_mail: Literal[False] = False


class MboxNotificationSettings(AnsweringServiceMailSettings, MboxSettings):
    read_from: Literal["mbox"] = Field(alias="from")
    sent_path: None = None


class MaildirNotificationSettings(AnsweringServiceMailSettings, MaildirSettings):
    read_from: Literal["maildir"] = Field(alias="from")
    sent_folder: None = None


READER_SETTINGS: dict[str, type[AnsweringServiceMailSettings]] = {
    "imap": ImapNotificationSettings,
    "mbox": MboxNotificationSettings,
    "maildir": MaildirNotificationSettings,
}


class Notifications:
    """One notification (a whole message, at most `max_message_bytes`) to events."""

    def __init__(self, settings: AnsweringServiceMailSettings, zone: ZoneInfo) -> None:
        self.settings = settings
        self.zone = zone
        self.patterns = {key: compile_pattern(p) for key, p in settings.patterns.items()}
        self.returned = compile_pattern(settings.returned) if settings.returned else None
        self.addresses = settings.sender_addresses
        self.domains = settings.sender_domains

    def events(self, raw: bytes, arrived: datetime | None, skip: Callable[[str], None]) -> Made:
        """The events of the notification `raw`; None (counted by `skip`) for mail that is
        not from the service; BadRecord when it does not match."""
        try:
            return self._events(raw, arrived, skip)
        except (BadRecord, ConnectorError, OSError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - its message or traceback may quote the body
            raise BadRecord(f"cannot be read: unexpected content ({type(exc).__name__})") from None

    def _events(self, raw: bytes, arrived: datetime | None, skip: Callable[[str], None]) -> Made:
        headers = parse(raw)
        sender = headers.sender or ""
        if sender not in self.addresses and sender.rpartition("@")[2] not in self.domains:
            skip(NOT_FROM_SERVICE)
            return None
        text = f"{tidy('Subject: ' + headers.subject)}\n\n{message_text(raw)}"
        found: dict[str, str | None] = {
            key: self._value(pattern, text) for key, pattern in self.patterns.items()
        }
        key = found.get("id") or headers.message_id or f"<{headers.fingerprint()}@synthetic>"
        caller, number = found.get("caller"), found.get("callback_number")
        if not (caller or number):
            wanted = " or ".join(k for k in ("callback_number", "caller") if k in self.patterns)
            raise MailError(f"no match for the {wanted} pattern")
        arrival = arrived or headers.date
        returned_at = self._time(found, "callback_at")
        if self.returned is not None and self.returned.search(text) is not None:
            at = returned_at or arrival
            if at is None:
                raise MailError(f"no callback_at and no arrival time ({headers.date_problem})")
            made = callback_made(key, number or caller, at)
            if not made:
                skip(UNMATCHED_CALLBACKS)
            return made
        if "taken_at" in self.patterns:
            taken = self._time(found, "taken_at")
            if taken is None:
                raise MailError("no match for the taken_at pattern")
        elif arrival is None:
            raise MailError(f"no arrival time and {headers.date_problem}")
        else:
            taken = arrival
        events: list[Event] = answering_message(
            key,
            taken,
            caller=caller,
            callback_number=number,
            urgency=found.get("urgency"),
            returned=returned_at,
        )
        return events

    @staticmethod
    def _value(pattern: Any, text: str) -> str | None:
        match = pattern.search(text)
        if match is None:
            return None
        value = " ".join((match.group("value") or "").split())
        return value[:MAX_VALUE] or None

    def _time(self, found: dict[str, str | None], key: str) -> datetime | None:
        value = found.get(key)
        if value is None:
            return None
        return parse_time(value, key, self.zone, self.settings.time_format)


# --- the readers: the e-mail kinds' own, each message made into a notification's events ----


class _Reader(Connector):
    """What each reader adds to its e-mail kind: the notifications' extraction and size limit,
    and the collector of the fetch under way (its `skip` counts the mail left out)."""

    body_limit: int
    records: Records

    def __init__(
        self,
        source: AnsweringServiceMailSettings,
        context: ConnectorContext,
        notifications: Notifications,
    ) -> None:
        super().__init__(source, context)
        self.notifications = notifications
        self.body_limit = source.max_message_bytes

    def collector(self, now: datetime) -> Records:
        self.records = super().collector(now)
        return self.records

    def notification(self, raw: bytes, arrived: datetime | None) -> Made:
        return self.notifications.events(raw, arrived, self.records.skip)


class _ImapNotifications(_Reader, ImapConnector):
    def items(self, *, gmail: bool) -> list[str]:
        # The whole message, but never more than one byte past the limit (PEEK: still unread).
        return [f"BODY.PEEK[]<0.{self.body_limit + 1}>", "INTERNALDATE", "RFC822.SIZE"]

    def event(self, sent: bool, record: dict[bytes, Any] | None) -> Made:
        if record is None:
            raise MailError("the server returned no data for it")
        size = record.get(b"RFC822.SIZE")
        raw = next((v for k, v in record.items() if k.startswith(b"BODY[")), None)
        if not isinstance(raw, bytes):
            raise MailError("the server returned no message for it")
        if len(raw) > self.body_limit or (isinstance(size, int) and size > self.body_limit):
            raise MailError(too_long(self.body_limit))
        return self.notification(raw, internaldate(record.get(b"INTERNALDATE")))


class _ArchiveNotifications(_Reader, MailArchive):
    """The mbox and Maildir readers: with `body_limit` set, their kinds read whole messages."""

    def archive_event(self, raw: bytes, *, arrived: datetime | None, sent: bool) -> Made:
        return self.notification(raw, arrived)


class _MboxNotifications(_ArchiveNotifications, MboxConnector):
    pass


class _MaildirNotifications(_ArchiveNotifications, MaildirConnector):
    pass


READERS: dict[str, Callable[..., Connector]] = {
    "imap": _ImapNotifications,
    "mbox": _MboxNotifications,
    "maildir": _MaildirNotifications,
}


class AnsweringServiceMailConnector(Connector):
    kind = "answering_service_mail"
    settings = AnsweringServiceMailSettings
    imports_files = True  # from mbox or maildir: `import` reads archives of notifications
    reads_ahead = True  # from imap a poll mostly waits for the server; few messages otherwise

    def __init__(self, source: SourceSettings, context: ConnectorContext) -> None:
        super().__init__(source, context)
        assert isinstance(source, AnsweringServiceMailSettings), type(source)
        self.options = source
        zone = ZoneInfo(source.timezone) if source.timezone else context.timezone
        self.reader = READERS[source.read_from](source, context, Notifications(source, zone))

    def check(self) -> str:
        return self.reader.check()

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        return self.reader.fetch(cursor, now)

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        if self.options.read_from == "imap":
            raise ConnectorError(
                "this source reads IMAP: import files with a source `from: mbox` or "
                "`from: maildir`",
                permanent=True,
            )
        return self.reader.fetch_paths(paths, now)
