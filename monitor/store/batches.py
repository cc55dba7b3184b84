"""One batch into the store: its messages and calls, the inquiries they change, the tallies.

`store_batch` runs inside the caller's transaction (monitor.store.ingest adds the cursor and
commits): new messages and calls are inserted (ON CONFLICT DO NOTHING: a batch read twice adds
nothing), a stored *waiting* call is replaced by its final state, the inquiries of every
conversation the new messages touch are rebuilt (here and, for callbacks, in other phone sources),
and the tallies move by exactly what the changed rows contribute, in one upsert.

This is the hot path of an import (a million-line queue_log is ~200,000 calls), so the rows go
to the database as tuples (`monitor.store.bulk`) and the statements run for every batch are made
once. An import on SQLite goes further (`prepare`, run in the reading process): a missed call's
callback request crosses as its message row, and a new caller's inquiry as its row, so that such
a request costs the storing process an insert, not a message object and a pairing; a repeat
caller whose new calls come after all stored of the number is paired on from the stored
inquiries (`_continue_callbacks`) instead of from every call the number ever made. Tests hold
both equal to the general path (tests/store/test_repeat_callers.py).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from operator import is_, itemgetter
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, bindparam, delete, func, select, update

from connectors.base import Batch
from monitor.config import ResolvedTargets, Settings, SourceSettings, channel_of
from monitor.measure.calendars import BusinessCalendar
from monitor.measure.events import (
    CALLBACK_PREFIX,
    GOT_THROUGH,
    GOT_THROUGH_PREFIX,
    CallEvent,
    CallOutcome,
    Channel,
    Event,
    MessageEvent,
    MessageKind,
    Side,
    answer_time,
    callback_conversation,
    from_micros,
    got_through,
    micros,
)
from monitor.measure.inquiries import MEASURED, derive_values, due_at, verdict_of
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


@dataclasses.dataclass(frozen=True)
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


def store_batch(
    conn: Connection,
    ctx: Measuring,
    events: Sequence[object],
    prepared: Prepared | None = None,
) -> tuple[int, int]:
    """Store one batch's events; return (new messages, new or finished calls). `prepared` is
    what `prepare` worked out from the batch in the reading process (its callback requests are
    then there, not among `events`); on SQLite only."""
    if prepared is not None and conn.dialect.name != "sqlite":
        raise ValueError("prepared batches hold rows as SQLite stores them")
    messages = [e for e in events if isinstance(e, MessageEvent)]
    # Queue names become bounded labels where calls are stored (monitor.store.queue_labels).
    read = [e for e in events if isinstance(e, CallEvent)]
    calls = ctx.queues.apply(conn, read)
    delta: TallyCounter = Counter()  # the batch's tally changes, stored in one statement
    # Calls first: a caller who got through (an answered call, kept with its caller's callback
    # key) answers their callback request, in any phone source, when it is measured below.
    before = conn.execute(_LARGEST_IDS).one() if prepared is not None else None
    # The calls as read (queue names that are their labels: `prepare` counted them so).
    as_read = all(map(is_, calls, read))
    stored, through, new_calls = _store_calls(conn, ctx, calls, delta, prepared, as_read=as_read)
    # E-mails find their conversation through the links of earlier messages (monitor.store.threads);
    # a merge of two threads moves stored messages, so both are measured again.
    placed = threads.resolve(conn, ctx.source, messages)
    inserted, known, new = _store_messages(conn, ctx, messages, placed)
    opened: list[tuple[Any, ...]] = []
    requested = 0
    if prepared is not None and prepared.requests:
        requested, requesters, opened = _store_requests(conn, ctx, prepared, delta)
        inserted += requested
        known |= requesters
    known |= placed.regrouped - new.keys()
    known |= _waiting_for_callbacks(conn, through)
    rebuilt = known
    if before is not None and prepared is not None and new_calls is not None:
        # Callers seen before whose new calls all come after what is stored of their number:
        # their pairing goes on from their stored inquiries (_continue_callbacks).
        handled = (
            {e.conversation for e in messages}
            | set(placed.conversations.values())
            | placed.regrouped
        )
        if requested == len(prepared.requests):
            rebuilt = known - _continue_callbacks(
                conn, ctx, prepared, new_calls, known - handled, before, delta
            )
    _rebuild_inquiries(conn, ctx, rebuilt, new, delta, calls)
    # The requests' new conversations: their inquiries as the reading process made them.
    insert_rows(conn, INQUIRIES, INQUIRY_COLUMNS, opened, as_stored=True)
    _rederive_callback_peers(conn, ctx, known, delta)
    apply_tallies(conn, delta)
    return inserted, stored


@dataclasses.dataclass(frozen=True, slots=True)
class Prepared:
    """What the reading process works out from a batch before it crosses (`prepare`), so that
    the storing process, the import's critical path, does little more than SQLite's inserts:

    - `requests`: the callback requests of missed calls (customer-side messages of a `tel:`
      conversation that name a call of the batch), as message rows in SQLite's values;
    - `openers`: the inquiry each of their conversations opens when it is new to the store,
      as rows in SQLite's values (a missed caller asks for a callback at their first missed
      call of the batch that is not a short abandon), and `opener_tallies` what they all add;
    - `short`: the requests of short abandons, which open nothing.

    A conversation stored before is measured again from the store, as any other."""

    requests: list[tuple[Any, ...]]
    openers: dict[str, tuple[Any, ...]]
    opener_tallies: TallyCounter
    # The requests of short abandons, which open nothing (when `short_abandon` is on).
    short: frozenset[str]
    # The caller key (`got_through`) of each call of the batch, in the batch's order, and what
    # the calls add to the tallies with their queues as read (`tally_calls`): what storing
    # them costs the storing process, the import's critical path, in Python. It takes them
    # when every call of the batch is new and its queue names are their labels, and works
    # them out itself otherwise (empty: none made).
    caller_keys: Sequence[str | None] = ()
    call_tallies: TallyCounter = dataclasses.field(default_factory=Counter)


@dataclasses.dataclass(frozen=True, slots=True)
class PreparedBatch(Batch):
    """A batch with what `prepare` worked out from it (its callback requests are there, not
    among its events)."""

    prepared: Prepared | None = None


def prepare(ctx: Measuring, events: Sequence[Event]) -> tuple[list[Event], Prepared]:
    """The events left to store as events, and what the storing process needs of the rest
    (`Prepared`). Pure: it reads no store, so it runs in the reading process."""
    calls = [c for c in events if isinstance(c, CallEvent)]
    latest = {c[0]: c for c in calls}  # a call's last state in the batch (external id first)
    by_conversation: dict[str, list[MessageEvent]] = defaultdict(list)
    if len(calls) < len(events):
        for e in events:
            if isinstance(e, MessageEvent):
                by_conversation[e.conversation].append(e)
    covered = {
        conversation
        for conversation, messages in by_conversation.items()
        if all(_is_request(m, latest) for m in messages)
    }
    # An id also borne by a message left to the general path: which of them is stored is
    # its matter (the first met), so the conversation goes there too.
    others = {m.external_id for c, ms in by_conversation.items() if c not in covered for m in ms}
    covered -= {c for c in covered if any(m.external_id in others for m in by_conversation[c])}
    # A short abandon asks for no callback when `short_abandon` is on (as
    # _leave_out_short_abandons: off, the sources' own short abandons asked for none).
    leave_out = ctx.targets.short_abandon > timedelta(0)
    rest = [e for e in events if not isinstance(e, MessageEvent) or e.conversation not in covered]
    # Rows in SQLite's values: flags as the 0 and 1 it stores, which the sqlite3 module binds
    # as they are (a bool it first looks up an adapter for, in the storing process).
    requests: list[tuple[Any, ...]] = []
    openers: dict[str, tuple[Any, ...]] = {}
    seen: set[str] = set()
    short: set[str] = set()
    for e in events:
        if not isinstance(e, MessageEvent) or e.conversation not in covered:
            continue
        if e.external_id in seen:
            continue  # the first of duplicate ids is stored, as _store_messages does
        seen.add(e.external_id)
        conversation = e.conversation
        at = micros(e.at)
        requests.append(
            (ctx.source, e.external_id, conversation, at, Side.CUSTOMER.value)
            + ("message", 0, 0, str(e.channel) if e.channel else ctx.channel)
            + (e.customer, e.subject, e.refers[0], e.agent, e.left_out)
        )
        call = latest[e.refers[0]]
        if leave_out and is_short_abandon(
            call.outcome, call.wait_seconds, call.short_abandon, ctx.targets
        ):
            short.add(e.external_id)
            continue  # no callback owed: it opens nothing (as _leave_out_short_abandons)
        first = openers.get(conversation)
        if first is not None and first[5] <= at:
            continue  # the earliest opens (the first stored of equal times)
        due = due_at(e.at, ctx.targets, ctx.calendar)
        openers[conversation] = (
            (ctx.source, conversation, requests[-1][8], "first", "open", at, e.external_id)
            + (None, None, None, None, None if due is None else micros(due), 0, 0)
            + (e.customer, e.subject, None, None, None)
        )
    opener_tallies = tally_inquiries(map(_inquiry_tallied, openers.values()), ctx.layout)
    caller_keys: list[str | None] = []
    call_tallies: TallyCounter = Counter()
    if len(latest) == len(calls):  # no call twice: each is stored as it is here, or not at all
        keyed, key_of = GOT_THROUGH, callback_conversation
        caller_keys = [(key_of(c[8]) if c[7] in keyed else None) for c in calls]
        # (source, queue, outcome, wait, short abandon) of each, as _store_calls counts them.
        counted = ((ctx.source, c[1], c[7], c[5], c[9]) for c in calls)
        call_tallies = tally_calls(counted, ctx.layout, ctx.all_targets)
    prepared = Prepared(
        requests, openers, opener_tallies, frozenset(short), caller_keys, call_tallies
    )
    return rest, prepared


def _is_request(message: MessageEvent, calls: Mapping[str, CallEvent]) -> bool:
    """A missed call's callback request (callback_request), of a call at hand: a plain
    customer-side message of a `tel:` conversation naming that call."""
    return (
        message.side is Side.CUSTOMER
        and message.kind is MessageKind.MESSAGE
        and not message.automatic
        and not message.internal
        and message.thread is None
        and message.conversation.startswith(CALLBACK_PREFIX)
        and len(message.refers) == 1
        and message.refers[0] in calls
    )


def _store_requests(
    conn: Connection, ctx: Measuring, prepared: Prepared, delta: TallyCounter
) -> tuple[int, set[str], list[tuple[Any, ...]]]:
    """Insert the prepared callback requests. Return how many were new, their conversations
    stored before (measured again from the store, with the rest of the batch's), and the
    inquiry rows of the new ones, whose tallies are added to `delta`."""
    touched = {row[2] for row in prepared.requests}
    known = _stored_before(conn, ctx, touched)
    keys = ["source", "external_id"]
    rows = prepared.requests
    inserted = insert_rows(
        conn, MESSAGES, MESSAGE_COLUMNS, rows, ignore_conflicts=keys, as_stored=True
    )
    openers = prepared.openers
    delta.update(prepared.opener_tallies)
    if not known:
        return inserted, known, list(openers.values())
    # Stored before: rebuilt from the store instead; what their openers counted is taken back.
    again = [openers[c] for c in known if c in openers]
    delta.subtract(tally_inquiries(map(_inquiry_tallied, again), ctx.layout))
    return inserted, known, [row for c, row in openers.items() if c not in known]


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
        found.update(conn.execute(waiting, {"values": part}).scalars().all())
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
    # Each look-up only for those the ones before did not find (a repeat caller's conversation
    # is found among the messages), its rows fetched at once.
    for part in value_parts(conn, sorted(conversations)):
        found.update(conn.execute(in_messages, {"values": part}).scalars().all())
    rest = sorted(conversations - found)
    for part in value_parts(conn, rest):
        params = {"values": part, "source": ctx.source}
        found.update(conn.execute(in_inquiries, params).scalars().all())
    callbacks = sorted(c for c in conversations - found if c.startswith(CALLBACK_PREFIX))
    for part in value_parts(conn, callbacks):
        found.update(conn.execute(in_calls, {"values": part}).scalars().all())
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
    conn: Connection,
    ctx: Measuring,
    events: list[CallEvent],
    delta: TallyCounter,
    prepared: Prepared | None = None,
    *,
    as_read: bool = False,
) -> tuple[int, set[str], list[tuple[Any, ...]] | None]:
    """Insert new calls; replace a stored *waiting* call by its final state. A finished call
    never changes again, so re-reading a log cannot count it twice. Return how many were
    stored, the callback keys of those answered (their callers got through): the call's
    `caller_key`, indexed, where a callback request of the number finds it; and, for a prepared
    batch whose every call was new, their rows as stored (else None)."""
    if not events:
        return 0, set(), []
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
    # What `prepare` made of these very calls (one per call, none twice), if anything.
    whole = prepared is not None and len(prepared.caller_keys) == len(events) == len(latest)
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
        # The caller key is got_through's, its outcome test made here (by position: an
        # attribute of a CallEvent is a Python property) and the number's key made at once.
        source, keyed, key_of = (ctx.source,), GOT_THROUGH, callback_conversation
        if whole and not stored and prepared is not None:  # the keys `prepare` made
            keys = prepared.caller_keys
            inserts = [source + event + (key,) for event, key in zip(new, keys, strict=True)]
        else:
            inserts = [
                source + event + ((key_of(event[8]) if event[7] in keyed else None),)
                for event in new
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
        every = len(inserts)
        inserts = _insert_new_calls(conn, inserts)
        unchanged = prepared is not None and not stored and len(inserts) == every
    else:
        insert_rows(conn, CALLS, CALL_COLUMNS, inserts, ignore_conflicts=["source", "external_id"])
        unchanged = False
    if unchanged and whole and as_read and prepared is not None:
        # Every call of the batch stored as `prepare` counted it (none twice, none relabelled).
        delta.update(prepared.call_tallies)
    else:
        # (source, queue, outcome, wait, short abandon) of each: tally_calls leaves out the waiting.
        counted = map(itemgetter(0, 2, 8, 6, 10), inserts + finished)
        delta.update(tally_calls(counted, ctx.layout, ctx.all_targets))
    through = {row[-1] for row in inserts if row[-1] is not None}
    through.update(row[-1] for row in finished if row[-1] is not None)
    return len(inserts) + len(finished), through, (inserts if unchanged else None)


def _continue_callbacks(
    conn: Connection,
    ctx: Measuring,
    prepared: Prepared,
    new_calls: list[tuple[Any, ...]],
    candidates: set[str],
    before: Any,
    delta: TallyCounter,
) -> set[str]:
    """The callback conversations among `candidates` measured here, as pairing them again
    from the store would: those whose new messages (the batch's callback requests, and the
    answers of the batch's calls from their number) all come after everything stored of them
    (any source's messages, any source's answered calls from the number). Their stored
    inquiries are then what pairing gives up to the new ones, and pairing goes on from there:
    the open inquiry, if any, is closed by the first new answer; a new request opens one when
    none is open (a short abandon's opens nothing). A test holds this equal to the rebuild.

    `before` holds the largest message and call ids stored before this batch."""
    callbacks = {c for c in candidates if c.startswith(CALLBACK_PREFIX)}
    if not callbacks:
        return set()
    # The new messages of each: (time, 0 for a request / 1 for an answer, order, row).
    news: dict[str, list[tuple[int, int, int, tuple[Any, ...]]]] = defaultdict(list)
    for order, row in enumerate(prepared.requests):
        if row[2] in callbacks:
            news[row[2]].append((row[3], 0, order, row))
    for order, row in enumerate(new_calls):
        key = row[-1]
        if key in callbacks:
            # answer_time's moment in microseconds: the stored answer time when there is one
            # (nearly every answered call: no datetime made and taken apart again).
            at = row[4]
            if at is None:
                at = micros(answer_time(None, from_micros(row[3]), row[6]))
            news[key].append((at, 1, order, row))
    later = set(news)
    if not later:
        return set()
    message_ids, call_ids = before
    part = json.dumps(sorted(later))
    for conversation, latest in conn.exec_driver_sql(_LATEST_MESSAGES, (message_ids or 0, part)):
        if latest is not None and min(news[conversation])[0] <= latest:
            later.discard(conversation)
    for conversation, latest in conn.exec_driver_sql(_LATEST_ANSWERS, (call_ids or 0, part)):
        if latest is not None and min(news[conversation])[0] <= latest:
            later.discard(conversation)
    if not later:
        return set()
    stored: dict[str, list[Any]] = defaultdict(list)
    for row in select_in(conn, INQUIRIES, {"source": ctx.source}, "conversation", later):
        stored[row["conversation"]].append(row)
    old: list[Any] = []
    rows: list[tuple[Any, ...]] = []
    for conversation in sorted(later):
        inquiries = stored[conversation]
        opened = [r for r in inquiries if r["status"] != "answered"]
        if len(opened) > 1 or (opened and opened[0]["status"] != "open"):
            later.discard(conversation)  # not what pairing plain messages leaves: rebuilt
            continue
        first_open = opened[0] if opened else None
        going = _going_on(ctx, conversation, first_open, len(inquiries), news, prepared.short)
        if going is None:
            continue  # nothing changes
        replaced, made = going
        old.extend(replaced)
        rows.extend(made)
    if old:
        # Read before deleting, unlike _rebuild_inquiries: this runs on SQLite only, after the
        # batch's first insert, so this transaction holds the write lock and no scrape can
        # give one of them a verdict meanwhile.
        ids = json.dumps([r["id"] for r in old])
        conn.exec_driver_sql(_DELETE_INQUIRIES, (ids,))
    insert_rows(conn, INQUIRIES, INQUIRY_COLUMNS, rows)
    added = tally_inquiries(map(_inquiry_tallied, rows), ctx.layout)
    delta.update(difference(added, inquiry_tallies(old, ctx.layout)))
    return later


def _going_on(
    ctx: Measuring,
    conversation: str,
    open_row: Any,
    count: int,
    news: Mapping[str, list[tuple[int, int, int, tuple[Any, ...]]]],
    short: frozenset[str],
) -> tuple[list[Any], list[tuple[Any, ...]]] | None:
    """The pairing of a conversation's new messages after its stored inquiries (`count` of
    them, `open_row` the open one): the old rows it replaces and the rows it makes, or None
    when nothing changes. As _plain_values: the first customer message opens, the next
    agent message closes."""
    done = count - (1 if open_row is not None else 0)
    # (opened at, opened by, channel, customer, subject, kind) of the open inquiry
    current: tuple[Any, ...] | None = None
    if open_row is not None:
        current = (
            open_row["opened_at"],
            open_row["opened_by"],
            open_row["channel"],
            open_row["customer"],
            open_row["subject"],
            open_row["kind"],
        )
    made: list[tuple[Any, ...]] = []
    changed = False
    for at_us, answer, _, row in sorted(news[conversation]):
        if not answer:
            if current is None and row[1] not in short:
                kind = "followup" if done else "first"
                current = (from_micros(at_us), row[1], row[8], row[9], row[10], kind)
                changed = True
            continue
        if current is None:
            continue  # an answer with nothing open closes nothing
        start, opened_by, channel, customer, subject, kind = current
        closed = from_micros(at_us)
        due = due_at(start, ctx.targets, ctx.calendar)
        business = None if ctx.calendar is None else ctx.calendar.business_seconds(start, closed)
        breached = due is not None and closed > due
        made.append(
            (ctx.source, conversation, channel, kind, "answered", start, opened_by, closed)
            + (None, (closed - start).total_seconds(), business, due, breached, False)
            + (customer, subject, f"{GOT_THROUGH_PREFIX}{row[0]}/{row[1]}", row[11])
            + (_kept_verdict(open_row, opened_by) or verdict_of("answered", breached),)
        )
        done += 1
        current = None
        changed = True
    if not changed:
        return None
    if current is not None:
        start, opened_by, channel, customer, subject, kind = current
        made.append(
            (ctx.source, conversation, channel, kind, "open", start, opened_by)
            + (None, None, None, None, due_at(start, ctx.targets, ctx.calendar), False, False)
            + (customer, subject, None, None, _kept_verdict(open_row, opened_by))
        )
    return ([open_row] if open_row is not None else []), made


def _kept_verdict(open_row: Any, opened_by: str) -> str | None:
    """The verdict a scrape gave the open inquiry (monitor.store.verdicts), kept by the row
    that measures it again, as _rebuild_inquiries keeps it."""
    if open_row is not None and open_row["opened_by"] == opened_by:
        return cast(str | None, open_row["verdict"])
    return None


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
# The latest moment stored of some callback conversations, in messages of any source and in
# answered calls from their numbers (their answer time, rounded up: never earlier than
# answer_time makes it), among those stored before a batch (ids up to the largest then).
_LATEST_MESSAGES = (
    "SELECT conversation, max(at) FROM message WHERE id <= ? "
    "AND conversation IN (SELECT value FROM json_each(?)) GROUP BY conversation"
)
_LATEST_ANSWERS = (
    "SELECT caller_key, max(coalesce(answered_at, "
    "entered_at + CAST(coalesce(wait_seconds, 0) * 1000000 AS INTEGER) + 1)) "
    "FROM call WHERE caller_key IS NOT NULL AND id <= ? "
    "AND caller_key IN (SELECT value FROM json_each(?)) GROUP BY caller_key"
)
_DELETE_INQUIRIES = "DELETE FROM inquiry WHERE id IN (SELECT value FROM json_each(?))"
# The largest message and call ids before a batch: what was stored before it.
_LARGEST_IDS = select(
    select(func.max(MESSAGES.c.id)).scalar_subquery(),
    select(func.max(CALLS.c.id)).scalar_subquery(),
)
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
