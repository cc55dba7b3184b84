"""The connector contract: how a source becomes batches of normalized events.

A connector only extracts. `fetch(cursor, now)` reads what is new since `cursor` and yields
`Batch`es; each batch carries the cursor that covers exactly the events in it and before it. The
ingest loop stores a batch's events and its cursor in one transaction, so a poll interrupted
anywhere resumes from the last stored batch and neither loses nor duplicates anything. A
connector never touches the database and never changes anything at the source.

Bad records are not exceptions: they travel in `Batch.rejected` with a location and a reason,
are counted and logged by the ingest loop, and the rest of the source is still read. Exceptions
are for a source that cannot be read at all (`ConnectorError`, or an `OSError` of its files).
Records left out on purpose (an internal call, an outbound call that is no queue call, a verb
that is not measured) are counted per reason in `Batch.skipped` (`Records.skip`), so a poll can
say why it found nothing to measure.

One record never fails more than itself. Every connector makes its events through `Records`:
`take(location, make, *args)` runs `make` for one record, and whatever goes wrong in it (a
`BadRecord` with its reason, or any other exception: a charset that does not decode, a time
that overflows, a value of the wrong type) makes that record a located rejection while the rest
of the batch is kept. The events a record makes must carry plausible times (`Window`, from the
`plausible_times` setting): a record with a time outside them is rejected too. Strings that
cannot be stored (lone surrogates, NUL) are made storable by the event constructors
(monitor.measure.events), so a record cannot fail its batch in the database either.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

from pydantic import Field, Strict, TypeAdapter, ValidationError

from monitor.config import Agents, PlausibleTimes, SourceSettings
from monitor.errors import BadRecord, OperationError
from monitor.measure.events import CallEvent, Event, MessageEvent, from_micros, micros

logger = logging.getLogger(__name__)

# Small, JSON-serializable, versioned ({"v": 1, ...}): it is stored as JSON with the rows.
# Each kind declares its shape as a TypedDict (`ImapCursor`, `FileCursor`, ...), checked when
# it is loaded by `checked_cursor`.
Cursor = dict[str, Any]
CURSOR_VERSION = 1
# Field types of cursor shapes: exactly these JSON types (a `true` is no count, "3" no number).
Count = Annotated[int, Strict(), Field(ge=0)]
Number = Annotated[int, Strict()]
Text = Annotated[str, Strict()]
Shape = TypeVar("Shape")


def checked_cursor(shape: type[Shape], cursor: object, what: str) -> Shape:
    """`cursor` as the `shape` its kind declares (a TypedDict), its version and every field
    checked, in this one place for every kind; ValueError saying what does not fit.

    A stored cursor of another version or another kind, or a damaged one, would make a poll
    read the wrong things: callers fail the poll for good (`unusable_cursor`)."""
    if not isinstance(cursor, dict) or cursor.get("v") != CURSOR_VERSION:
        raise ValueError(f"not a version {CURSOR_VERSION} {what} cursor")
    try:
        adapter = _ADAPTERS.get(shape) or _ADAPTERS.setdefault(shape, TypeAdapter(shape))
        checked: Shape = adapter.validate_python(cursor)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        raise ValueError(f"{what} cursor {where.lstrip('.')}: {error['msg']}") from None
    return checked


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}  # a shape's validator, built once


def unusable_cursor(exc: Exception) -> ConnectorError:
    """The poll's error for a stored cursor that `checked_cursor` refused: permanent."""
    return ConnectorError(f"stored cursor is unusable: {exc}", permanent=True)


def stored_cursor(shape: type[Shape], cursor: Cursor | None, what: str) -> Shape | None:
    """A fetch's stored cursor checked (`checked_cursor`), None for none; a cursor that does
    not fit fails the poll for good (`unusable_cursor`)."""
    if cursor is None:
        return None
    try:
        return checked_cursor(shape, cursor, what)
    except ValueError as exc:
        raise unusable_cursor(exc) from None


class ConnectorError(OperationError):
    """The source cannot be read now. `permanent` errors (bad credentials, a missing file that
    is configured) will not heal by retrying; transient ones (network, a locked file) may."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that was skipped: where it is (`file:line`, `INBOX uid 42`) and why."""

    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Batch:
    events: list[Event]
    cursor: Cursor  # valid once these events (and all earlier batches') are stored
    rejected: list[Rejection] = field(default_factory=list)
    # Records read and left out on purpose, or not measured yet, per reason in a few words
    # ("internal calls": 12). Reasons are fixed words of the connector, never data.
    skipped: dict[str, int] = field(default_factory=dict)
    # What the poll should say about records it kept, per remark in a few words ("inbound
    # calls (a guess from the numbers)": 40): how a judgement was made where it is not certain.
    noted: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Window:
    """The times a record read now may carry: from `earliest` to `latest` (now plus the
    `plausible_times.ahead` setting), both included. Calls are checked on their microseconds."""

    earliest: datetime
    latest: datetime
    earliest_us: int
    latest_us: int

    @classmethod
    def of(cls, earliest: datetime, latest: datetime) -> Window:
        return cls(earliest, latest, micros(earliest), micros(latest))

    @property
    def epochs(self) -> tuple[float, float]:
        """The window as Unix epoch seconds, for logs that write times so."""
        return self.earliest_us / 1_000_000, self.latest_us / 1_000_000

    def check(self, at: datetime, what: str) -> datetime:
        """`at` when it is plausible; BadRecord naming `what` when it is not."""
        if self.earliest <= at <= self.latest:
            return at
        raise BadRecord(self.reason(at, what))

    def reason(self, at: datetime, what: str = "time") -> str:
        stamp = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if at < self.earliest:
            return (
                f"implausible {what} {stamp}: before {self.earliest:%Y-%m-%d}, the earliest "
                "plausible time (plausible_times.earliest)"
            )
        return (
            f"implausible {what} {stamp}: after {self.latest:%Y-%m-%d %H:%M} UTC, the latest "
            "plausible time (now + plausible_times.ahead)"
        )

    def problem(self, event: Event) -> str | None:
        """Why `event` carries an implausible time; None when it does not."""
        if isinstance(event, MessageEvent):
            at = event.at
            return None if self.earliest <= at <= self.latest else self.reason(at)
        lo, hi = self.earliest_us, self.latest_us
        for value, what in (
            (event.entered_us, "entered time"),
            (event.answered_us, "answered time"),
            (event.left_us, "end time"),
        ):
            if value is not None and not lo <= value <= hi:
                return self.reason(from_micros(value), what)
        return None


def window_of(settings: PlausibleTimes, now: datetime) -> Window:
    """The plausible times of records read at `now`."""
    earliest = datetime.combine(settings.earliest, time(), UTC)
    return Window.of(earliest, now.astimezone(UTC) + settings.ahead)


# Distinct remarks a batch keeps (`Records.note`); the rest are counted together.
MAX_REMARKS = 20

# A record's events: one event, several, or none (a record that is skipped on purpose).
Made = Event | Iterable[Event] | None


class Records:
    """The events and rejections of a batch being read, each record made on its own.

    `take` is the one place where a record becomes events: any exception while it is made (but
    a failure of the source itself: ConnectorError, OSError, MemoryError) and any implausible
    time in what it made reject that record, located, and nothing of it is kept. `batch` hands
    over what was collected and starts afresh, so one `Records` serves a whole fetch."""

    __slots__ = ("events", "noted", "read", "rejected", "skipped", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        self.events: list[Event] = []
        self.rejected: list[Rejection] = []
        self.skipped: Counter[str] = Counter()
        self.noted: Counter[str] = Counter()
        # Records made without a rejection over the collector's life (events or not: a line
        # that only opens a call, a record skipped on purpose), for `Connector.sample`.
        self.read = 0

    def __len__(self) -> int:
        """Events and rejections collected: what a batch's size is counted in."""
        return len(self.events) + len(self.rejected)

    def take(self, location: str, make: Callable[..., Made], *args: Any) -> bool:
        """Add the events `make(*args)` makes for the record at `location`; True when they were
        kept, False when the record was rejected."""
        try:
            made = make(*args)
            if made is None:
                self.read += 1
                return True
            found = [made] if isinstance(made, MessageEvent | CallEvent) else list(made)
        except Exception as exc:  # noqa: BLE001 - the record boundary: reason_for sorts it out
            self.rejected.append(Rejection(location, reason_for(exc)))
            return False
        return self._keep(location, found)

    def take_parsed(
        self,
        location: str,
        make: Callable[..., tuple[list[Event], list[Rejection]]],
        *args: Any,
    ) -> bool:
        """As `take`, for a record whose parts are rejected on their own (a chat and its
        messages): `make` returns (events, rejections)."""
        try:
            found, rejected = make(*args)
        except Exception as exc:  # noqa: BLE001 - the record boundary: reason_for sorts it out
            self.rejected.append(Rejection(location, reason_for(exc)))
            return False
        self.rejected.extend(rejected)
        # A record whose every part was rejected was not read, whatever it is made of.
        return self._keep(location, found, read=bool(found) or not rejected)

    def add(self, events: Iterable[Event]) -> None:
        """Events made from what earlier records left (a call finished by the clock, legs
        settled into a call): an implausible one is rejected under its own id."""
        for event in events:
            problem = self.window.problem(event)
            if problem is None:
                self.events.append(event)
            else:
                what = "call" if isinstance(event, CallEvent) else "message"
                self.rejected.append(Rejection(f"{what} {event.external_id}", problem))

    def reject(self, location: str, reason: str) -> None:
        self.rejected.append(Rejection(location, reason))

    def skip(self, reason: str, count: int = 1) -> None:
        """Count `count` records left out on purpose (or not measured yet) for `reason`: a few
        fixed words of the connector ("internal calls"), never data. They go out in the next
        batch's `skipped`."""
        if count:
            self.skipped[reason] += count

    def note(self, remark: str, count: int = 1) -> None:
        """Count `count` records kept with `remark` (how a judgement about them was made, where
        it is not certain: fixed words of the connector, never data), for the poll to say."""
        if count:
            if remark not in self.noted and len(self.noted) >= MAX_REMARKS:
                remark = "other remarks"  # a remark may name a destination read from the file
            self.noted[remark] += count

    def batch(self, cursor: Cursor) -> Batch:
        """A batch of everything collected, with `cursor`; the collector starts empty again."""
        batch = Batch(self.events, cursor, self.rejected, dict(self.skipped), dict(self.noted))
        self.events, self.rejected = [], []
        self.skipped, self.noted = Counter(), Counter()
        return batch

    def parsed(self) -> tuple[list[Event], list[Rejection]]:
        """Everything collected as (events, rejections); the collector starts empty again."""
        parsed = (self.events, self.rejected)
        self.events, self.rejected = [], []
        return parsed

    def _keep(self, location: str, found: list[Event], *, read: bool = True) -> bool:
        problem = self.window.problem
        for event in found:
            reason = problem(event)
            if reason is not None:
                self.rejected.append(Rejection(location, reason))
                return False
        self.events.extend(found)
        self.read += read
        return True


def reason_for(exc: Exception) -> str:
    """The rejection reason of a record whose making raised `exc`; `exc` itself when it is a
    failure of the source (the poll fails, to be retried), not of the record."""
    if isinstance(exc, ConnectorError | OSError | MemoryError):
        raise exc
    if isinstance(exc, BadRecord):
        return str(exc)
    # Not a reason we wrote: its message may quote the record, so only its kind is given (the
    # traceback is logged at debug level for whoever wants to fix a parser).
    logger.debug("a record raised %s", type(exc).__name__, exc_info=exc)
    if isinstance(exc, OverflowError):
        what = "a time or number out of range"
    elif isinstance(exc, UnicodeError):
        what = "text that cannot be decoded or encoded"
    elif isinstance(exc, RecursionError):
        what = "nesting too deep"
    elif isinstance(exc, LookupError):
        what = "an unknown name or a missing part"
    else:
        what = "unexpected content"
    return f"cannot be read: {what} ({type(exc).__name__})"


# How many records `Connector.sample` reads at least (it stops at the end of the batch that
# reaches them, so a source's first batch is read whole: at most its own batch size).
SAMPLE_RECORDS = 100


@dataclass(frozen=True)
class Sample:
    """What the first records of a source made, read by the connector's own `fetch` from the
    beginning, as a poll of a new source would read them; nothing is stored."""

    read: int  # records made without a rejection (with events or not)
    events: int
    rejected: int
    skipped: dict[str, int]  # records left out on purpose, per reason
    first_rejections: list[Rejection]  # the first few, for the reader
    whole: bool  # the whole source was read (it holds fewer records than were asked for)

    @property
    def unreadable(self) -> bool:
        """Records were read and every one was rejected: the source's settings do not fit
        what it holds (a columns mapping, a time format, a layout), or it is not what its kind
        says. A poll would store nothing from it."""
        return bool(self.rejected) and not self.read and not self.events and not self.skipped

    def describe(self) -> str:
        """One line: how many records were read and what came of them."""
        count = self.read + self.rejected
        if not count and not self.skipped:
            return "no records yet"
        said = f"{'' if self.whole else 'the first '}{count:,} record{'' if count == 1 else 's'}"
        said += f" read: {self.events:,} event{'' if self.events == 1 else 's'}"
        if self.skipped:
            said += ", " + ", ".join(f"{n:,} {why}" for why, n in sorted(self.skipped.items()))
        if self.rejected:
            said += f", {self.rejected:,} rejected (first: {self.first_rejections[0]})"
        return said

    def refusal(self) -> str:
        """One line for an `unreadable` sample: the first rejection, those of other reasons
        (a reason repeated on every line is said once), and what to look at."""
        shown: dict[str, Rejection] = {}
        for rejection in self.first_rejections:
            shown.setdefault(rejection.reason, rejection)
        more = self.rejected - len(shown)
        others = f" (and {more:,} more)" if more else ""
        return (
            f"every record read was rejected ({self.rejected:,}): "
            f"{'; '.join(map(str, shown.values()))}{others}; do the source's settings "
            "(columns, time format, timezone, layout) fit its files?"
        )


@dataclass(frozen=True)
class ConnectorContext:
    """What a connector may know beyond its own settings."""

    agents: Agents
    base_dir: Path  # relative paths in the config are relative to this folder
    timezone: ZoneInfo  # the configured default zone for timestamps without an offset
    plausible: PlausibleTimes = PlausibleTimes()  # the times a record may carry

    def window(self, now: datetime) -> Window:
        return window_of(self.plausible, now)

    def path(self, value: str | Path) -> Path:
        return (self.base_dir / Path(value).expanduser()).resolve()

    def is_agent_address(self, address: str) -> bool:
        address = address.strip().lower()
        domain = address.rpartition("@")[2]
        return address in self.agents.addresses or domain in self.agents.domains


class Connector(ABC):
    """Base class: one small subclass per source kind, listed in `connectors.CONNECTORS`.

    A kind says what it is and which settings it takes (a `SourceSettings` subclass that
    declares the channel it measures), and implements `check` and `fetch` (a kind missing one
    cannot be built: the error names the method). A minimal one::

        class NotesSettings(SourceSettings):
            channel: ClassVar[Channel] = Channel.CHAT
            path: str

        class NotesConnector(Connector):
            kind, settings = "notes", NotesSettings

            def check(self) -> str:
                return f"{len(self.notes())} notes"

            def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
                records = self.collector(now)
                for number, note in enumerate(self.notes(), 1):
                    records.take(f"note {number}", message_of, note)
                yield records.batch({"v": 1})
    """

    kind: ClassVar[str]
    settings: ClassVar[type[SourceSettings]] = SourceSettings
    # Kinds whose sources are files may be backfilled with `support-monitor import`.
    imports_files: ClassVar[bool] = False
    # (`check` also reads a `sample` of the first records of these: a layout or a mapping
    # that does not fit the files shows there.)
    # A source that mostly waits for a server (IMAP): ingest reads its next batch in a thread
    # while storing the last (monitor.store.ingest.read_ahead). Not for CPU-bound parsers of local
    # files: with one GIL, the thread only adds switching (measured on queue_log imports).
    reads_ahead: ClassVar[bool] = False

    def __init__(self, source: SourceSettings, context: ConnectorContext) -> None:
        self.source = source
        self.context = context

    # The collectors made while `sample` runs (None otherwise): how it counts records read.
    _sampling: list[Records] | None = None

    def collector(self, now: datetime) -> Records:
        """The collector every record of a fetch at `now` becomes events through."""
        records = Records(self.context.window(now))
        if self._sampling is not None:
            self._sampling.append(records)
        return records

    def sample(self, now: datetime, records: int = SAMPLE_RECORDS) -> Sample:
        """Read the first `records` records or so from the beginning through `fetch`, with
        this kind's own parsing, and say what they made; nothing is stored. `check` uses it to
        find a source whose every record would be rejected (a columns mapping that does not
        fit the file, a time format, a layout) before a poll does.

        Reading stops at the end of the batch that reaches `records`, so it costs at most one
        batch more than that. Raises what `fetch` raises (ConnectorError, OSError)."""
        self._sampling = []
        events = rejected = 0
        skipped: Counter[str] = Counter()
        first: list[Rejection] = []
        whole = True
        batches = self.fetch(None, now)
        try:
            for batch in batches:
                events += len(batch.events)
                rejected += len(batch.rejected)
                skipped.update(batch.skipped)
                first.extend(batch.rejected[: 3 - len(first)])
                if sum(r.read for r in self._sampling) + rejected >= records:
                    whole = False
                    break
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # a generator's `finally` blocks close its files now
            read = sum(r.read for r in self._sampling)
            self._sampling = None
        return Sample(read, events, rejected, dict(skipped), first, whole)

    @abstractmethod
    def check(self) -> str:
        """Try the source without reading it all; return a short description of what was found.

        Raises ConnectorError with one readable line when the source cannot be used."""

    @abstractmethod
    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        """Yield batches of what is new since `cursor` (None: from the beginning)."""

    def fetch_late(self, cursor: Callable[[], Cursor | None], now: datetime) -> Iterator[Batch]:
        """`fetch`, asking for the cursor (`cursor()`, which may wait for it) only when the
        reading needs it. A kind that can get ready without it (IMAP: connecting, TLS, logging
        in, listing the folders) does that first, while the poll's own process opens the store
        and reads the cursor (monitor.store.reader_process)."""
        yield from self.fetch(cursor(), now)

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        """Read the given files once, for `import` (backfill). Cursors of these batches are
        ignored: an import never moves the source's own cursor."""
        raise ConnectorError(f"kind {self.kind!r} cannot import files", permanent=True)
