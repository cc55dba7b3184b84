"""The `mbox` connector: mail archives in mbox format (Google Takeout, Thunderbird, a server's
/var/mail), for backfill and for mailboxes without IMAP.

A message starts at a `From ` line that opens the file or follows an empty line (mboxo and
mboxrd writers escape `From ` at the start of body lines; requiring the empty line also keeps a
careless writer's unescaped body line from starting a message). Only the header block is read
from each message, up to its first empty line; bodies are skipped line by line, so memory stays
bounded whatever the file's size (a multi-GB Takeout export streams through). The stdlib
`mailbox.mbox` is not used because it builds a table of every message's offsets before reading
one and cannot resume from a byte offset; `email` still parses every header block.

- **Time and side.** The date on the `From ` line is when the message was filed (an offset is
  honoured; without one it is in `timezone`); it times received mail, and the `Date:` header
  times ours (connectors.mail.message). Messages in the files of `sent_path`, or carrying Gmail's
  `Sent` label (`X-Gmail-Labels`, as Takeout writes it), are ours. Takeout's `X-GM-THRID` is a
  thread key.
- **Cursor.** Files are known by identity as in connectors.files (`<dev>:<inode>` with a
  fingerprint of the head): `offset` is where the next unread message starts. While tailing,
  a message is taken once its header block is complete; a message still being written
  (headers not finished) is left for the next poll. Appending is read incrementally;
  rotation and truncation restart the file.
"""

from __future__ import annotations

import fnmatch
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from connectors import files
from connectors.base import (
    Batch,
    ConnectorContext,
    ConnectorError,
    Cursor,
    Made,
    Records,
    Rejection,
    unusable_cursor,
)
from connectors.file_source import FileSource, describe_files, matching_files
from connectors.mail.message import (
    MAX_HEADER_BYTES,
    TOO_LONG,
    MailArchive,
    MailError,
    MailSettings,
    too_long,
)
from connectors.regular_files import open_regular, reason
from monitor.config import SourceSettings, TimezoneName

_READ = 64 * 1024  # readline limit: a line without a newline for megabytes stays bounded
# A file unchanged for this long is not being written: its last message is whole (when bodies
# are read; see `_scan`).
SETTLE = 10.0
_QUOTED_FROM = re.compile(rb">+From ")
# Names mail clients give their sent-mail folder, for files imported without `sent_path`.
SENT_NAMES = frozenset({"sent", "sent items", "sent messages", "sent mail"})
_MONTHS = {m: n for n, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
# The date of a `From ` line: asctime ("Mon Nov 20 09:00:00 2026"), optionally with an offset
# before or after the year ("Wed Jan 03 14:22:43 +0000 2018" from Google Takeout).
_FROM_DATE = re.compile(
    rb"([A-Za-z]{3})\s+(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?"
    rb"(?:\s+([+-]\d{4}))?\s+(\d{4})(?:\s+([+-]\d{4}))?"
)


class MboxSettings(MailSettings):
    path: str  # a file or a glob, relative to the config file
    sent_path: str | None = None  # files whose messages we sent (e.g. Thunderbird's "Sent")
    timezone: TimezoneName | None = None  # zone of `From ` line dates without an offset


@dataclass
class _Message:
    location: str
    from_line: bytes
    header: list[bytes] = field(default_factory=list)
    size: int = 0  # header and body bytes read (body bytes only when bodies are kept)
    in_header: bool = True
    body: list[bytes] = field(default_factory=list)  # kept only by a body-reading subclass


class MboxConnector(MailArchive):
    kind = "mbox"
    settings = MboxSettings

    def __init__(self, source: SourceSettings, context: ConnectorContext) -> None:
        super().__init__(source, context)
        assert isinstance(source, MboxSettings), type(source)
        self.mbox = source
        self.zone = ZoneInfo(source.timezone) if source.timezone else context.timezone

    def matching(self, pattern: str | None) -> list[Path]:
        if pattern is None:
            return []
        return matching_files(self.context.path(pattern))

    def _plan(self, *, permanent: bool) -> list[tuple[Path, bool]]:
        sent = self.matching(self.mbox.sent_path)
        inbox = [p for p in self.matching(self.mbox.path) if p not in sent]
        if not inbox and not sent:
            where = self.context.path(self.mbox.path)
            raise ConnectorError(f"no file matches {where}", permanent=permanent)
        return [(p, True) for p in sent] + [(p, False) for p in inbox]

    def check(self) -> str:
        plan = self._plan(permanent=True)
        found = describe_files([path for path, _ in plan])
        return f"{found} ({sum(1 for _, is_sent in plan if is_sent)} sent)"

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        plan = self._plan(permanent=False)
        try:
            previous = files.load_cursor(cursor)
        except ValueError as exc:
            raise unusable_cursor(exc) from None
        yield from self._read(plan, previous, self.collector(now), final=False)

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        FileSource.require_files(paths)
        plan = [(path, self.is_sent_file(path)) for path in paths]
        plan.sort(key=lambda item: not item[1])  # sent files first, as when polling
        yield from self._read(plan, {}, self.collector(now), final=True)

    def is_sent_file(self, path: Path) -> bool:
        """A file given to `import` is a sent folder when `sent_path` matches it, or (without
        `sent_path`) when it is named like one: `Sent`, `Sent Items`, `Sent.mbox`..."""
        if self.mbox.sent_path is not None:
            pattern = str(self.context.path(self.mbox.sent_path))
            return fnmatch.fnmatch(str(path.resolve()), pattern)
        return path.name.lower().removesuffix(".mbox") in SENT_NAMES

    def _read(
        self,
        plan: list[tuple[Path, bool]],
        previous: dict[str, dict[str, Any]],
        records: Records,
        *,
        final: bool,
    ) -> Iterator[Batch]:
        done: dict[str, dict[str, Any]] = {}
        emitted = files._dump(previous)
        for sent in (True, False):
            group = [p for p, is_sent in plan if is_sent is sent]
            ordered, refused = files._ordered(group)
            records.rejected.extend(refused)
            for path, _ in ordered:
                try:
                    handle = open_regular(path)
                except FileNotFoundError:
                    continue  # rotated away since it was matched
                except OSError as exc:  # this file alone: the others are read
                    records.reject(path.name, reason(exc))
                    continue
                with handle:
                    info = os.fstat(handle.fileno())
                    key = f"{info.st_dev}:{info.st_ino}"
                    if key in done:
                        continue
                    entry = files._resume(previous.get(key), handle, info.st_size)
                    entry["path"] = str(path)
                    done[key] = entry
                    head = files._Head(handle, entry)
                    whole = final or (self.body_limit > 0 and _settled(info.st_mtime))
                    scan = _scan(
                        handle, entry, path.name, info.st_size, whole, head, self.body_limit
                    )
                    for item in scan:
                        if isinstance(item, Rejection):
                            records.rejected.append(item)
                        else:
                            records.take(item.location, self._event, item, sent)
                        if len(records) >= self.mbox.batch_size:
                            head.refresh()
                            emitted = files._dump(done | files._later(previous, done))
                            yield records.batch(emitted)
                    head.refresh()
        last = files._dump(done)
        if len(records) or last != emitted:
            yield records.batch(last)

    def _event(self, message: _Message, sent: bool) -> Made:
        if message.size > (self.body_limit or MAX_HEADER_BYTES):
            raise MailError(too_long(self.body_limit) if self.body_limit else TOO_LONG)
        return self.archive_event(
            b"".join(message.header) + b"\n" + b"".join(message.body),
            arrived=from_line_date(message.from_line, self.zone),
            sent=sent,
        )


def _settled(mtime: float) -> bool:
    """A file nobody has written to for SETTLE seconds: its last message is complete."""
    return time.time() - mtime > SETTLE


def _scan(
    handle: BinaryIO,
    entry: dict[str, Any],
    name: str,
    size: int,
    final: bool,
    head: Any,
    body_limit: int = 0,
) -> Iterator[_Message | Rejection]:
    """The messages from `entry["offset"]` to `size`, advancing `entry` past each one before
    it is yielded. While tailing (`final` false) a message whose header block is unfinished at
    the end, or a last line without its newline, is left for the next poll.

    With `body_limit`, the first `body_limit` bytes of each message are kept, its body too
    (mboxrd's `>From ` quoting undone), and while tailing the last message of the file is
    taken only once it ends with the empty line mbox writers end each message with: a message
    still being appended is left for the next poll."""
    position, line = entry["offset"], entry["line"]
    handle.seek(position)
    current: _Message | None = None
    # Text before the first message of a file read from its start is reported once (a file
    # that is not mbox at all says so); after a resume it is the rest of a body appended late.
    stray: str | None = None if position else ""
    blank_before = True  # a resume point is a message boundary
    at_line_start = True
    while position < size:
        chunk = handle.readline(min(_READ, size - position))
        if not chunk:
            break  # truncated while reading: the next poll notices
        head.feed(position, chunk)
        complete = chunk.endswith(b"\n")
        if not complete and not final and position + len(chunk) >= size:
            break  # a line still being written
        starts = at_line_start and blank_before and chunk.startswith(b"From ")
        if starts:
            if current is not None:
                entry["offset"], entry["line"] = position, line  # it ends here
                yield current
            current = _Message(f"{name}:{line + 1}", chunk.rstrip(b"\r\n"))
            entry["offset"], entry["line"] = position, line
        elif current is None and stray == "" and chunk.strip():
            stray = f"{name}:{line + 1}"
            yield Rejection(stray, "text before the first `From ` line (is this an mbox file?)")
        elif current is not None and current.in_header:
            if at_line_start and chunk in (b"\n", b"\r\n"):
                current.in_header = False
            else:
                current.size += len(chunk)
                if current.size <= MAX_HEADER_BYTES:
                    current.header.append(chunk)
        elif current is not None and body_limit:
            current.size += len(chunk)
            if current.size <= body_limit:
                quoted = at_line_start and _QUOTED_FROM.match(chunk)
                current.body.append(chunk[1:] if quoted else chunk)
        position += len(chunk)
        if complete:
            line += 1
            blank_before = at_line_start and chunk in (b"\n", b"\r\n")
        at_line_start = complete
        if current is None or not (current.in_header or body_limit):
            # Before the first message, or in a body not kept: consumed as it is read.
            entry["offset"], entry["line"] = position, line
    # While tailing, a kept body is whole once the file ends with an empty line right there.
    unfinished = body_limit and not (blank_before and position >= size)
    if current is not None and (final or not (current.in_header or unfinished)):
        entry["offset"], entry["line"] = position, line
        yield current


def from_line_date(line: bytes, zone: ZoneInfo) -> datetime | None:
    """The date on an mbox `From sender date` line, aware UTC; None when there is none."""
    match = _FROM_DATE.search(line, 5)
    if match is None:
        return None
    month = _MONTHS.get(match.group(1).decode().lower())
    if month is None:
        return None
    offset = match.group(6) or match.group(8)
    zone_of_line: tzinfo = zone
    try:
        if offset is not None:
            sign = 1 if offset.startswith(b"+") else -1
            minutes = sign * (int(offset[1:3]) * 60 + int(offset[3:5]))
            zone_of_line = timezone(timedelta(minutes=minutes))
        written = datetime(
            int(match.group(7)),
            month,
            int(match.group(2)),
            int(match.group(3)),
            int(match.group(4)),
            int(match.group(5) or 0),
            tzinfo=zone_of_line,
        )
        return written.astimezone(UTC)
    except (ValueError, OverflowError):  # no such day, or past the end of the calendar in UTC
        return None
