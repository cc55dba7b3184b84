"""JSON chat exports: what `slack_export`, `zendesk_chat` and `livechat` share.

These kinds read *snapshots*: files an export tool writes whole (a Slack day file, a page of
Zendesk or LiveChat chats) and that a later export may write again with more in them. What is
shared here (reading the records themselves is `connectors.json_records`):

- the snapshot cursor (`Snapshots`): the content fingerprints (`size:crc32`) of every file
  already read whole, plus how far a file half-way through was read. A file is read again only
  when its content changed (a new export, a day file that grew); ids built from the records
  themselves make a re-read add only what is new. Fingerprints are content, not names, so the
  same day file in a second zip, or in an unpacked copy of the zip, is not read twice. Only the
  fingerprints of files present now are kept, so the cursor stays the size of the export;
- `read_units`: the loop that reads such files in batches with that cursor;
- `ExportFileSource`: a source that is a file or a glob of JSON documents and JSONL files. JSON
  documents are snapshots as above; `.jsonl` / `.ndjson` files are tailed line by line with
  `connectors.files` (appends cost what is new; rotation and truncation are survived).

Locations are the file, then a jq path inside it: `chats.json .chats[3].history[5]`, or for a
JSONL line `chats.jsonl:12 .history[5]`, so `jq '.chats[3].history[5]' chats.json` shows the
record.
"""

from __future__ import annotations

import functools
import io
import os
import zlib
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, NotRequired

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from connectors import files
from connectors.base import (
    CURSOR_VERSION,
    Batch,
    ConnectorContext,
    Count,
    Cursor,
    Number,
    Records,
    Rejection,
    Text,
    reason_for,
    stored_cursor,
)
from connectors.file_source import FileSource, read_error
from connectors.files import FileCursor
from connectors.json_records import RecordError, array, json_type, load_json, nested
from connectors.json_stream import DEFAULT_MAX_RECORD_BYTES, read_records
from connectors.regular_files import open_regular, reason
from monitor.config import SourceSettings
from monitor.measure.events import Channel, Event

DEFAULT_MAX_RECORDS = 5000
# A JSON document is parsed as a stream, one record in memory at a time (connectors.json_stream);
# this bounds the time a single file can take.
DEFAULT_MAX_DOCUMENT_BYTES = 200 * 1000 * 1000
LINE_SUFFIXES = (".jsonl", ".ndjson")
_BLOCK = 1024 * 1024


def stream_fingerprint(stream: BinaryIO) -> str:
    """Content identity of what `stream` holds, read a block at a time (never whole): its size
    and CRC-32, the same as a zip member's stored ones."""
    size, crc = 0, 0
    while block := stream.read(_BLOCK):
        size += len(block)
        crc = zlib.crc32(block, crc)
    return f"{size}:{crc:08x}"


# --- the snapshot cursor ----------------------------------------------------------------------


@with_config(ConfigDict(extra="forbid"))
class SnapshotState(TypedDict):
    read: list[Text]  # fingerprints of the files read whole
    partial: tuple[Text, Count] | None  # (fingerprint, records consumed) of the one begun


@with_config(ConfigDict(extra="forbid"))
class ExportCursor(TypedDict):
    v: Number
    documents: NotRequired[SnapshotState]  # the JSON documents
    lines: NotRequired[FileCursor | None]  # the JSONL files, tailed (connectors.files)


@dataclass
class Snapshots:
    """Which files were read whole (by content fingerprint) and how far the current one got."""

    read: set[str] = field(default_factory=set)
    partial: tuple[str, int] | None = None  # (fingerprint, records consumed)

    @classmethod
    def load(cls, state: SnapshotState | None) -> Snapshots:
        """From a checked cursor part (see `SnapshotState`), or none."""
        if state is None:
            return cls()
        partial = state["partial"]
        return cls(set(state["read"]), None if partial is None else (partial[0], partial[1]))

    def dump(self) -> dict[str, Any]:
        return {"read": sorted(self.read), "partial": list(self.partial) if self.partial else None}


Parsed = tuple[list[Event], list[Rejection]]  # what one record of a file became


@dataclass(frozen=True)
class Unit:
    """One snapshot file: its content fingerprint, how to open it and how to parse it into
    records (deterministically: a resumed read skips the records already stored), and where it
    is. Parsing reads the stream as it goes: a file is never held whole in memory. Whatever
    makes the file fail as a whole while it is opened or read (a zip member that does not
    decompress) is a rejection at `location`; the records read before it are kept."""

    fingerprint: str
    open: Callable[[], BinaryIO]
    parse: Callable[[BinaryIO], Iterator[Parsed]]
    location: str


def nothing() -> BinaryIO:
    """`Unit.open` of a unit that stands for rejections found without reading it."""
    return io.BytesIO()


def read_units(
    units: Iterable[Unit],
    previous: Snapshots,
    cursor: Callable[[Snapshots], Cursor],
    *,
    max_records: int = DEFAULT_MAX_RECORDS,
    stored: Cursor | None = None,
) -> Iterator[Batch]:
    """Batches of what the units not read before hold; each batch's cursor is `cursor(state)`.

    A batch ends after about `max_records` events and rejections, even inside a file (the
    cursor then says how many of its records are done). A file is marked read once all of it
    is stored, including a file that was not valid JSON (rejected once, not at every poll)."""
    units = list(units)
    present = {unit.fingerprint for unit in units}
    state = Snapshots(previous.read & present, None)
    resume = previous.partial
    events: list[Event] = []
    rejected: list[Rejection] = []
    for unit in units:
        if unit.fingerprint in state.read:
            continue
        skip = resume[1] if resume is not None and resume[0] == unit.fingerprint else 0
        try:
            with unit.open() as stream:
                for index, (found, bad) in enumerate(unit.parse(stream)):
                    if index < skip:
                        continue
                    events.extend(found)
                    rejected.extend(bad)
                    if len(events) + len(rejected) >= max_records:
                        state.partial = (unit.fingerprint, index + 1)
                        yield Batch(events, cursor(state), rejected)
                        events, rejected = [], []
        except Exception as exc:  # noqa: BLE001 - one file's failure: reason_for sorts it out
            rejected.append(Rejection(unit.location, reason_for(exc)))
        state.read.add(unit.fingerprint)
        state.partial = None
        if len(events) + len(rejected) >= max_records:
            yield Batch(events, cursor(state), rejected)
            events, rejected = [], []
    final = cursor(state)
    if events or rejected or final != stored:
        yield Batch(events, final, rejected)


# --- sources that are JSON / JSONL files -----------------------------------------------------


class ExportFileSettings(SourceSettings):
    channel: ClassVar[Channel] = Channel.CHAT
    # A file or a glob (`exports/*.json`, `**` allowed); relative to the config file's folder.
    # Files ending .jsonl or .ndjson hold one record a line; others are one JSON document.
    path: str


class ExportFileSource(FileSource):
    """A source of JSON documents and JSONL files holding chats; subclasses say what events a
    record makes (`parse_record`) and may know more shapes of document (`records`)."""

    settings = ExportFileSettings
    # The array of a document `{"chats": [...], ...}` whose elements are read one at a time.
    unwrap = "chats"

    def __init__(
        self,
        source: SourceSettings,
        context: ConnectorContext,
        *,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_line_bytes: int = files.DEFAULT_MAX_LINE_BYTES,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        super().__init__(source, context)
        assert isinstance(source, ExportFileSettings), type(source)
        self.path = context.path(source.path)
        self.max_records = max_records
        self.max_line_bytes = max_line_bytes
        self.max_document_bytes = max_document_bytes
        self.max_record_bytes = max_record_bytes

    # What a kind defines (or extends).

    def records(self, value: Any, path: str) -> Iterator[tuple[str, Any]]:
        """The records in a decoded document or line, with their jq paths (`.chats[3]`). By
        default the shapes chat APIs share: an array of chats, `{"chats": [...]}` or one chat;
        a kind with more shapes unwraps them and passes the rest here."""
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield f"{path or '.'}[{index}]", item
        elif not isinstance(value, dict):
            raise RecordError(f"expected a chat or an array of chats, got {json_type(value)}")
        elif "chats" in value:
            for index, item in enumerate(array(value, "chats")):
                yield f"{path}.chats[{index}]", item
        else:
            yield path, value

    @abstractmethod
    def parse_record(self, value: Any, location: str) -> Parsed:
        """The events of one record; bad parts of it as rejections located under `location`."""

    # The rest is shared.

    def configured_path(self) -> Path:
        return self.path

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        records = self.collector(now)
        found = self.matched(permanent=False)
        checked = stored_cursor(ExportCursor, cursor, "export")
        documents = Snapshots.load(checked.get("documents") if checked else None)
        lines_cursor: Cursor | None = cursor.get("lines") if cursor else None
        docs = [p for p in found if not p.name.lower().endswith(LINE_SUFFIXES)]
        lined = [p for p in found if p.name.lower().endswith(LINE_SUFFIXES)]
        done = documents

        def whole(state: Snapshots) -> Cursor:
            return {"v": CURSOR_VERSION, "documents": state.dump(), "lines": lines_cursor}

        # A batch that only moves the cursor is held back: a batch of lines after it carries
        # the same document state, and a poll's first batch is then one with something in it.
        pending: Batch | None = None
        try:
            units = self._units(docs, records)
            for batch in read_units(
                units, documents, whole, max_records=self.max_records, stored=cursor
            ):
                done = Snapshots.load(batch.cursor["documents"])
                pending = None if batch.events or batch.rejected else batch
                if pending is None:
                    yield batch
            chunks = files.tail(
                lined, lines_cursor, max_lines=self.max_records, max_line_bytes=self.max_line_bytes
            )
            for chunk in chunks:
                events, rejected = self._lines(chunk, records)
                state = {"v": CURSOR_VERSION, "documents": done.dump(), "lines": chunk.cursor}
                pending = None
                yield Batch(events, state, rejected)
        except OSError as exc:
            raise read_error(exc, self.path) from None
        if pending is not None:
            yield pending

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        self.require_files(paths)
        records = self.collector(now)
        docs = [p for p in paths if not p.name.lower().endswith(LINE_SUFFIXES)]
        lined = [p for p in paths if p.name.lower().endswith(LINE_SUFFIXES)]
        try:
            yield from read_units(
                self._units(docs, records), Snapshots(), lambda s: {}, max_records=self.max_records
            )
            chunks = files.read_all(
                lined, max_lines=self.max_records, max_line_bytes=self.max_line_bytes
            )
            for chunk in chunks:
                events, rejected = self._lines(chunk, records)
                yield Batch(events, {}, rejected)
        except OSError as exc:
            raise read_error(exc, self.path) from None

    def _units(self, paths: list[Path], records: Records) -> Iterator[Unit]:
        for path in paths:
            try:
                handle = open_regular(path)
            except FileNotFoundError:
                continue  # gone since the glob
            except OSError as exc:  # not a regular file, or unreadable: this file alone
                why = reason(exc)
                yield Unit(
                    f"{path.name}:{why}", nothing, rejecting([Rejection(path.name, why)]), path.name
                )
                continue
            with handle:
                size = os.fstat(handle.fileno()).st_size
                if size > self.max_document_bytes:
                    why = (
                        f"file of {size} bytes is larger than the {self.max_document_bytes} byte"
                        " limit for one JSON document (export smaller pages, or JSONL)"
                    )
                    yield Unit(
                        f"{path.name}:{size}:large",
                        nothing,
                        rejecting([Rejection(path.name, why)]),
                        path.name,
                    )
                    continue
                # The bytes are read again only if this content was not read before.
                content = stream_fingerprint(handle)
            parse = self._document_parser(path.name, records)
            yield Unit(content, functools.partial(open_regular, path), parse, path.name)

    def _document_parser(
        self, name: str, records: Records
    ) -> Callable[[BinaryIO], Iterator[Parsed]]:
        def parse(stream: BinaryIO) -> Iterator[Parsed]:
            found = read_records(stream, unwrap=self.unwrap, max_record_bytes=self.max_record_bytes)
            for path, value in found:
                location = nested(name, path) if path else name
                if isinstance(value, RecordError):
                    yield [], [Rejection(location, str(value))]
                elif path:  # an element of the document's array (or of its `chats`): a chat
                    records.take_parsed(location, self.parse_record, value, location)
                    yield records.parsed()
                else:  # the document is one value: the kind knows its shapes
                    yield from self._records_of(value, name, "", records)

        return parse

    def _records_of(self, value: Any, where: str, path: str, records: Records) -> Iterator[Parsed]:
        """What each record in `value` makes, one record at a time (connectors.base.Records)."""
        try:
            for record_path, record in self.records(value, path):
                location = nested(where, record_path) if record_path else where
                records.take_parsed(location, self.parse_record, record, location)
                yield records.parsed()
        except Exception as exc:  # noqa: BLE001 - the document's shape: reason_for sorts it out
            yield [], [Rejection(nested(where, path) if path else where, reason_for(exc))]

    def _lines(self, chunk: files.Chunk, records: Records) -> Parsed:
        events: list[Event] = []
        rejected = list(chunk.rejected)
        for location, data in chunk.lines:
            if not data.strip():
                continue
            try:
                value = load_json(data)
            except RecordError as exc:
                rejected.append(Rejection(location, str(exc)))
                continue
            for found, bad in self._records_of(value, location, "", records):
                events.extend(found)
                rejected.extend(bad)
        return events, rejected


def rejecting(rejected: list[Rejection]) -> Callable[[BinaryIO], Iterator[Parsed]]:
    """A `Unit.parse` for a file known to be unusable before it is parsed (too large, or its
    bad records already found): it stands for `rejected`, reported once per content."""

    def parse(_: BinaryIO) -> Iterator[Parsed]:
        yield [], rejected

    return parse
