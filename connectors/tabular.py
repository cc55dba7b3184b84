"""Tabular records: which column holds each of our keys, and reading one record by them.

Every tabular kind reads its records through here: `asterisk_queue_log` as a CSV export or a
table, `asterisk_cdr`, `call_csv` and `answering_service_csv`. Real exports vary, so each takes
the same settings (`TabularSettings`):

- `columns:` our key -> the file's column (a header name, or a name from `fields:`), or a pair
  `[date column, time column]` for a time written over two columns (`entered: [Date, Time]`);
- `header:` / `fields:` whether line 1 names the columns, else their names in order;
- `delimiter:` (`,` by default; `|` reads psql's console tables, whose ruler lines are skipped);
- `time_format:` strptime patterns (or `iso`, `epoch`) tried in order, `timezone:` for times
  written without an offset.

A kind lists its keys in a `Keys` (which hold times, which are required, the column each is read
from when nothing names one). A preset names columns the way a system's documented export does;
its columns are *optional*: one the file lacks is simply not read (a FreeSWITCH template without
`${waitsec}`), while a column the user names must be there. A `Layout` is that mapping resolved
against one file's column names (exact names first, else the one name equal ignoring case), and
a `Row` reads one record by our keys: text, times (a split time joined by a space before it is
parsed), durations in seconds or `H:MM:SS`, and any column by the file's own name, for a rule
that names a column (which direction or answer a value means).

Call logs share how times become a call (`CallTimes`): the answer and end times, the talk time,
and the wait as the file gives it or derived: duration - billable seconds (what a CDR's
`duration - billsec` is: ring, IVR and queue time), else answered - entered, else (not answered)
ended - entered.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field

from connectors.csv_rows import RowError, parse_time, seconds, split_line, text
from connectors.regular_files import open_regular
from monitor.config import SourceSettings, TimezoneName

# A column, or [date column, time column] for a time written over two columns.
ColumnRef = str | list[str]
Direction = Literal["inbound", "outbound", "internal"]
# A console table's ruler (psql's `----+----`, `+---+`, `===`) or footer (`(12 rows)`): no record.
_RULER = re.compile(r"^[\s|+=-]*$|^\s*\(\d+ rows?\)\s*$")


class TabularSettings(SourceSettings):
    """The settings every tabular kind reads its records with (see the module docstring)."""

    columns: dict[str, ColumnRef] = Field(default_factory=dict)  # our key -> the file's column
    header: bool | None = None  # whether line 1 names the columns; default: the kind's or preset's
    fields: list[str] | None = None  # the column names in order, for a file without a header
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    time_format: list[str] | None = None  # default: the kind's (iso, epoch, slashed dates)
    timezone: TimezoneName | None = None  # for times without an offset; default: the config's


@dataclass(frozen=True)
class Keys:
    """The keys a kind reads from a tabular record."""

    names: tuple[str, ...]  # every key, in the order the documentation lists them
    times: frozenset[str] = frozenset()  # keys holding a time (a pair of columns allowed)
    required: tuple[str, ...] = ()  # keys that must have a column
    defaults: Mapping[str, str] = field(default_factory=dict)  # key -> column when none is named

    def check(self, columns: Mapping[str, ColumnRef]) -> None:
        """ValueError naming the first key `columns` cannot map (for a settings validator)."""
        for key, ref in columns.items():
            if key not in self.names:
                raise ValueError(f"unknown column key {key!r} (expected one of {list(self.names)})")
            if isinstance(ref, list):
                if key not in self.times:
                    raise ValueError(f"columns: {key} takes one column, not a list")
                if len(ref) != 2 or not all(isinstance(c, str) and c for c in ref):
                    raise ValueError(f"columns: {key} takes [date column, time column]")
            elif not ref:
                raise ValueError(f"columns: {key} names no column")


@dataclass(frozen=True)
class Preset:
    """A documented layout: its columns (optional, see the module docstring), whether it has a
    header (else its fields in order), what its outcome and direction values mean, the zone of
    its times when the documentation states it."""

    source: str  # the system and export the layout is documented for
    columns: Mapping[str, ColumnRef]
    header: bool = True
    fields: tuple[str, ...] | None = None
    outcomes: Mapping[str, str] = field(default_factory=dict)
    directions: Mapping[str, Direction] = field(default_factory=dict)
    timezone: str | None = None
    # Said with the reason when a file lacks a column the preset needs.
    hint: str | None = None
    # The system's documentation says its answer time is a person's (never an IVR's).
    answers_are_people: bool = False


def mapping(
    keys: Keys, preset: Mapping[str, ColumnRef], columns: Mapping[str, ColumnRef]
) -> tuple[dict[str, ColumnRef], frozenset[str]]:
    """Where each key is read from (the kind's defaults, then the preset's, then `columns:`),
    and the keys whose column may be missing from a file (defaults and the preset's)."""
    wanted: dict[str, ColumnRef] = {**keys.defaults, **preset, **columns}
    optional = frozenset(k for k in wanted if k not in columns and k not in keys.required)
    return wanted, optional


class Layout:
    """A mapping resolved against one file's column names: where each key is read from, and
    the times' zone and formats. `problem` says why no record of this file can be read (a
    column the mapping needs is not there); every record is then rejected with it."""

    def __init__(
        self,
        names: Sequence[str],
        wanted: Mapping[str, ColumnRef],
        optional: Collection[str],
        zone: ZoneInfo,
        formats: Sequence[str],
        *,
        delimiter: str = ",",
    ) -> None:
        self.names = list(names)
        self.fields = Fields(delimiter)
        self.zone = zone
        self.formats = tuple(formats)
        self.width = len(self.names)
        self.problem: str | None = None
        self.sources: dict[str, tuple[int, ...]] = {}
        self.labels: dict[str, str] = {}  # key -> how a reason names its column(s)
        for key, ref in wanted.items():
            columns = [ref] if isinstance(ref, str) else list(ref)
            found = [self.find(c) for c in columns]
            if None in found:
                if key not in optional and self.problem is None:
                    missing = columns[found.index(None)]
                    self.problem = f"the header has no column {missing!r}"
                continue
            self.sources[key] = tuple(i for i in found if i is not None)
            self.labels[key] = " and ".join(self.names[i] for i in self.sources[key])

    def find(self, column: str) -> int | None:
        """The index of `column`: its exact name, else the one name equal ignoring case."""
        if column in self.names:
            return self.names.index(column)
        folded = [i for i, name in enumerate(self.names) if name.casefold() == column.casefold()]
        return folded[0] if len(folded) == 1 else None

    def has(self, key: str) -> bool:
        return key in self.sources

    def split(self, data: bytes) -> list[str] | None:
        """One line's fields; None for a line that is no record (blank, a table's ruler)."""
        return self.fields.split(data)

    def row(self, values: Sequence[Any]) -> Row:
        """One record's values, in the order of the names; RowError when it cannot be read."""
        if self.problem is not None:
            raise RowError(self.problem)
        if len(values) != self.width:
            raise RowError(f"expected {self.width} columns, got {len(values)}")
        return Row(values, self)


class Row:
    """One record, read by our keys (`text`, `time`, `seconds`) or by a column's own name."""

    __slots__ = ("layout", "values")

    def __init__(self, values: Sequence[Any], layout: Layout) -> None:
        self.values = values
        self.layout = layout

    def has(self, key: str) -> bool:
        return key in self.layout.sources

    def text(self, key: str) -> str:
        """The key's value, stripped; "" when the file has no column for it. A time over two
        columns is joined by a space (both empty: ""; one empty: RowError)."""
        where = self.layout.sources.get(key)
        if where is None:
            return ""
        if len(where) == 1:
            return _cell(self.values[where[0]], self.layout.names[where[0]])
        parts = [_cell(self.values[i], self.layout.names[i]) for i in where]
        if not any(parts):
            return ""
        for index, part in zip(where, parts, strict=True):
            if not part:
                raise RowError(f"missing {self.layout.names[index]}")
        return " ".join(parts)

    def column(self, name: str) -> str:
        """The value of the file's column `name` (for a rule that names a column); "" when the
        file has no such column."""
        index = self.layout.find(name)
        return "" if index is None else _cell(self.values[index], name)

    def time(self, key: str) -> datetime:
        """The key's time as aware UTC; RowError when it is missing or not a time."""
        found = self.optional_time(key)
        if found is None:
            raise RowError(f"missing {self.label(key)}")
        return found

    def optional_time(self, key: str) -> datetime | None:
        where = self.layout.sources.get(key)
        if where is None:
            return None
        if len(where) == 1:  # a table's column may hold a datetime or a number already
            value = self.values[where[0]]
            if isinstance(value, datetime):
                zone = self.layout.zone
                return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)
            if isinstance(value, int | float) and not isinstance(value, bool):
                try:
                    return datetime.fromtimestamp(float(value), UTC)
                except (OverflowError, OSError, ValueError):
                    raise RowError(f"{self.label(key)} is out of range") from None
        value = self.text(key)
        if not value:
            return None
        return parse_time(value, self.label(key), self.layout.zone, self.layout.formats)

    def seconds(self, key: str) -> float | None:
        """A duration in seconds (`47`, `47.5`, `0:00:47`); None when not mapped or empty."""
        value = self.text(key)
        return seconds(value, self.label(key)) if value else None

    def label(self, key: str) -> str:
        """The file's name for the key's column(s), as reasons name them."""
        return self.layout.labels.get(key, key)


def _cell(value: Any, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return text(value, name)
    return str(value).strip()


class Fields:
    """Lines of one delimited file as fields: a console table's rulers and footers are no
    records (None, like a blank line)."""

    def __init__(self, delimiter: str = ",") -> None:
        self.delimiter = delimiter
        self.ruled = delimiter == "|"  # only psql-style tables have rulers

    def split(self, data: bytes) -> list[str] | None:
        if self.ruled and _RULER.match(data.decode("utf-8", errors="replace")):
            return None
        return split_line(data, self.delimiter)

    def names(self, data: bytes) -> list[str] | None:
        """A header line's column names (stripped; a spreadsheet's BOM dropped); None when the
        line is blank; RowError when it is not a row."""
        found = self.split(data.removeprefix(b"\xef\xbb\xbf"))
        return None if found is None else [text(name, "header") for name in found]


def header_of(path: Path, delimiter: str, max_bytes: int) -> list[str] | None:
    """The column names on the first line of `path`; None when it has no usable header line
    (not a row, unreadable, not a regular file: its reading then says so, located)."""
    try:
        with open_regular(path) as handle:
            first = handle.readline(max_bytes + 1).rstrip(b"\r\n")
    except OSError:
        return None
    try:
        return Fields(delimiter).names(first)
    except RowError:
        return None


# -- calls ---------------------------------------------------------------------------------------

# The keys of a call record that say when it happened and how long it took (see CallTimes).
CALL_TIME_KEYS = ("entered", "answered", "ended")
CALL_DURATION_KEYS = ("wait", "wait_to_answer", "duration", "billable", "talk")


@dataclass(frozen=True, slots=True)
class CallTimes:
    """A call's times as its record gives them, and what follows from them.

    - `wait`: the file's wait, when it has one;
    - `wait_to_answer`: seconds from arrival to the answer (FreeSWITCH `waitsec`, a log's "time
      to answer"): the wait of an answered call only;
    - `duration` and `billable`: the call's whole length and the part after the answer (a CDR's
      `duration` and `billsec`): their difference is the time before the answer (all of it, for
      a call not answered), and `billable` is the talk time when `talk` is not given."""

    entered: datetime
    answered: datetime | None
    ended: datetime | None
    wait: float | None
    wait_to_answer: float | None
    duration: float | None
    billable: float | None
    talk: float | None

    @classmethod
    def of(cls, row: Row) -> CallTimes:
        entered = row.time("entered")
        duration = row.seconds("duration")
        ended = row.optional_time("ended")
        if ended is None and duration is not None:
            ended = entered + timedelta(seconds=duration)
        return cls(
            entered=entered,
            answered=row.optional_time("answered"),
            ended=ended,
            wait=row.seconds("wait"),
            wait_to_answer=row.seconds("wait_to_answer"),
            duration=duration,
            billable=row.seconds("billable"),
            talk=row.seconds("talk"),
        )

    def was_answered(self) -> bool:
        """Whether the record says the call was answered: an answer time, or billable seconds
        (a log that gives no answer time)."""
        return self.answered is not None or bool(self.billable)

    def wait_for(self, answered: bool) -> float:
        """The call's wait: as the file gives it, else derived (see the class docstring); for
        a call not answered, until it ended. RowError when nothing gives it."""
        if self.wait is not None:
            return self.wait
        if answered and self.wait_to_answer is not None:
            return self.wait_to_answer
        if self.duration is not None and self.billable is not None:
            return max(0.0, self.duration - (self.billable if answered else 0.0))
        if answered and self.answered is not None:
            return max(0.0, (self.answered - self.entered).total_seconds())
        if not answered and self.ended is not None:
            return max(0.0, (self.ended - self.entered).total_seconds())
        raise RowError("no wait: map `wait`, `duration` and `billable`, or `answered` and `ended`")

    def answer_at(self, wait: float) -> datetime:
        """When an answered call was answered: after its wait to answer when the file gives
        one (FreeSWITCH `waitsec` ends at the bridge to a person, while `answer_stamp` may be
        an IVR's), else the file's answer time, else after its wait."""
        if self.wait_to_answer is not None and self.wait is None:
            return self.entered + timedelta(seconds=self.wait_to_answer)
        return self.answered or self.entered + timedelta(seconds=wait)

    def talk_for(self, answered: bool) -> float | None:
        if self.talk is not None:
            return self.talk
        return self.billable if answered else None
