"""The `asterisk_queue_log` connector: Asterisk's queue_log, in any of its three forms.

- `path:` the flat file `/var/log/asterisk/queue_log` (or a glob), one record a line,
  `epoch|callid|queue|agent|EVENT|data1|data2|...`, tailed by inode + byte offset with
  `connectors.files`: rotation (rename + new file: the old one is finished first) and
  copytruncate are survived, and an interrupted poll resumes without loss or duplicates;
- `path:` with `format: csv`: a CSV export of the realtime table, with a header row naming the
  columns `time, callid, queuename, agent, event` and `data` or `data1..data5`;
- `table_url:` (+ `table:`) the realtime table itself, read with SQLAlchemy.

Tables and exports that name their columns otherwise, or keep the hold and talk times in columns
of their own, are read through `columns:` (or a `preset:`), like every tabular kind's
(connectors.phone.queue_log_rows). `verbs:` says what custom verbs mean in every form
(connectors.phone.queue_log_calls): an outbound call (a callback), nothing, or a standard verb.

Table times are the Asterisk server's local time (`timezone:`, default the config's) unless
`table_utc: true` (Asterisk's `queue_log_realtime_use_gmt=yes`); the flat file is always epoch.

Records become calls in `connectors.phone.queue_log_calls`. The callers still waiting travel in the
cursor (callid, queue, entered, caller), so a later poll can finish them; the id of a call is
`callid@queue@entered-epoch`, stable across re-reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NotRequired
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, Field, field_validator, model_validator, with_config
from typing_extensions import TypedDict

from connectors import files
from connectors.base import (
    CURSOR_VERSION,
    Batch,
    ConnectorContext,
    ConnectorError,
    Cursor,
    Number,
    Records,
    Text,
    checked_cursor,
    unusable_cursor,
)
from connectors.csv_rows import RowError
from connectors.file_source import FileSource, read_error
from connectors.phone.parties import Parties, PartySettings
from connectors.phone.queue_log_calls import (
    IGNORE,
    MEASURED,
    NOT_CALLS,
    OUTBOUND_CALL,
    Calls,
    OpenStint,
    Record,
)
from connectors.phone.queue_log_lines import feed_texts, parse_text
from connectors.phone.queue_log_rows import (
    DEFAULT_TIME_FORMATS,
    KEYS,
    PRESETS,
    CsvRows,
    QueueLogColumns,
    TableRows,
)
from connectors.tabular import Row, TabularSettings, mapping
from monitor.config import DatabaseUrl, Duration, PhoneSettings, SourceSettings
from monitor.measure.events import Event

logger = logging.getLogger(__name__)
# Lines per batch (one transaction each). A fifth of them are calls: large enough that the
# per-transaction work (lookups, inquiries, tallies, commit) is small beside the rows, small
# enough that a batch is a few MB and well under a second.
DEFAULT_BATCH = 5000
# An import (a backfill, `fetch_paths`) takes larger batches: it is not resumed from a cursor,
# and each batch's fixed cost (its transaction, the rewrite of the indexes' last pages into the
# WAL, the look at the open stints) then counts four times less; a batch stays a few MB.
IMPORT_BATCH = 20_000
# What the table reader yields: (location, row) pairs and the position that covers them.
Read = tuple[list[tuple[str, Row]], Any]


class AsteriskQueueLogSettings(TabularSettings, PartySettings, PhoneSettings):
    path: str | None = None  # the flat file (or a glob, or a CSV export with format: csv)
    format: Literal["flat", "csv"] = "flat"
    table_url: DatabaseUrl | None = None  # SQLAlchemy URL of the Asterisk database (never ours)
    table: str = "queue_log"
    table_utc: bool = False  # queue_log_realtime_use_gmt=yes
    # `timezone` (TabularSettings): of table times; default: the config's timezone
    unknown_after: Duration = timedelta(hours=4)
    preset: Literal["htime_ttime"] | None = None  # the columns of a documented table layout
    # custom verb -> outbound_call, ignore, or the standard verb it stands for
    verbs: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_form(self) -> AsteriskQueueLogSettings:
        if (self.path is None) == (self.table_url is None):
            raise ValueError("set exactly one of path (a file) and table_url (a database)")
        tabular = self.format == "csv" or self.table_url is not None
        named = [k for k in ("preset", "columns", "fields") if getattr(self, k)]
        if named and not tabular:
            raise ValueError(f"{named[0]} is for a table or format: csv, not the flat file")
        KEYS.check(self.columns)
        if self.table_url is not None and isinstance(self.columns.get("time"), list):
            raise ValueError("columns: time is one column of the table")
        if self.header is False and not self.fields:
            raise ValueError("a file without a header needs `fields:` (its column names in order)")
        return self

    @field_validator("verbs")
    @classmethod
    def _meanings(cls, verbs: dict[str, str]) -> dict[str, str]:
        standard = MEASURED | NOT_CALLS
        for verb, meaning in verbs.items():
            if verb.strip().upper() in MEASURED:
                raise ValueError(f"verbs: {verb} is a standard verb, whose meaning is fixed")
            if meaning not in (OUTBOUND_CALL, IGNORE) and meaning.strip().upper() not in standard:
                raise ValueError(
                    f"verbs: {verb} means {meaning!r}: expected outbound_call, ignore or a "
                    "standard verb (ENTERQUEUE, CONNECT, COMPLETECALLER, ABANDON, ...)"
                )
        return verbs

    def mapping(self) -> tuple[dict[str, str | list[str]], frozenset[str]]:
        preset = PRESETS[self.preset].columns if self.preset else {}
        return mapping(KEYS, preset, self.columns)


class AsteriskQueueLogConnector(FileSource):
    kind = "asterisk_queue_log"
    settings = AsteriskQueueLogSettings

    def __init__(
        self,
        source: SourceSettings,
        context: ConnectorContext,
        *,
        max_lines: int | None = None,  # lines per batch: DEFAULT_BATCH, IMPORT_BATCH to import
        max_line_bytes: int = files.DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        super().__init__(source, context)
        assert isinstance(source, AsteriskQueueLogSettings), type(source)
        self.options = source
        self.parties = Parties(source)
        self.path = context.path(source.path) if source.path is not None else None
        self.zone = ZoneInfo("UTC") if source.table_utc else context.timezone
        if source.timezone and not source.table_utc:
            self.zone = ZoneInfo(source.timezone)
        self.max_lines = max_lines or DEFAULT_BATCH
        self.import_lines = max_lines or IMPORT_BATCH
        self.max_line_bytes = max_line_bytes
        self.unknown_after = source.unknown_after.total_seconds()
        wanted, optional = source.mapping()
        self.columns = QueueLogColumns(
            wanted,
            optional,
            self.zone,
            source.time_format or DEFAULT_TIME_FORMATS,
            delimiter=source.delimiter,
            verbs=source.verbs,
        )

    def _calls(self, records: Records) -> Calls:
        return Calls(
            self.unknown_after,
            records.window,
            self.options.verbs,
            self.parties.is_extension,
            long_numbers_outside=self.parties.long_numbers_outside,
        )

    def configured_path(self) -> Path:
        if self.path is None:
            raise ConnectorError("this source reads a table, not a file", permanent=True)
        return self.path

    def _table(self) -> TableRows:
        assert self.options.table_url is not None
        return TableRows(
            self.options.table_url, self.options.table, self.columns, batch=self.max_lines
        )

    def check(self) -> str:
        if self.options.table_url is not None:
            return self._table().check()
        return super().check()

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        records = self.collector(now)
        calls = self._calls(records)
        try:
            position, header = _load(cursor, calls)
        except (ValueError, TypeError) as exc:
            raise unusable_cursor(exc) from None
        if self.options.table_url is not None:
            rows = self._table().read(position)
            yield from self._batches(rows, position, calls, records, now, tailing=True)
            return
        try:
            chunks = files.tail(
                self.matched(permanent=False),
                position,
                max_lines=self.max_lines,
                max_line_bytes=self.max_line_bytes,
            )
        except ValueError as exc:
            raise unusable_cursor(exc) from None
        yield from self._file_batches(chunks, position, calls, header, records, now, tailing=True)

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        self.require_files(paths)
        chunks = files.read_all(
            paths, max_lines=self.import_lines, max_line_bytes=self.max_line_bytes
        )
        records = self.collector(now)
        calls = self._calls(records)
        yield from self._file_batches(chunks, None, calls, None, records, now, tailing=False)

    def _file_batches(
        self,
        chunks: Iterator[files.Chunk],
        position: Any,
        calls: Calls,
        header: list[str] | None,
        records: Records,
        now: datetime,
        *,
        tailing: bool,
    ) -> Iterator[Batch]:
        csv_rows = None
        if self.options.format == "csv":
            csv_rows = CsvRows(self.columns, header, self.options.fields)
        try:
            for chunk in chunks:
                records.rejected.extend(chunk.rejected)
                for run in chunk.runs:
                    if csv_rows is None:
                        _feed_flat(run, calls, records)
                    else:
                        _feed_each(run, csv_rows.parse, calls, records)
                records.add(calls.expire(None))
                position = chunk.cursor
                yield records.batch(_dump(position, calls, csv_rows))
            yield from self._last_batch(position, calls, csv_rows, records, now, tailing=tailing)
        except OSError as exc:
            raise read_error(exc, self.configured_path()) from None

    def _batches(
        self,
        reads: Iterator[Read],
        position: Any,
        calls: Calls,
        records: Records,
        now: datetime,
        *,
        tailing: bool,
    ) -> Iterator[Batch]:
        for found, position in reads:
            for location, row in found:
                records.take(location, self._row, calls, row)
            records.add(calls.expire(None))
            yield records.batch(_dump(position, calls, None))
        yield from self._last_batch(position, calls, None, records, now, tailing=tailing)

    def _row(self, calls: Calls, row: Row) -> list[Event]:
        return calls.feed(self.columns.record(row))

    def _last_batch(
        self,
        position: Any,
        calls: Calls,
        csv_rows: CsvRows | None,
        records: Records,
        now: datetime,
        *,
        tailing: bool,
    ) -> Iterator[Batch]:
        # Nothing newer to read: give up the stale stints, and show who is waiting now.
        records.add(calls.expire(now.timestamp()))
        if tailing:
            records.add(calls.waiting())
        if calls.unknown_verbs:
            counted = ", ".join(f"{v} x{n}" for v, n in calls.unknown_verbs.most_common(10))
            logger.info(
                "%s: %d queue_log lines with events that are not measured (%s)",
                self.source.name,
                sum(calls.unknown_verbs.values()),
                counted,
            )
        for reason, count in calls.skipped().items():
            records.skip(reason, count)
        if len(records) or records.skipped:
            yield records.batch(_dump(position, calls, csv_rows))


def _feed_flat(run: files.Run, calls: Calls, records: Records) -> None:
    """Parse the flat-file lines of `run` and feed them to `calls`: the hot loop of an import.

    A run whose bytes are clean as a whole (no NUL, valid UTF-8) is decoded in one go: UTF-8
    split at newlines stays valid, so each line decodes as it would alone. Otherwise each line
    is checked on its own and gets its own located reason."""
    joined = b"\n".join(run.lines)
    texts: list[str] | None = None
    if b"\x00" not in joined:
        try:
            texts = joined.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            pass
    if texts is None:
        _feed_each(run, lambda data: parse_line(data, calls.not_calls), calls, records)
    else:
        feed_texts(calls, texts, run.location, records)


def _feed_each(
    run: files.Run,
    parse: Callable[[bytes], Record | None],
    calls: Calls,
    records: Records,
) -> None:
    """Each line of `run` through `parse` into `calls`; a bad one rejected where it is."""
    for index, data in enumerate(run.lines):
        records.take(run.location(index), _fed, parse, calls, data)


def _fed(parse: Callable[[bytes], Record | None], calls: Calls, data: bytes) -> list[Event]:
    record = parse(data)
    return [] if record is None else calls.feed(record)


def parse_line(data: bytes, not_calls: Collection[str] = NOT_CALLS) -> Record | None:
    """One flat-file line; None for a blank line or one of a verb in `not_calls`; RowError (the
    reason) when malformed."""
    if not data.strip():
        return None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise RowError(f"binary data (NUL byte at byte {nul + 1})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowError(f"invalid UTF-8 at byte {exc.start + 1}") from None
    return parse_text(text, not_calls)


def _dump(position: Any, calls: Calls, csv_rows: CsvRows | None) -> Cursor:
    cursor: Cursor = {"v": CURSOR_VERSION, "position": position, **calls.dump()}
    if csv_rows is not None and csv_rows.header is not None and not csv_rows.fixed:
        cursor["header"] = csv_rows.header
    return cursor


@with_config(ConfigDict(extra="forbid"))
class QueueLogCursor(TypedDict):
    v: Number
    # Where reading stopped: the files' cursor (connectors.files) or the table's position
    # (connectors.phone.queue_log_rows), each checked by the reader it belongs to.
    position: Any
    latest: NotRequired[float | None]  # the newest record's time (Calls.dump)
    open: list[OpenStint]  # callers still in the queue (Calls.dump)
    header: NotRequired[list[Text]]  # a CSV export's header, for the lines after it


def _load(cursor: Cursor | None, calls: Calls) -> tuple[Any, list[str] | None]:
    if cursor is None:
        return None, None
    checked = checked_cursor(QueueLogCursor, cursor, "queue_log")
    calls.load(checked.get("latest"), checked["open"])
    return checked["position"], checked.get("header")
