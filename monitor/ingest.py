"""The ingest loop: connector batches in, rows + cursor + derived inquiries + tallies out.

Each batch is one transaction: its new messages and calls, the rebuilt inquiries of the
conversations it touched, the tally deltas, the rejected count and the cursor covering the batch.
So a poll killed at any moment resumes from the last committed batch, and a batch read twice
adds nothing (rows are keyed by (source, external_id) and inserted with ON CONFLICT DO NOTHING).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, bindparam, delete, select, update

from connectors import connector_class
from connectors.base import Batch, Connector, ConnectorContext, ConnectorError, Cursor, Rejection
from monitor.calendars import BusinessCalendar
from monitor.config import ResolvedTargets, Settings, SourceSettings
from monitor.events import CALLBACK_PREFIX, CallEvent, CallOutcome, MessageEvent, Side
from monitor.inquiries import Measured, derive
from monitor.models import CALLS, INQUIRIES, MESSAGES, STATES
from monitor.store import (
    StoreError,
    chunks,
    get_meta,
    in_values,
    insert_ignore,
    insert_rows,
    json_values,
    member,
    select_in,
    serialize,
    set_meta,
    transaction,
    value_parts,
)
from monitor.tallies import (
    Layout,
    TallyCounter,
    difference,
    inquiry_tallies,
    layout_for,
    recount,
    tally_calls,
)
from monitor.tallies import apply as apply_tallies

logger = logging.getLogger(__name__)

# Enough located rejections in the log to fix a file; the rest are counted, not listed.
REJECTIONS_LOGGED = 20


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Measuring:
    """What deriving a source's inquiries needs: its targets, calendar and bucket layout."""

    source: str
    channel: str
    targets: ResolvedTargets
    calendar: BusinessCalendar | None
    layout: Layout
    all_targets: Mapping[str, ResolvedTargets]
    # Builds the Measuring of another source: a callback stored here may close its inquiries.
    peer: Callable[[str], Measuring | None]


def measuring(settings: Settings, source: SourceSettings) -> Measuring:
    def peer(name: str) -> Measuring | None:
        known = {s.name: s for s in settings.sources}
        return measuring(settings, known[name]) if name in known else None

    calendar = None
    if source.calendar is not None:
        calendar = BusinessCalendar.from_settings(settings.file.calendars[source.calendar])
    return Measuring(
        source=source.name,
        channel=connector_class(source.kind).channel.value,
        targets=settings.targets_for(source),
        calendar=calendar,
        layout=layout_for(settings),
        all_targets={s.name: settings.targets_for(s) for s in settings.sources},
        peer=peer,
    )


def build_connector(settings: Settings, source: SourceSettings) -> Connector:
    context = ConnectorContext(
        agents=settings.file.agents, base_dir=settings.base_dir, timezone=settings.timezone
    )
    return connector_class(source.kind)(source, context)


@dataclass
class PollResult:
    source: str
    batches: int = 0
    messages: int = 0  # new messages stored
    calls: int = 0  # new or finished calls stored
    rejected: int = 0
    error: str | None = None
    permanent: bool = False
    interrupted: bool = False
    rejections: list[Rejection] = field(default_factory=list)

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
        tail = " (stopped early)" if self.interrupted else ""
        return f"{self.source}: {', '.join(parts)} in {self.batches} batches{tail}"


def poll_source(
    engine: Engine,
    settings: Settings,
    source: SourceSettings,
    *,
    now: datetime,
    clock: Callable[[], datetime] = utcnow,
    stop: threading.Event | None = None,
) -> PollResult:
    """Read what is new at `source` and store it batch by batch; record the source's health.

    Never raises for a source problem: the error is recorded and returned, so one bad source
    cannot stop the others. A database problem raises StoreError (nothing can be recorded)."""
    result = PollResult(source.name)
    with transaction(engine) as conn:
        cursor = load_cursor(conn, source.name)
    try:
        connector = build_connector(settings, source)
        batches = connector.fetch(cursor, now)
        _store_all(engine, measuring(settings, source), batches, result, stop, save_cursor=True)
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
) -> PollResult:
    """Backfill files into a file-kind source; the source's own cursor is left alone.
    `progress` is called after each stored batch with the running totals."""
    result = PollResult(source.name)
    batches = build_connector(settings, source).fetch_paths(paths, now)
    ctx = measuring(settings, source)
    _store_all(engine, ctx, batches, result, None, save_cursor=False, progress=progress)
    return result


def _store_all(
    engine: Engine,
    ctx: Measuring,
    batches: Iterator[Batch],
    result: PollResult,
    stop: threading.Event | None,
    *,
    save_cursor: bool,
    progress: Callable[[PollResult], None] | None = None,
) -> None:
    for batch in batches:
        with transaction(engine) as conn:
            messages, calls = store_batch(conn, ctx, batch.events)
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


def store_batch(conn: Connection, ctx: Measuring, events: Sequence[object]) -> tuple[int, int]:
    """Store one batch's events; return (new messages, new or finished calls)."""
    messages = [e for e in events if isinstance(e, MessageEvent)]
    calls = [e for e in events if isinstance(e, CallEvent)]
    delta: TallyCounter = Counter()  # the batch's tally changes, stored in one statement
    inserted, known, new = _store_messages(conn, ctx, messages)
    _rebuild_inquiries(conn, ctx, known, new, delta)
    _rederive_callback_peers(conn, ctx, known, delta)
    stored = _store_calls(conn, ctx, calls, delta)
    apply_tallies(conn, delta)
    return inserted, stored


def _rederive_callback_peers(
    conn: Connection, ctx: Measuring, touched: Iterable[str], delta: TallyCounter
) -> None:
    """A callback (agent side, `tel:` conversation) may answer a missed call or message kept by
    another phone source: rebuild that conversation there too."""
    callbacks = sorted(c for c in touched if c.startswith(CALLBACK_PREFIX))
    if not callbacks:
        return
    peers: dict[str, set[str]] = defaultdict(set)
    query = select(MESSAGES.c.source, MESSAGES.c.conversation).where(
        in_values(conn, MESSAGES.c.conversation),
        MESSAGES.c.source != ctx.source,
        MESSAGES.c.side == Side.CUSTOMER.value,
    )
    for part in value_parts(conn, callbacks):
        for source, conversation in conn.execute(query.distinct(), {"values": part}):
            peers[source].add(conversation)
    for name, conversations in sorted(peers.items()):
        peer = ctx.peer(name)
        if peer is not None:  # a source removed from the config keeps its old inquiries
            rederive(conn, peer, conversations, delta)


class StoredMessage(NamedTuple):
    """A message as stored (what pairing reads back from the store), for a new conversation."""

    external_id: str
    conversation: str
    at: datetime
    side: str
    kind: str
    automatic: bool
    internal: bool
    channel: str
    customer: str | None
    subject: str | None


def _store_messages(
    conn: Connection, ctx: Measuring, events: list[MessageEvent]
) -> tuple[int, set[str], dict[str, list[StoredMessage]]]:
    """Insert the new messages. Return how many, the conversations they touched that were
    stored before (in any source), and those that were not, with their messages.

    A conversation new to the store has no other messages and no inquiries, so its inquiries
    come from the messages at hand: reading them back, looking for old inquiries and callbacks
    in other sources would find nothing (each missed call is such a conversation)."""
    if not events:
        return 0, set(), {}
    unique = {e.external_id: e for e in reversed(events)}  # the first of duplicate ids wins
    existing = {
        r["external_id"]
        for r in select_in(
            conn, MESSAGES, {"source": ctx.source}, "external_id", unique, ["external_id"]
        )
    }
    rows = [
        (
            ctx.source,
            e.external_id,
            e.conversation,
            e.at,
            str(e.side),
            str(e.kind),
            e.automatic,
            e.internal,
            (str(e.channel) if e.channel else ctx.channel),
            e.customer,
            e.subject,
        )
        for e in events
        if unique[e.external_id] is e and e.external_id not in existing
    ]
    touched = {row[2] for row in rows}
    known = _stored_before(conn, ctx, touched)
    insert_rows(conn, MESSAGES, MESSAGE_COLUMNS, rows, ignore_conflicts=["source", "external_id"])
    new: dict[str, list[StoredMessage]] = defaultdict(list)
    for row in rows:  # in the order stored, as a read back by id would give them
        if row[2] not in known:
            new[row[2]].append(StoredMessage(*row[1:]))
    return len(rows), known & touched, new


def _stored_before(conn: Connection, ctx: Measuring, conversations: set[str]) -> set[str]:
    """Those of `conversations` with a message in any source, or an inquiry in this one."""
    found: set[str] = set()
    in_messages, in_inquiries = _history(json_values(conn))
    for part in value_parts(conn, sorted(conversations)):
        found.update(conn.execute(in_messages, {"values": part}).scalars())
        found.update(conn.execute(in_inquiries, {"values": part, "source": ctx.source}).scalars())
    return found


@functools.lru_cache(maxsize=4)
def _history(json_values: bool) -> tuple[Any, Any]:
    """The statements of _stored_before, made once: they run for every batch."""
    messages = select(MESSAGES.c.conversation).where(
        member(MESSAGES.c.conversation, json_values=json_values)
    )
    inquiries = select(INQUIRIES.c.conversation).where(
        member(INQUIRIES.c.conversation, json_values=json_values),
        INQUIRIES.c.source == bindparam("source"),
    )
    return messages.distinct(), inquiries.distinct()


def rederive(
    conn: Connection,
    ctx: Measuring,
    conversations: Iterable[str],
    delta: TallyCounter | None = None,
) -> None:
    """Rebuild the inquiries of `conversations` and move the tallies by the difference (now,
    or by adding it to `delta` for the caller to apply with the rest of its changes)."""
    _rebuild_inquiries(conn, ctx, conversations, {}, delta)


def _rebuild_inquiries(
    conn: Connection,
    ctx: Measuring,
    stored: Iterable[str],
    new: Mapping[str, list[StoredMessage]],
    delta: TallyCounter | None,
) -> None:
    """rederive of the `stored` conversations (read from the store) and of the `new` ones
    (their messages given), their inquiries stored together in conversation order."""
    known = sorted(set(stored))
    if not known and not new:
        return
    by_conversation: dict[str, list[Any]] = defaultdict(list)
    among = in_values(conn, MESSAGES.c.conversation)
    query = select(MESSAGES).where(MESSAGES.c.source == ctx.source, among).order_by(MESSAGES.c.id)
    for part in value_parts(conn, known):
        for row in conn.execute(query, {"values": part}):
            by_conversation[row.conversation].append(row)
    # A callback conversation also takes the agent side (the calls back) of every other source.
    callbacks = [c for c in known if c.startswith(CALLBACK_PREFIX)]
    query = (
        select(MESSAGES)
        .where(among, MESSAGES.c.side == Side.AGENT.value, MESSAGES.c.source != ctx.source)
        .order_by(MESSAGES.c.id)
    )
    for part in value_parts(conn, callbacks):
        for row in conn.execute(query, {"values": part}):
            by_conversation[row.conversation].append(row)
    old = select_in(conn, INQUIRIES, {"source": ctx.source}, "conversation", known)
    remove = delete(INQUIRIES).where(
        INQUIRIES.c.source == ctx.source, in_values(conn, INQUIRIES.c.conversation)
    )
    for part in value_parts(conn, known):
        conn.execute(remove, {"values": part})
    by_conversation.update(new)
    rows: list[tuple[Any, ...]] = []
    for conversation in sorted(by_conversation.keys() | known):
        for measured in derive(
            conversation, by_conversation[conversation], ctx.targets, ctx.calendar
        ):
            # Not dataclasses.asdict: it deep-copies every value.
            rows.append((ctx.source, *(getattr(measured, f) for f in MEASURED)))
    insert_rows(conn, INQUIRIES, INQUIRY_COLUMNS, rows)
    added = (dict(zip(INQUIRY_COLUMNS, row, strict=True)) for row in rows)
    change = difference(inquiry_tallies(added, ctx.layout), inquiry_tallies(old, ctx.layout))
    if delta is None:
        apply_tallies(conn, change)
    else:
        delta.update(change)


def _store_calls(
    conn: Connection, ctx: Measuring, events: list[CallEvent], delta: TallyCounter
) -> int:
    """Insert new calls; replace a stored *waiting* call by its final state. A finished call
    never changes again, so re-reading a log cannot count it twice."""
    if not events:
        return 0
    latest = {e.external_id: e for e in events}  # the last state of a call in the batch wins
    stored = {
        r["external_id"]: r["outcome"]
        for r in select_in(
            conn, CALLS, {"source": ctx.source}, "external_id", latest, ["external_id", "outcome"]
        )
    }
    inserts: list[tuple[Any, ...]] = []
    finished: list[tuple[Any, ...]] = []
    for event in latest.values():
        row = _call_row(ctx.source, event)
        if event.external_id not in stored:
            inserts.append(row)
        elif (
            stored[event.external_id] == CallOutcome.WAITING
            and event.outcome != CallOutcome.WAITING
        ):
            conn.execute(
                update(CALLS)
                .where(
                    CALLS.c.source == ctx.source,
                    CALLS.c.external_id == event.external_id,
                    CALLS.c.outcome == CallOutcome.WAITING.value,
                )
                .values(dict(zip(CALL_COLUMNS, row, strict=True)))
            )
            finished.append(row)
    insert_rows(conn, CALLS, CALL_COLUMNS, inserts, ignore_conflicts=["source", "external_id"])
    # (source, queue, outcome, wait) of each: tally_calls leaves out the waiting ones.
    counted = map(itemgetter(0, 2, 8, 6), inserts + finished)
    delta.update(tally_calls(counted, ctx.layout, ctx.all_targets))
    return len(inserts) + len(finished)


# Columns in table order, as insert_rows takes them.
CALL_COLUMNS = (
    "source",
    "external_id",
    "queue",
    "entered_at",
    "answered_at",
    "left_at",
    "wait_seconds",
    "talk_seconds",
    "outcome",
    "caller",
)
MESSAGE_COLUMNS = (
    "source",
    "external_id",
    "conversation",
    "at",
    "side",
    "kind",
    "automatic",
    "internal",
    "channel",
    "customer",
    "subject",
)
MEASURED = tuple(f.name for f in fields(Measured))
INQUIRY_COLUMNS = ("source", *MEASURED)


def _call_row(source: str, event: CallEvent) -> tuple[Any, ...]:
    return (
        source,
        event.external_id,
        event.queue,
        event.entered_at,
        event.answered_at,
        event.left_at,
        event.wait_seconds,
        event.talk_seconds,
        str(event.outcome),  # the StrEnum's text: Enum.value is a slow property
        event.caller,
    )


def load_cursor(conn: Connection, source: str) -> Cursor | None:
    raw = conn.execute(
        select(STATES.c.cursor).where(STATES.c.source == source)
    ).scalar_one_or_none()
    return json.loads(raw) if raw else None


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
            values.update(last_success_at=finished_at, consecutive_failures=0)
        else:
            values.update(
                last_error=result.error,
                last_error_at=finished_at,
                consecutive_failures=STATES.c.consecutive_failures + 1,
                poll_errors_total=STATES.c.poll_errors_total + 1,
            )
        conn.execute(update(STATES).where(STATES.c.source == result.source).values(**values))


def reconcile(engine: Engine, settings: Settings) -> bool:
    """Redo stored measurements if targets, calendars or buckets changed since they were made.

    Runs at start-up; costs a pass over the history only when the configuration changed."""
    layout = layout_for(settings)
    signature = layout.signature(settings)
    with transaction(engine) as conn:
        serialize(conn)  # instances starting together redo the measurements once
        previous = get_meta(conn, "measure_signature")
        if previous == signature:
            return False
        for source in settings.sources:
            ctx = measuring(settings, source)
            query = (
                select(MESSAGES.c.conversation).where(MESSAGES.c.source == source.name).distinct()
            )
            conversations = [row[0] for row in conn.execute(query)]
            for part in chunks(conversations, 2000):
                rederive(conn, ctx, part)
        recount(conn, settings, layout)
        set_meta(conn, "measure_signature", signature)
    if previous is not None:  # a new database has nothing to redo; say nothing
        logger.info("measurements redone for the current targets and calendars")
    return True
