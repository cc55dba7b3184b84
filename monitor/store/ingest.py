"""The ingest loop: connector batches in, rows + cursor + derived inquiries + tallies out.

Each batch is one transaction: its new messages and calls, the rebuilt inquiries of the
conversations it touched, the tally deltas, the rejected count and the cursor covering the batch.
So a poll killed at any moment resumes from the last committed batch, and a batch read twice
adds nothing (rows are keyed by (source, external_id) and inserted with ON CONFLICT DO NOTHING).
What storing a batch does is `monitor.store.batches`; this module runs the loop and keeps each
source's cursor and health.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, literal, select, update

from connectors import build_connector
from connectors.base import Batch, ConnectorError, Cursor, Rejection
from monitor.config import Settings, SourceSettings
from monitor.measure.events import Event
from monitor.store.batches import (
    Measuring,
    PreparedBatch,
    measuring,
    prepare,
    rederive,
    store_batch,
)
from monitor.store.cursors import stored_cursor
from monitor.store.database import (
    StoreError,
    chunks,
    insert_ignore,
    serialize,
    set_meta,
    transaction,
)
from monitor.store.queue_labels import relabel_stored
from monitor.store.reader_process import Reading, can_fork, poll_in_child, read_in_child
from monitor.store.retention import SKIPPED_REASON, horizon, recent
from monitor.store.schema import MESSAGES, STATES
from monitor.store.tallies import layout_for, measured_with, recount

logger = logging.getLogger(__name__)

# Enough located rejections in the log to fix a file; the rest are counted, not listed.
REJECTIONS_LOGGED = 20
# An import (no cursor to save) commits the batches it stored a second at a time, not one by
# one (_Transactions says why).
IMPORT_COMMIT_SECONDS = 1.0


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class PollResult:
    source: str
    batches: int = 0
    messages: int = 0  # new messages stored
    calls: int = 0  # new or finished calls stored
    rejected: int = 0
    skipped: int = 0  # events older than the retention horizon: neither stored nor counted
    error: str | None = None
    permanent: bool = False
    interrupted: bool = False
    rejections: list[Rejection] = field(default_factory=list)
    events: int = 0  # events the source gave, new or not
    # Records the source left out on purpose (or has not measured yet), per reason.
    left_out: Counter[str] = field(default_factory=Counter)
    # How the source judged records it kept, where it is not certain, per remark.
    noted: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        if self.error:
            return f"{self.source}: FAILED {self.error}"
        parts = [
            f"{self.messages} new messages",
            f"{self.calls} calls",
            f"{self.rejected} rejected",
        ]
        if self.skipped:
            parts.append(f"{self.skipped} skipped ({SKIPPED_REASON})")
        tail = " (stopped early)" if self.interrupted else ""
        line = f"{self.source}: {', '.join(parts)} in {self.batches} batches{tail}"
        if self.left_out:
            reasons = ", ".join(f"{n:,} {why}" for why, n in sorted(self.left_out.items()))
            line += f"; skipped on purpose: {reasons}"
        if self.noted:
            remarks = ", ".join(f"{n:,} {what}" for what, n in sorted(self.noted.items()))
            line += f"; noted: {remarks}"
        return line

    def only_rejections(self) -> str | None:
        """When every record the poll read was rejected (it read some, and gave no event and
        left nothing out on purpose): why, in one line, with the first reasons. A source whose
        records all fail to parse is misconfigured or not what it claims, not a quiet day."""
        if not self.rejected or self.events or self.left_out or self.skipped:
            return None
        first = "; ".join(str(r) for r in self.rejections[:3])
        more = f" (and {self.rejected - 3:,} more)" if self.rejected > 3 else ""
        return f"every record read was rejected ({self.rejected:,}): {first}{more}"


def poll_source(
    engine: Engine,
    settings: Settings,
    source: SourceSettings,
    *,
    now: datetime,
    clock: Callable[[], datetime] = utcnow,
    stop: threading.Event | None = None,
    in_child: bool = False,
    reading: Reading | None = None,
) -> PollResult:
    """Read what is new at `source` and store it batch by batch; record the source's health.

    With `in_child` (the CLI's `poll`, when this process can fork safely) the source is read in
    a forked child while this process stores (monitor.store.reader_process): the second core,
    which a thread cannot give, as parsing and storing both hold the GIL. The child is started
    before the cursor is read and given it then, so that connecting and logging in cost no time
    here (`reading`: one the CLI started earlier still, before it opened the store, and gave its
    cursor). Otherwise a connector that `reads_ahead` reads its next batch in a thread while
    this one stores the last.

    Never raises for a source problem: the error is recorded and returned, so one bad source
    cannot stop the others. A database problem raises StoreError (nothing can be recorded)."""
    result = PollResult(source.name)
    with ExitStack() as stack:
        if in_child and reading is None:
            # Started first: the child connects while the cursor is read here.
            reading = stack.enter_context(poll_in_child(settings, source, now))
            reading.give(stored_cursor(engine, source.name))
        try:
            if reading is not None:
                batches, ahead = reading.batches, False
            else:
                cursor = stored_cursor(engine, source.name)
                connector = build_connector(settings, source)
                batches, ahead = connector.fetch(cursor, now), connector.reads_ahead
            _store_all(
                engine,
                measuring(settings, source),
                batches,
                result,
                stop,
                save_cursor=True,
                ahead=ahead,
                cutoff=horizon(now, settings),
            )
            result.error = result.only_rejections()
        except ConnectorError as exc:
            result.error, result.permanent = str(exc), exc.permanent
        except StoreError:
            raise
        except Exception as exc:  # a job boundary: record any failure, keep serving
            logger.exception("poll of %s failed unexpectedly", source.name)
            result.error = f"{type(exc).__name__}: {exc}"
    _record_health(engine, result, attempted_at=now, finished_at=clock())
    return result


def import_paths(
    engine: Engine,
    settings: Settings,
    source: SourceSettings,
    paths: list[Path],
    *,
    now: datetime,
    progress: Callable[[PollResult], None] | None = None,
    in_child: bool | None = None,
) -> PollResult:
    """Backfill files into a file-kind source; the source's own cursor is left alone.
    `progress` is called after each stored batch with the running totals.

    The files are read and parsed in a child process while this one stores (the second core:
    monitor.store.reader_process) when `in_child`, by default whenever this process can fork
    safely (it has no other thread)."""
    result = PollResult(source.name)
    connector = build_connector(settings, source)
    ctx = measuring(settings, source)
    cutoff = horizon(now, settings)
    if in_child is None:
        in_child = can_fork()

    def read() -> Iterator[Batch]:
        batches = connector.fetch_paths(paths, now)
        # In the child, on SQLite: the rows of the callback requests too (the second core).
        return _prepared(ctx, batches, cutoff) if in_child and sqlite else batches

    sqlite = engine.dialect.name == "sqlite"
    with _reading(read, in_child=in_child) as batches:
        _store_all(
            engine,
            ctx,
            batches,
            result,
            None,
            save_cursor=False,
            progress=progress,
            cutoff=cutoff,
            commit_every=IMPORT_COMMIT_SECONDS,
        )
    result.error = result.only_rejections()
    return result


def _reading(
    read: Callable[[], Iterator[Batch]], *, in_child: bool
) -> AbstractContextManager[Iterator[Batch]]:
    """The batches of `read()`: read in a forked child when `in_child`, else here."""
    return read_in_child(read) if in_child else nullcontext(read())


def _prepared(ctx: Measuring, batches: Iterator[Batch], cutoff: datetime | None) -> Iterator[Batch]:
    """`batches` with what storing them needs worked out here (monitor.store.batches.prepare),
    but a batch holding an event older than the retention, which storing leaves out."""
    for batch in batches:
        if cutoff is not None and recent(batch.events, cutoff)[1]:
            yield batch
            continue
        events, prepared = prepare(ctx, batch.events)
        yield PreparedBatch(
            events, batch.cursor, batch.rejected, batch.skipped, batch.noted, prepared=prepared
        )


def _store_all(
    engine: Engine,
    ctx: Measuring,
    batches: Iterator[Batch],
    result: PollResult,
    stop: threading.Event | None,
    *,
    save_cursor: bool,
    progress: Callable[[PollResult], None] | None = None,
    ahead: bool = False,
    cutoff: datetime | None = None,
    commit_every: float = 0.0,
) -> None:
    """Store each batch, with its cursor when `save_cursor`, until the batches end or `stop` is
    set; the next batch is read in a thread meanwhile when `ahead`.

    Each batch is its own transaction, unless `commit_every` (seconds) groups them: the
    batches stored within that long of the transaction's start are committed together (an
    import, which saves no cursor: what a crash rolls back is stored again, and only once, by
    importing the files again). What was stored before the source failed is committed."""
    with (
        read_ahead(batches) if ahead else nullcontext(batches) as taken,
        _Transactions(engine, commit_every) as transactions,
    ):
        for batch in taken:
            events: Sequence[Event] = batch.events
            result.events += len(events)
            result.left_out.update(batch.skipped)
            result.noted.update(batch.noted)
            if cutoff is not None:  # a purged event read again is not stored (or counted) again
                events, skipped = recent(events, cutoff)
                result.skipped += skipped
            prepared = batch.prepared if isinstance(batch, PreparedBatch) else None
            with transactions.batch() as conn:
                messages, calls = store_batch(conn, ctx, events, prepared)
                _save_state(
                    conn, ctx.source, batch.cursor if save_cursor else None, len(batch.rejected)
                )
            result.batches += 1
            result.messages += messages
            result.calls += calls
            result.rejected += len(batch.rejected)
            for rejection in batch.rejected:
                if len(result.rejections) < REJECTIONS_LOGGED:
                    result.rejections.append(rejection)
                    logger.warning("%s: rejected %s", ctx.source, rejection)
            if progress is not None:
                progress(result)
            if stop is not None and stop.is_set():
                # The cursor of every stored batch is saved, so stopping here loses nothing.
                result.interrupted = True
                return


class _Transactions:
    """The transactions batches are stored in: one per batch, or (`seconds` > 0) one for the
    batches stored within `seconds` of its start.

    A million-line import stored in 52 transactions wrote 1 GB into the WAL and the database
    for a 113 MB database: every commit writes each page the batch changed, and the indexes
    keyed by caller numbers and conversations, written in no order, have most of their pages
    changed by every batch. Committed a second at a time, it writes 0.46 GB and its system
    time is a third smaller. A concurrent writer (a scrape settling verdicts, another source's
    poll) waits at most about that second for the write lock, well within the busy timeout.

    A batch that fails to store rolls back the transaction it is in (what the caller raises
    then ends the import); one that is stored stays, and is committed when the transactions
    end, also when reading the next batch raised."""

    def __init__(self, engine: Engine, seconds: float) -> None:
        self.engine = engine
        self.seconds = seconds
        self.open: AbstractContextManager[Connection] | None = None
        self.conn: Connection | None = None
        self.started = 0.0

    @contextmanager
    def batch(self) -> Iterator[Connection]:
        if self.conn is None:
            self.open = transaction(self.engine)
            self.conn = self.open.__enter__()
            self.started = time.monotonic()
        try:
            yield self.conn
        except BaseException as exc:
            self._end(exc)
            raise
        if self.seconds <= 0 or time.monotonic() - self.started >= self.seconds:
            self._end(None)

    def _end(self, error: BaseException | None) -> None:
        """Commit the open transaction (roll it back with `error`)."""
        opened, self.open, self.conn = self.open, None, None
        if opened is not None:
            if error is None:
                opened.__exit__(None, None, None)
            else:
                opened.__exit__(type(error), error, error.__traceback__)

    def __enter__(self) -> _Transactions:
        return self

    def __exit__(self, *_: object) -> None:
        self._end(None)


class _Failed:
    """What a reading thread hands over instead of a batch when the source failed."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()  # the reading thread's last item: the source has nothing more


@contextmanager
def read_ahead(batches: Iterator[Batch]) -> Iterator[Iterator[Batch]]:
    """The batches of `batches`, read one ahead in a thread while the caller stores the last.

    A source's next batch is mostly waiting for the server (or the disk) and parsing; storing
    one is mostly SQLite, which releases the GIL: overlapping them takes about a fifth off an
    IMAP poll. Order, and a cursor stored only with its own batch, are unchanged; at most one
    batch is read but not stored when the caller stops early (its cursor is not saved, so the
    next poll reads it again). The connector runs in the reading thread only, start to end, and
    is closed there (an IMAP session logs out), after the caller stopped taking batches. The
    source's errors are raised to the caller, in order, as if read here."""
    handover: queue.Queue[Batch | _Failed | object] = queue.Queue(maxsize=1)
    cancelled = threading.Event()

    def give(item: Batch | _Failed | object) -> bool:
        while not cancelled.is_set():
            try:
                handover.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not give(batch):
                    return
            give(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            give(_Failed(exc))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    def taken() -> Iterator[Batch]:
        while True:
            item = handover.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            assert isinstance(item, Batch)
            yield item

    reader = threading.Thread(target=read, name="read-ahead", daemon=True)
    reader.start()
    try:
        yield taken()
    finally:
        cancelled.set()
        reader.join()


def _ensure_state(conn: Connection, source: str) -> None:
    conn.execute(insert_ignore(conn, STATES, ["source"]), [{"source": source}])


def _save_state(conn: Connection, source: str, cursor: Cursor | None, rejected: int) -> None:
    _ensure_state(conn, source)
    values: dict[str, Any] = {"records_rejected_total": STATES.c.records_rejected_total + rejected}
    if cursor is not None:
        values["cursor"] = json.dumps(cursor, sort_keys=True, separators=(",", ":"))
    conn.execute(update(STATES).where(STATES.c.source == source).values(**values))


def _record_health(
    engine: Engine, result: PollResult, *, attempted_at: datetime, finished_at: datetime
) -> None:
    with transaction(engine) as conn:
        _ensure_state(conn, result.source)
        values: dict[str, Any] = {"last_attempt_at": attempted_at}
        if result.ok:
            values.update(
                last_success_at=finished_at,
                read_from=attempted_at,
                consecutive_failures=0,
                failing_since=None,
            )
        else:
            values.update(
                last_error=result.error,
                last_error_at=finished_at,
                failing_since=func.coalesce(
                    STATES.c.failing_since, literal(attempted_at, STATES.c.failing_since.type)
                ),
                consecutive_failures=STATES.c.consecutive_failures + 1,
                poll_errors_total=STATES.c.poll_errors_total + 1,
            )
        conn.execute(update(STATES).where(STATES.c.source == result.source).values(**values))


def reconcile(engine: Engine, settings: Settings) -> bool:
    """Redo stored measurements if targets, calendars or buckets changed since they were made.

    Runs at start-up; costs a pass over the history only when the configuration changed."""
    layout = layout_for(settings)
    with transaction(engine) as conn:
        serialize(conn)  # instances starting together redo the measurements once
        measured = measured_with(conn, settings, layout)
        if measured.current:
            return False
        if not measured.bounded:  # calls stored before queue labels were bounded: once
            relabel_stored(conn, settings)
            set_meta(conn, "queue_labels", "bounded")
        for source in settings.sources if measured.previous != measured.signature else ():
            ctx = measuring(settings, source)
            query = (
                select(MESSAGES.c.conversation).where(MESSAGES.c.source == source.name).distinct()
            )
            conversations = [row[0] for row in conn.execute(query)]
            for part in chunks(conversations, 2000):
                rederive(conn, ctx, part)
        recount(conn, settings, layout)
        set_meta(conn, "measure_signature", measured.signature)
    if measured.previous is not None:  # a new database has nothing to redo; say nothing
        logger.info("measurements redone for the current targets and calendars")
    return True
