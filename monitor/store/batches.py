"""One batch into the store: its messages and calls, the inquiries they change, the tallies.

`store_batch` runs inside the caller's transaction (monitor.store.ingest adds the cursor and
commits): new messages and calls are inserted (ON CONFLICT DO NOTHING: a batch read twice adds
nothing), a stored *waiting* call is replaced by its final state, the inquiries of every
conversation the new messages touch are rebuilt (here and, for callbacks, in other phone sources),
and the tallies move by exactly what the changed rows contribute, in one upsert.

This is the hot path of an import (a million-line queue_log is ~200,000 calls), so the rows go
to the database as tuples (`monitor.store.bulk`) and the statements run for every batch are made
once.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, delete, func, select, update

from monitor.config import ResolvedTargets, Settings, SourceSettings, channel_of
from monitor.measure.calendars import BusinessCalendar
from monitor.measure.events import (
    CALLBACK_PREFIX,
    GOT_THROUGH,
    GOT_THROUGH_PREFIX,
    CallEvent,
    CallOutcome,
    Channel,
    MessageEvent,
    Side,
    answer_time,
    got_through,
)
from monitor.measure.inquiries import MEASURED, derive_values, verdict_of
from monitor.measure.summaries import is_short_abandon
from monitor.store import threads
from monitor.store.bulk import in_values, insert_rows, json_values, member, select_in, value_parts
from monitor.store.queue_labels import QueueLabels
from monitor.store.schema import CALLS, GOT_THROUGH_CALL, INQUIRIES, MESSAGES, WAITING_CALL
from monitor.store.tallies import (
    INQUIRY_TALLIED,
    Layout,
    TallyCounter,
    difference,
    inquiry_tallies,
    layout_for,
    tally_calls,
    tally_inquiries,
)
from monitor.store.tallies import apply as apply_tallies


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
    # The bounded `queue` label of each call stored (monitor.store.queue_labels).
    queues: QueueLabels


def measuring(settings: Settings, source: SourceSettings) -> Measuring:
    known = {s.name: s for s in settings.sources}

    # Made once per peer for the whole poll (a calendar loads its holidays), not per batch.
    @functools.cache
    def peer(name: str) -> Measuring | None:
        return measuring(settings, known[name]) if name in known else None

    calendar = None
    if source.calendar is not None:
        calendar = BusinessCalendar.from_settings(settings.file.calendars[source.calendar])
    return Measuring(
        source=source.name,
        channel=channel_of(source).value,
        targets=settings.targets_for(source),
        calendar=calendar,
        layout=layout_for(settings),
        all_targets={s.name: settings.targets_for(s) for s in settings.sources},
        peer=peer,
        queues=QueueLabels(source),
    )


def store_batch(conn: Connection, ctx: Measuring, events: Sequence[object]) -> tuple[int, int]:
    """Store one batch's events; return (new messages, new or finished calls)."""
    messages = [e for e in events if isinstance(e, MessageEvent)]
    # Queue names become bounded labels where calls are stored (monitor.store.queue_labels).
    calls = ctx.queues.apply(conn, [e for e in events if isinstance(e, CallEvent)])
    delta: TallyCounter = Counter()  # the batch's tally changes, stored in one statement
    # Calls first: a caller who got through (an answered call, kept with its caller's callback
    # key) answers their callback request, in any phone source, when it is measured below.
    stored, through = _store_calls(conn, ctx, calls, delta)
    # E-mails find their conversation through the links of earlier messages (monitor.store.threads);
    # a merge of two threads moves stored messages, so both are measured again.
    placed = threads.resolve(conn, ctx.source, messages)
    inserted, known, new = _store_messages(conn, ctx, messages, placed)
    known |= placed.regrouped - new.keys()
    known |= _waiting_for_callbacks(conn, through)
    _rebuild_inquiries(conn, ctx, known, new, delta, calls)
    _rederive_callback_peers(conn, ctx, known, delta)
    apply_tallies(conn, delta)
    return inserted, stored


def _rederive_callback_peers(
    conn: Connection, ctx: Measuring, touched: Iterable[str], delta: TallyCounter
) -> None:
    """A callback (agent side, `tel:` conversation) may answer a missed call or message kept by
    another phone source: rebuild that conversation there too."""
    if ctx.all_targets.keys() <= {ctx.source}:
        return  # no other source is configured: none to rebuild (as for a removed one, below)
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
    refers: str | None
    agent: str | None = None
    left_out: str | None = None


_new = tuple.__new__


def _store_messages(
    conn: Connection,
    ctx: Measuring,
    events: list[MessageEvent],
    placed: threads.Placed,
) -> tuple[int, set[str], dict[str, list[StoredMessage]]]:
    """Insert the new messages. Return how many, the conversations they touched that were
    stored before (in any source), and those that were not, with their messages. `placed` is
    what threading found: the conversation of each threaded message, and which of them are
    stored already.

    A conversation new to the store has no other messages and no inquiries, so its inquiries
    come from the messages at hand: reading them back, looking for old inquiries and callbacks
    in other sources would find nothing (each missed call is such a conversation)."""
    if not events:
        return 0, set(), {}
    unique = {e.external_id: e for e in reversed(events)}  # the first of duplicate ids wins
    existing = placed.stored
    unchecked = [i for i in unique if i not in placed.checked]  # threading looked up the rest
    if unchecked:
        fields = ["external_id"]
        found = select_in(conn, MESSAGES, {"source": ctx.source}, "external_id", unchecked, fields)
        existing = existing | {r["external_id"] for r in found}
    conversations = placed.conversations
    # Each new message as pairing reads it, made in C (tuple.__new__ with the fields in order:
    # a Python __new__ or _make per message cost more), and its row is (source,) + that.
    stored = [
        _new(
            StoredMessage,
            (
                e.external_id,
                conversations.get(e.external_id, e.conversation),
                e.at,
                str(e.side),
                str(e.kind),
                e.automatic,
                e.internal,
                (str(e.channel) if e.channel else ctx.channel),
                e.customer,
                e.subject,
                " ".join(e.refers) or None,
                e.agent,
                e.left_out,
            ),
        )
        for e in events
        if unique[e.external_id] is e and e.external_id not in existing
    ]
    source = (ctx.source,)
    rows = [source + m for m in stored]
    touched = {m.conversation for m in stored}
    known = _stored_before(conn, ctx, touched)
    insert_rows(conn, MESSAGES, MESSAGE_COLUMNS, rows, ignore_conflicts=["source", "external_id"])
    new: dict[str, list[StoredMessage]] = defaultdict(list)
    for m in stored:  # in the order stored, as a read back by id would give them
        if m.conversation not in known:
            new[m.conversation].append(m)
    return len(rows), known & touched, new


def _waiting_for_callbacks(conn: Connection, keys: set[str]) -> set[str]:
    """The callback conversations among `keys` with a customer-side message in any source: the
    callers who got through and wait, or waited, for a callback (few of them), so that they
    are measured again."""
    found: set[str] = set()
    if not keys:
        return found
    waiting = _waiting_in(json_values(conn))
    for part in value_parts(conn, sorted(keys)):
        found.update(conn.execute(waiting, {"values": part}).scalars())
    return found


@functools.lru_cache(maxsize=4)
def _waiting_in(as_json: bool) -> Any:
    """The callback conversations among some with a customer-side message (any source)."""
    return (
        select(MESSAGES.c.conversation)
        .where(
            member(MESSAGES.c.conversation, as_json=as_json),
            MESSAGES.c.side == Side.CUSTOMER.value,
        )
        .distinct()
    )


def _stored_before(conn: Connection, ctx: Measuring, conversations: set[str]) -> set[str]:
    """Those of `conversations` with a message in any source, or an inquiry in this one, or
    (a callback conversation) an answered call from its number in any source."""
    found: set[str] = set()
    in_messages, in_inquiries, in_calls = _history(json_values(conn))
    for part in value_parts(conn, sorted(conversations)):
        found.update(conn.execute(in_messages, {"values": part}).scalars())
        found.update(conn.execute(in_inquiries, {"values": part, "source": ctx.source}).scalars())
    callbacks = sorted(c for c in conversations - found if c.startswith(CALLBACK_PREFIX))
    for part in value_parts(conn, callbacks):
        found.update(conn.execute(in_calls, {"values": part}).scalars())
    return found


@functools.lru_cache(maxsize=4)
def _history(as_json: bool) -> tuple[Any, Any, Any]:
    """The statements of _stored_before, made once: they run for every batch."""
    messages = select(MESSAGES.c.conversation).where(
        member(MESSAGES.c.conversation, as_json=as_json)
    )
    inquiries = select(INQUIRIES.c.conversation).where(
        member(INQUIRIES.c.conversation, as_json=as_json),
        INQUIRIES.c.source == bindparam("source"),
    )
    calls = select(CALLS.c.caller_key).where(
        member(CALLS.c.caller_key, as_json=as_json), GOT_THROUGH_CALL
    )
    return messages.distinct(), inquiries.distinct(), calls.distinct()


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
    calls: Sequence[CallEvent] = (),
) -> None:
    """rederive of the `stored` conversations (read from the store) and of the `new` ones
    (their messages given), their inquiries stored together in conversation order. `calls`
    are the batch's calls, at hand (a callback request may stand for one of them)."""
    known = sorted(set(stored))
    if not known and not new:
        return
    by_conversation: dict[str, list[Any]] = defaultdict(list)
    own, others, answered, remove = _rebuild_statements(json_values(conn))
    for part in value_parts(conn, known):
        for row in conn.execute(own, {"values": part, "source": ctx.source}):
            by_conversation[row.conversation].append(row)
    # A callback conversation also takes the agent side (the calls back) of every other source,
    # and every answered call from its number (the caller got through), in any source.
    callbacks = [c for c in known if c.startswith(CALLBACK_PREFIX)]
    for part in value_parts(conn, callbacks):
        for row in conn.execute(others, {"values": part, "source": ctx.source}):
            by_conversation[row.conversation].append(row)
        for row in conn.execute(answered, {"values": part}):
            by_conversation[row.caller_key].append(_got_through_message(row))
    # The old inquiries are read as they are deleted, in one statement: a scrape that flags one
    # late meanwhile (monitor.store.verdicts) is either in what is returned or waits for this.
    old: list[Any] = []
    for part in value_parts(conn, known):
        old.extend(conn.execute(remove, {"values": part, "source": ctx.source}).mappings())
    by_conversation.update(new)
    _leave_out_short_abandons(conn, ctx, by_conversation, calls)
    # A verdict given stands in the rebuilt row (monitor.store.verdicts): the late one a scrape
    # gave an inquiry still open, even when a reply dated before its due time is read now; and
    # any other, when changed targets redo the measurements. What is undecided is judged now.
    given = {(r["conversation"], r["opened_by"]): r["verdict"] for r in old if r["verdict"]}
    rows: list[tuple[Any, ...]] = []
    for conversation in sorted(by_conversation.keys() | known):
        for values in derive_values(
            conversation, by_conversation[conversation], ctx.targets, ctx.calendar
        ):
            verdict = given.get((conversation, values[_OPENED_BY])) or verdict_of(
                values[_STATUS], values[_BREACHED]
            )
            rows.append((ctx.source, *values, verdict))
    insert_rows(conn, INQUIRIES, INQUIRY_COLUMNS, rows)
    added = tally_inquiries(map(_inquiry_tallied, rows), ctx.layout)
    change = difference(added, inquiry_tallies(old, ctx.layout))
    if delta is None:
        apply_tallies(conn, change)
    else:
        delta.update(change)


def _leave_out_short_abandons(
    conn: Connection,
    ctx: Measuring,
    by_conversation: dict[str, list[Any]],
    calls: Sequence[CallEvent],
) -> None:
    """Drop the callback requests of short abandons from the messages to pair: the caller
    hung up within `short_abandon` (or the source called it a short abandon), so no callback
    is owed. Decided here, with the targets in force, so a changed `short_abandon` applies to
    the history when the measurements are redone."""
    if ctx.targets.short_abandon <= timedelta(0):
        return  # off: the sources' own short abandons asked for no callback in the first place
    wanted = {
        ref
        for conversation, messages in by_conversation.items()
        if conversation.startswith(CALLBACK_PREFIX)
        for m in messages
        if m.side == Side.CUSTOMER and m.refers
        for ref in m.refers.split()
    }
    if not wanted:
        return
    found = {c.external_id: c for c in calls if c.external_id in wanted}
    missing = wanted - found.keys()
    fields = ["external_id", "outcome", "wait_seconds", "short_abandon"]
    short = {
        external_id
        for external_id, c in found.items()
        if is_short_abandon(c.outcome, c.wait_seconds, c.short_abandon, ctx.targets)
    }
    for row in select_in(conn, CALLS, {"source": ctx.source}, "external_id", missing, fields):
        if is_short_abandon(row["outcome"], row["wait_seconds"], row["short_abandon"], ctx.targets):
            short.add(row["external_id"])
    if not short:
        return
    for conversation, messages in by_conversation.items():
        if conversation.startswith(CALLBACK_PREFIX):
            by_conversation[conversation] = [
                m
                for m in messages
                if m.side != Side.CUSTOMER or not m.refers or short.isdisjoint(m.refers.split())
            ]


@functools.lru_cache(maxsize=4)
def _rebuild_statements(as_json: bool) -> tuple[Any, Any, Any, Any]:
    """The statements of _rebuild_inquiries, made once (building them cost more than running
    them for a batch of new conversations): the source's messages of some conversations, the
    other sources' calls back in them, the answered calls from their numbers, and the deletion
    of the source's inquiries in them (returning them)."""
    source: Any = bindparam("source")
    among = member(MESSAGES.c.conversation, as_json=as_json)
    own = select(MESSAGES).where(MESSAGES.c.source == source, among).order_by(MESSAGES.c.id)
    others = (
        select(MESSAGES)
        .where(among, MESSAGES.c.side == Side.AGENT.value, MESSAGES.c.source != source)
        .order_by(MESSAGES.c.id)
    )
    c = CALLS.c
    answered = (
        select(c.source, c.external_id, c.caller_key, c.caller)
        .add_columns(c.answered_at, c.entered_at, c.wait_seconds, c.agent)
        .where(member(c.caller_key, as_json=as_json), GOT_THROUGH_CALL)
        .order_by(c.id)
    )
    remove = (
        delete(INQUIRIES)
        .where(INQUIRIES.c.source == source, member(INQUIRIES.c.conversation, as_json=as_json))
        .returning(*INQUIRIES.c)
    )
    return own, others, answered, remove


def _got_through_message(call: Any) -> StoredMessage:
    """An answered call from the number of a callback conversation, as the agent-side message
    it stands for: the caller got through at the answer (in any phone source)."""
    return StoredMessage(
        external_id=f"{GOT_THROUGH_PREFIX}{call.source}/{call.external_id}",
        conversation=call.caller_key,
        at=answer_time(call.answered_at, call.entered_at, call.wait_seconds),
        side=Side.AGENT.value,
        kind="message",
        automatic=False,
        internal=False,
        channel=Channel.PHONE.value,
        customer=call.caller,
        subject=None,
        refers=None,
        agent=call.agent,
    )


def _store_calls(
    conn: Connection, ctx: Measuring, events: list[CallEvent], delta: TallyCounter
) -> tuple[int, set[str]]:
    """Insert new calls; replace a stored *waiting* call by its final state. A finished call
    never changes again, so re-reading a log cannot count it twice. Return how many were
    stored, and the callback keys of those answered (their callers got through): the call's
    `caller_key`, indexed, where a callback request of the number finds it."""
    if not events:
        return 0, set()
    latest = {e.external_id: e for e in events}  # the last state of a call in the batch wins
    # On SQLite only the stored *waiting* calls are looked up (a handful, by ix_call_waiting),
    # not every id of the batch: the rest are inserted, and which of them were new is told by
    # the row count and, only when some were stored already, by their ids (_insert_new_calls).
    optimistic = conn.dialect.name == "sqlite"
    found: Sequence[Any]
    if optimistic:
        found = conn.execute(_STORED_WAITING, {"source": ctx.source}).mappings().all()
    else:
        fields = ["external_id", "outcome"]
        found = select_in(conn, CALLS, {"source": ctx.source}, "external_id", latest, fields)
    stored = {r["external_id"]: r["outcome"] for r in found}
    new, ending = list(latest.values()), []  # none of them looked up is stored (an import)
    if stored:
        new = [e for e in new if e.external_id not in stored]
        ending = [
            e
            for e in latest.values()
            if stored.get(e.external_id) == CallOutcome.WAITING and e.outcome != CallOutcome.WAITING
        ]
    if optimistic:
        # A CallEvent is a tuple in the table's column order, its times the microseconds SQLite
        # stores (monitor.store.instants): its row is (source,) + event + (caller key,), made in C.
        source, keyed = (ctx.source,), GOT_THROUGH
        inserts = [
            source + event + ((got_through(event) if event[7] in keyed else None),) for event in new
        ]
    else:
        inserts = [_call_row(ctx.source, event) for event in new]
    finished = [_call_row(ctx.source, event) for event in ending]
    for row in finished:
        conn.execute(
            update(CALLS)
            .where(
                CALLS.c.source == ctx.source,
                CALLS.c.external_id == row[1],
                CALLS.c.outcome == CallOutcome.WAITING.value,
            )
            .values(dict(zip(CALL_COLUMNS, row, strict=True)))
        )
    if optimistic:
        inserts = _insert_new_calls(conn, inserts)
    else:
        insert_rows(conn, CALLS, CALL_COLUMNS, inserts, ignore_conflicts=["source", "external_id"])
    # (source, queue, outcome, wait, short abandon) of each: tally_calls leaves out the waiting.
    counted = map(itemgetter(0, 2, 8, 6, 10), inserts + finished)
    delta.update(tally_calls(counted, ctx.layout, ctx.all_targets))
    through = {row[-1] for row in inserts if row[-1] is not None}
    through.update(row[-1] for row in finished if row[-1] is not None)
    return len(inserts) + len(finished), through


def _insert_new_calls(conn: Connection, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """SQLite: insert the call `rows` (ON CONFLICT DO NOTHING) and return those it stored.

    A file read again holds calls stored before. When the row count says every row was new
    (an import, a poll of what is new), that is all; otherwise the new ones are those with an
    id above the largest before the insert: SQLite gives a new row the largest id + 1, and
    nothing else writes during this transaction."""
    if not rows:
        return rows
    before = conn.execute(_LARGEST_CALL_ID).scalar() or 0
    keys = ["source", "external_id"]
    # Its times are the integers SQLite stores, its flags bools (ints): nothing to convert.
    stored = insert_rows(conn, CALLS, CALL_COLUMNS, rows, ignore_conflicts=keys, as_stored=True)
    if stored == len(rows):
        return rows
    new = set(conn.execute(_CALLS_AFTER, {"after": before}).scalars())
    return [row for row in rows if row[1] in new]


_STORED_WAITING = select(CALLS.c.external_id, CALLS.c.outcome).where(
    WAITING_CALL, CALLS.c.source == bindparam("source")
)
_LARGEST_CALL_ID = select(func.max(CALLS.c.id))
_CALLS_AFTER = select(CALLS.c.external_id).where(CALLS.c.id > bindparam("after"))

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
    "short_abandon",
    "agent",
    "ended_by",  # the last field of a CallEvent
    "caller_key",
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
    "refers",
    "agent",
    "left_out",
)
INQUIRY_COLUMNS = ("source", *MEASURED, "verdict")
# Places in derive_values' tuples.
_OPENED_BY, _STATUS, _BREACHED = (MEASURED.index(c) for c in ("opened_by", "status", "breached"))
# The columns of an inquiry row that its tallies depend on, as tally_inquiries takes them.
_inquiry_tallied = itemgetter(*(INQUIRY_COLUMNS.index(c) for c in INQUIRY_TALLIED))


def _call_row(source: str, event: CallEvent) -> tuple[Any, ...]:
    """The row of a call with its times as datetimes, for SQLAlchemy's own path."""
    return (
        source,
        event.external_id,
        event.queue,
        event.entered_at,
        event.answered_at,
        event.left_at,
        event.wait_seconds,
        event.talk_seconds,
        str(event.outcome),
        event.caller,
        event.short_abandon,
        event.agent,
        event.ended_by,
        got_through(event),
    )
