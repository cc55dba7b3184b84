"""The `answering_service_csv` connector: message logs of an answering service.

Each row is a message the service took for us. A `columns:` mapping names, for each of our
keys, the file's header (default: the key itself): `taken_at` (required), `caller`,
`callback_number` (one of the two is required; the callback number wins), `urgency`,
`callback_at` (empty: not returned yet), and optional `id` and `message` (message text is never
read or stored). Columns are read through `connectors.tabular`, like every tabular kind's: a
time over two columns (`taken_at: [Date, Time]`), `header: false` with `fields:`, `delimiter:`.

A message is a customer-side inquiry on channel `answering_service` in the number's `tel:`
conversation, at `taken_at`; a filled `callback_at` is an agent-side callback in the same
conversation. An outbound call to the number in any phone source (`asterisk_cdr`, `call_csv`)
closes it just the same. A number too short to call back keeps the message in its own
conversation, which only its `callback_at` can close.

Services export the whole log again with callbacks filled in, so a file that changed (size,
modification time or inode) is read again from the start, unless it still begins with exactly
the bytes read last time (rows were only appended: then only the new lines are read). Stable ids
(the `id` column, else a hash of the time and numbers) make a re-read add only what is new. The
cursor remembers how far each version of a file was read, so an interrupted poll resumes there.
A quoted field may span lines (message text with line breaks).
"""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, NotRequired

from pydantic import ConfigDict, Strict, model_validator, with_config
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
    stored_cursor,
)
from connectors.csv_rows import DEFAULT_TIME_FORMATS, RowError
from connectors.file_source import LineFileSettings, LineFileSource, read_error
from connectors.regular_files import NotRegularFile, open_regular, reason
from connectors.tabular import Fields, Keys, Layout, TabularSettings, mapping
from monitor.config import SourceSettings
from monitor.measure.events import Channel, Event, answering_message

KEYS = Keys(
    names=("taken_at", "caller", "callback_number", "urgency", "callback_at", "id", "message"),
    times=frozenset({"taken_at", "callback_at"}),
    required=("taken_at",),
    defaults={
        key: key
        for key in ("taken_at", "caller", "callback_number", "urgency", "callback_at", "id")
    },
)
MAX_RECORD_LINES = 50  # a quoted field spanning more lines than this is a broken quote


class AnsweringServiceCsvSettings(TabularSettings, LineFileSettings):
    channel: ClassVar[Channel] = Channel.ANSWERING_SERVICE
    # `columns`: our key -> the file's header (default: the key itself); `time_format` (default
    # as call_csv's), `timezone` for times without an offset (default: the config's)

    @model_validator(mode="after")
    def _known_keys(self) -> AnsweringServiceCsvSettings:
        KEYS.check(self.columns)
        if self.header is False and not self.fields:
            raise ValueError("a file without a header needs `fields:` (its column names in order)")
        return self


class AnsweringServiceCsvConnector(LineFileSource):
    kind = "answering_service_csv"
    settings = AnsweringServiceCsvSettings

    def __init__(self, source: SourceSettings, context: ConnectorContext, **limits: int) -> None:
        super().__init__(source, context, **limits)
        assert isinstance(source, AnsweringServiceCsvSettings), type(source)
        self.options = source
        self.wanted, self.optional = mapping(KEYS, {}, source.columns)
        self.formats = source.time_format or list(DEFAULT_TIME_FORMATS)
        self.has_header = source.header is not False
        self.fields = Fields(source.delimiter)

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        records = self.collector(now)
        done = _load(cursor)
        matched = self.matched(permanent=False)
        state: dict[str, dict[str, Any]] = {}
        for path in matched:
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            except OSError as exc:  # a symlink loop, a folder it may not enter: this file alone
                yield Batch(
                    [], _dump(state | _later(done, state)), [Rejection(path.name, reason(exc))]
                )
                continue
            if not stat.S_ISREG(info.st_mode):
                why = reason(NotRegularFile(path, info.st_mode))
                yield Batch([], _dump(state | _later(done, state)), [Rejection(path.name, why)])
                continue
            key = f"{info.st_dev}:{info.st_ino}"
            version = f"{info.st_size}:{info.st_mtime_ns}"
            previous = done.get(key)
            if previous and previous["version"] == version:
                if previous["complete"]:
                    state[key] = previous
                    continue
                skip = previous["line"]
            else:
                skip = _appended_after(path, previous)
            state[key] = {"version": version, "line": skip, "complete": False}
            for events, rejected, line in self._read(path, skip, records):
                state[key]["line"] = line
                yield Batch(events, _dump(state | _later(done, state)), rejected)
            state[key] = {"version": version, "line": state[key]["line"], "complete": True}
            state[key].update(_fingerprint(path, info.st_size))
        final = _dump(state)
        if final != cursor:
            yield Batch([], final)

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        self.require_files(paths)
        records = self.collector(now)
        for path in paths:
            for events, rejected, _ in self._read(path, 0, records):
                yield Batch(events, {"v": CURSOR_VERSION, "files": {}}, rejected)

    def _read(
        self, path: Path, skip: int, records: Records
    ) -> Iterator[tuple[list[Event], list[Rejection], int]]:
        """(events, rejections, last line fully consumed) per chunk of `path`, after `skip`."""
        header = None if self.has_header else self._layout(self.options.fields or [])
        pending: list[files.Line] = []  # the lines of a record whose quote is still open
        consumed = skip
        try:
            chunks = files.read_all(
                [path], max_lines=self.max_lines, max_line_bytes=self.max_line_bytes
            )
            for chunk in chunks:
                records.rejected.extend(
                    r for r in chunk.rejected if _line_number(r.location) > skip
                )
                before = consumed
                for line in chunk.lines:
                    number = _line_number(line.location)
                    if number == 1 and self.has_header:
                        header = self._header(line, records.rejected)
                        consumed = max(consumed, 1)
                        continue
                    if number <= skip:
                        continue
                    pending.append(line)
                    while pending:
                        outcome = self._record(pending, header, records)
                        if outcome is None:
                            break  # the record goes on in the next line
                        pending = pending[outcome:]
                    if not pending:
                        consumed = number
                for rejection in records.rejected:
                    consumed = max(consumed, _line_number(rejection.location))
                if len(records) or consumed != before:  # not a chunk skipped whole
                    yield *records.parsed(), consumed
            if pending:  # the file ended inside a quoted field
                last = _line_number(pending[-1].location)
                while pending:
                    taken = self._record(pending, header, records, final=True)
                    pending = pending[taken or 1 :]
                yield *records.parsed(), last
        except OSError as exc:
            raise read_error(exc, path) from None

    def _header(self, line: files.Line, rejected: list[Rejection]) -> Layout | None:
        try:
            names = self.fields.names(line.data)
            if names is None:
                raise RowError("the header line is empty")
        except RowError as exc:
            rejected.append(Rejection(line.location, f"unusable header: {exc}"))
            return None
        layout = self._layout(names)
        problem = layout.problem
        if problem is None and not (layout.has("caller") or layout.has("callback_number")):
            problem = f"the header has no column {self.wanted['callback_number']!r}"
        if problem is not None:
            rejected.append(Rejection(line.location, problem))
            return None
        return layout

    def _layout(self, names: list[str]) -> Layout:
        options = self.options
        return Layout(
            names,
            self.wanted,
            self.optional,
            self.zone,
            self.formats,
            delimiter=options.delimiter,
        )

    def _record(
        self,
        lines: list[files.Line],
        header: Layout | None,
        records: Records,
        *,
        final: bool = False,
    ) -> int | None:
        """Parse the record starting at lines[0]; return how many lines it took, or None when
        its quoted field goes on in a line not read yet."""
        location = lines[0].location
        data = b"\n".join(line.data for line in lines)
        try:
            fields = self.fields.split(data)
        except RowError as exc:
            unclosed = "unexpected end of data" in str(exc)
            if unclosed and not final and len(lines) < MAX_RECORD_LINES:
                return None
            if unclosed and len(lines) > 1:
                records.reject(location, "a quoted field is never closed")
                return 1  # read the following lines again as records of their own
            records.reject(location, str(exc))
            return len(lines)
        if fields is not None:
            records.take(location, self.parse_fields, fields, header)
        return len(lines)

    def parse_fields(self, fields: list[str], header: Layout | None) -> list[Event]:
        if header is None:
            raise RowError("the file has no usable header line")
        row = header.row(fields)
        taken = row.time("taken_at")
        caller, callback = row.text("caller"), row.text("callback_number")
        number = callback or caller
        if not number:
            columns = f"{row.label('callback_number')} and {row.label('caller')}"
            raise RowError(f"missing {columns}")
        message_id = row.text("id") or _content_id(taken, caller, callback)
        return answering_message(
            message_id,
            taken,
            caller=caller or None,
            callback_number=callback or None,
            urgency=row.text("urgency") or None,
            returned=row.optional_time("callback_at"),
        )


def _fingerprint(path: Path, size: int) -> dict[str, Any]:
    """The hash and line count of the first `size` bytes, when they end a line: if a later
    version of the file starts with exactly these bytes, only lines were added after them."""
    digest, lines, last = hashlib.sha1(), 0, b""
    try:
        with open_regular(path) as handle:
            remaining = size
            while remaining > 0:
                block = handle.read(min(1 << 16, remaining))
                if not block:
                    return {}
                digest.update(block)
                lines += block.count(b"\n")
                remaining -= len(block)
                last = block[-1:]
    except OSError:
        return {}
    if last != b"\n":
        return {}
    return {"size": size, "sha1": digest.hexdigest(), "lines": lines}


def _appended_after(path: Path, previous: dict[str, Any] | None) -> int:
    """How many lines to skip in a changed file: those of the last complete read, when the file
    still starts with exactly those bytes (rows were only appended); else 0 (read it all)."""
    if not previous or not previous.get("sha1"):
        return 0
    size = previous.get("size")
    if not isinstance(size, int) or _fingerprint(path, size) != {
        "size": size,
        "sha1": previous["sha1"],
        "lines": previous.get("lines"),
    }:
        return 0
    return int(previous["lines"])


def _line_number(location: str) -> int:
    return int(location.rpartition(":")[2])


def _content_id(taken: datetime, caller: str, callback: str) -> str:
    canonical = json.dumps([taken.isoformat(), caller, callback])
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()


def _dump(state: dict[str, dict[str, Any]]) -> Cursor:
    return {"v": CURSOR_VERSION, "files": {key: dict(entry) for key, entry in state.items()}}


def _later(done: dict[str, dict[str, Any]], state: dict[str, dict[str, Any]]) -> dict[str, Any]:
    # Files not reached yet in this pass keep their entries in mid-pass cursors.
    return {key: entry for key, entry in done.items() if key not in state}


@with_config(ConfigDict(extra="forbid"))
class LogFileState(TypedDict):
    version: Text  # "<size>:<mtime ns>" of the file when it was read
    line: Count  # lines read
    complete: Annotated[bool, Strict()]  # read to its end
    # Of a complete read whose last line was whole: the bytes read, their sha1 and lines, so
    # a later version starting with exactly these bytes is read from there (rows appended).
    size: NotRequired[Count]
    sha1: NotRequired[Text]
    lines: NotRequired[Count]


@with_config(ConfigDict(extra="forbid"))
class LogCursor(TypedDict):
    v: Number
    files: dict[str, LogFileState]  # by "<dev>:<inode>"


def _load(cursor: Cursor | None) -> dict[str, dict[str, Any]]:
    checked = stored_cursor(LogCursor, cursor, "answering-service log")
    if checked is None:
        return {}
    return {key: dict(entry) for key, entry in checked["files"].items()}
