"""The `maildir` connector: a Maildir (Dovecot, Courier, getmail, offlineimap backups) read
from disk, for backfill and for servers without IMAP access.

`path` is a Maildir (a folder with `cur/` and `new/`); it is the INBOX, and other folders are
its Maildir++ subfolders (`Sent` is `.Sent`, `Support/Billing` is `.Support.Billing`). The sent
folder is read first and its messages are ours; `sent_folder: auto` takes the first of
`.Sent`, `.Sent Messages`, `.Sent Items`, `.Sent Mail` that exists. Only each file's header
block is read.

- **Time.** A received message is timed by its arrival: the earlier of the delivery time at the
  start of its file name and the file's modification time (an IMAP APPEND with a date sets the
  mtime but names the file now; a copy without `-p` resets the mtime but keeps the name). Our
  messages are timed by their `Date:` header (connectors.mail.message).
- **Cursor.** Maildir has no order and no offsets, and mail clients rename files (`new/` to
  `cur/`, flags after `:2,`). Every file's status-change time (ctime) is set when it lands in
  the folder, so each folder keeps `after` (files older than this are read) and `recent` (the
  unique names, before `:`, of files read whose ctime is within `SETTLE` of the last scan, so
  a file landing during a scan is neither missed nor read twice). A renamed file has a new
  ctime and is read again; its Message-ID makes that harmless. The stdlib `mailbox.Maildir`
  lists keys but not the times a resumable cursor needs, so the folders are scanned here.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from connectors.base import (
    CURSOR_VERSION,
    Batch,
    ConnectorContext,
    ConnectorError,
    Cursor,
    Made,
    Number,
    Records,
    stored_cursor,
)
from connectors.mail.message import (
    MAX_HEADER_BYTES,
    TOO_LONG,
    MailArchive,
    MailError,
    MailSettings,
    too_long,
)
from connectors.regular_files import open_regular, reason
from monitor.config import SourceSettings
from monitor.errors import BadRecord

SETTLE_NS = 10 * 1_000_000_000  # ctime granularity and clock skew of network file systems
_BLOCK = 64 * 1024
SENT_NAMES = ("Sent", "Sent Messages", "Sent Items", "Sent Mail")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_DELIVERED = re.compile(r"^(\d{9,11})[.]")  # "1763629200.M1P2.host,S=123:2,S"


class MaildirSettings(MailSettings):
    path: str  # the Maildir: its own cur/ and new/ are the INBOX
    folders: list[str] = ["INBOX"]  # INBOX or Maildir++ subfolder names
    sent_folder: str | None = "auto"  # auto: .Sent and the like; a folder name; null: none


@dataclass(frozen=True, slots=True)
class _File:
    # Small on purpose: a first read lists every file of a folder (there may be millions).
    ctime_ns: int
    key: str  # the unique part of the name, before ":2,flags"
    directory: Path  # the folder (shared by its files)
    sub: str  # "new" or "cur"
    name: str
    mtime: float

    @property
    def path(self) -> Path:
        return self.directory / self.sub / self.name

    @property
    def location(self) -> str:
        return f"{self.directory.name}/{self.sub}/{self.name}"


class MaildirConnector(MailArchive):
    kind = "maildir"
    settings = MaildirSettings

    def __init__(self, source: SourceSettings, context: ConnectorContext) -> None:
        super().__init__(source, context)
        assert isinstance(source, MaildirSettings), type(source)
        self.maildir = source

    def plan(self, root: Path, *, permanent: bool) -> list[tuple[str, Path, bool]]:
        """(folder name, directory, is sent) to read, the sent folder first."""
        if not (root / "cur").is_dir() and not (root / "new").is_dir():
            raise ConnectorError(f"{root} is not a Maildir (no cur/ or new/)", permanent=permanent)
        sent = self.maildir.sent_folder
        if sent == "auto":
            sent = next((n for n in SENT_NAMES if _folder_dir(root, n).is_dir()), None)
        plan = [(sent, _folder_dir(root, sent), True)] if sent else []
        for name in self.maildir.folders:
            if name != sent:
                plan.append((name, _folder_dir(root, name), False))
        for name, directory, _ in plan:
            if not directory.is_dir():
                raise ConnectorError(f"folder {name!r}: no {directory}", permanent=permanent)
        return plan

    def check(self) -> str:
        root = self.context.path(self.maildir.path)
        counts = []
        for name, directory, sent in self.plan(root, permanent=True):
            found = sum(
                len(os.listdir(directory / s)) for s in ("cur", "new") if (directory / s).is_dir()
            )
            counts.append(f"{name}{' (sent)' if sent else ''} {found:,} messages")
        return f"{root}: {', '.join(counts)}"

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        root = self.context.path(self.maildir.path)
        state = load_cursor(cursor)
        plan = self.plan(root, permanent=False)
        yield from self._read(plan, state, self.collector(now), incremental=True)

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        for path in paths:
            plan = self.plan(path, permanent=True)
            yield from self._read(plan, {}, self.collector(now), incremental=False)

    def _read(
        self,
        plan: list[tuple[str, Path, bool]],
        state: dict[str, dict[str, Any]],
        records: Records,
        *,
        incremental: bool,
    ) -> Iterator[Batch]:
        for name, directory, sent in plan:
            scanned_at = time.time_ns()
            stored = state.get(name, {"after": 0, "recent": {}})
            found = [
                f
                for f in _listing(directory)
                if f.ctime_ns >= stored["after"] and f.key not in stored["recent"]
            ]
            if not found:
                continue
            found.sort(key=lambda f: (f.ctime_ns, f.key))
            size = self.maildir.batch_size
            read: dict[str, int] = dict(stored["recent"])
            for start in range(0, len(found), size):
                part = found[start : start + size]
                for file in part:
                    records.take(file.location, self._event, file, sent)
                read.update((f.key, f.ctime_ns) for f in part)
                following = found[start + size].ctime_ns if start + size < len(found) else None
                after = scanned_at - SETTLE_NS
                if following is not None:
                    after = min(after, following)
                after = max(after, stored["after"])
                read = {k: c for k, c in read.items() if c >= after}
                state[name] = {"after": after, "recent": dict(read)}
                yield records.batch(dump_cursor(state) if incremental else {})

    def _event(self, file: _File, sent: bool) -> Made:
        limit = self.body_limit
        try:
            raw = read_message(file.path, limit) if limit else read_header(file.path)
        except FileNotFoundError:
            return None  # renamed (new/ to cur/) since the scan: read under its new name
        except OSError as exc:  # unreadable, or not a regular file: this message alone
            raise BadRecord(reason(exc)) from None
        if raw is None:
            raise MailError(too_long(limit) if limit else TOO_LONG)
        return self.archive_event(raw, arrived=_arrival(file), sent=sent)


def _folder_dir(root: Path, name: str) -> Path:
    if name.upper() == "INBOX":
        return root
    return root / ("." + name.replace("/", "."))


def _listing(directory: Path) -> list[_File]:
    """Every message file in `new/` and `cur/` (dot files and subfolders skipped; entries that
    are not regular files are listed, to be refused with their location when read)."""
    found = []
    for sub in ("new", "cur"):
        try:
            entries = list(os.scandir(directory / sub))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # renamed between the listing and now
            if entry.is_dir(follow_symlinks=False):
                continue  # anything else (a FIFO, a symlink to a device) is refused when read
            key = entry.name.split(":", 1)[0]
            found.append(_File(info.st_ctime_ns, key, directory, sub, entry.name, info.st_mtime))
    return found


def read_header(path: Path) -> bytes | None:
    """The file's header block (up to its first empty line); None when it is too long."""
    data = b""
    with open_regular(path) as handle:
        while True:
            block = handle.read(_BLOCK)
            if not block:
                return data
            scan_from = max(0, len(data) - 3)
            data += block
            end = _HEADER_END.search(data, scan_from)
            if end is not None:
                return data[: end.end()]
            if len(data) > MAX_HEADER_BYTES:
                return None


def read_message(path: Path, limit: int) -> bytes | None:
    """The whole file; None when it is longer than `limit` bytes (then it is not read)."""
    with open_regular(path) as handle:
        if os.fstat(handle.fileno()).st_size > limit:
            return None
        data = handle.read(limit + 1)
    return data if len(data) <= limit else None


def _arrival(file: _File) -> datetime:
    moment = file.mtime
    match = _DELIVERED.match(file.name)
    if match is not None:
        moment = min(moment, float(match.group(1)))
    try:
        return datetime.fromtimestamp(moment, tz=UTC)
    except (OverflowError, OSError, ValueError):  # a file time beyond the calendar
        raise MailError("the file's delivery time is out of range") from None


@with_config(ConfigDict(extra="forbid"))
class FolderState(TypedDict):
    after: Number  # files that landed before this (ns) are read
    recent: dict[str, Number]  # files read that landed at or after it, by key


@with_config(ConfigDict(extra="forbid"))
class MaildirCursor(TypedDict):
    v: Number
    folders: dict[str, FolderState]  # by folder name


def load_cursor(cursor: Cursor | None) -> dict[str, dict[str, Any]]:
    checked = stored_cursor(MaildirCursor, cursor, "maildir")
    if checked is None:
        return {}
    return {
        name: {"after": entry["after"], "recent": dict(entry["recent"])}
        for name, entry in checked["folders"].items()
    }


def dump_cursor(state: dict[str, dict[str, Any]]) -> Cursor:
    return {
        "v": CURSOR_VERSION,
        "folders": {
            name: {"after": entry["after"], "recent": dict(entry["recent"])}
            for name, entry in state.items()
        },
    }
