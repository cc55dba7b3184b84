"""E-mail threading at ingest: which conversation each message belongs to.

Connectors only extract and never see the database, yet threading needs every message seen
before: a reply read from Sent in this poll belongs with a question read from INBOX last week.
So an e-mail event does not name its conversation outright; it carries a `Thread`
(monitor.measure.events): its own Message-ID, the ids it references, a Gmail thread id, and a hint
(customer + normalised subject). This module, run by ingest inside the batch's transaction,
keeps a `thread_link` table from those keys to conversations and resolves each event:

- Messages sharing any key are one conversation: the union of Message-ID, In-Reply-To,
  References and X-GM-THRID links, whatever order the messages arrive in. A message that
  links two conversations known so far merges them: the messages of the one merged away are
  moved to the survivor, its links re-pointed, and both are returned so that ingest re-derives
  their inquiries (and moves the tallies by the difference) in the same transaction.
- A message with no references and no thread id (a reply typed as a new mail, a webmail that
  drops headers) joins a conversation holding a message with the same hint within the
  thread window of it. Each (hint, conversation) keeps the span of its messages, so the test
  is "within the window of the span": single-linkage in time, the same whatever the order.
- The same Message-ID read twice (INBOX and Sent, a resynced folder) is one row: ids are the
  store's unique key, and its links lead to the same conversation.
- A stored message is the link of its own id: its row (source, external id, conversation) says
  where that id belongs, and a merge moves it with the conversation. So a `thread_link` row is
  written only for ids no stored message has (what a reply references before, or without, the
  message itself, a Gmail thread id) and for hints: a question and its reply cost one link row
  (their hint), not three. Retention leaves the link of a message it cuts from a conversation
  that lives on (monitor.store.retention).

Everything is keyed by source, committed with the batch and its cursor, so a poll interrupted
anywhere, a restart or a re-read changes nothing. Events without a `Thread` (chat, phone) pass
through untouched and cost no query.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, delete, update

from monitor.measure.events import HINT_PREFIX, MessageEvent, Thread
from monitor.store.bulk import insert_rows, select_in
from monitor.store.database import chunks
from monitor.store.schema import MESSAGES, THREAD_LINKS

Span = tuple[datetime, datetime]
# A link an event asks for: (key, conversation, the event's time for a hint, else None).
Wanted = tuple[str, str, datetime | None]
# A threaded event, its thread and its keys (`_keys`).
Keyed = tuple[MessageEvent, Thread, tuple[str, ...]]


class _Groups:
    """Union-find over conversation names. A merge keeps a name already stored (fewer rows to
    move), then the smallest, so the survivor does not depend on the order of the merge."""

    def __init__(self, stored: set[str]) -> None:
        self.stored = stored
        self.parent: dict[str, str] = {}

    def find(self, name: str) -> str:
        root = name
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while name != root:  # path compression
            self.parent[name], name = root, self.parent[name]
        return root

    def join(self, names: Iterable[str]) -> str:
        roots = {self.find(n) for n in names}
        survivor = min(roots, key=lambda n: (n not in self.stored, n))
        for root in roots:
            if root != survivor:
                self.parent[root] = survivor
        return survivor

    def merged(self) -> set[str]:
        return {name for name in self.parent if self.find(name) != name}


class Placed(NamedTuple):
    """What `resolve` found for a batch's messages."""

    # The conversation of each threaded message, by external id.
    conversations: dict[str, str]
    # The stored conversations whose messages changed by a merge (merged away, and survivors).
    regrouped: set[str]
    # The external ids of the threaded messages, looked up among the source's stored messages,
    # and those of them found there: the caller need not ask again which are stored already.
    checked: set[str]
    stored: set[str]


def resolve(conn: Connection, source: str, events: Sequence[MessageEvent]) -> Placed:
    """Where each threaded event belongs, and what a merge changed (`Placed`)."""
    # Each threaded event with its thread and keys, taken once: the loops below read them for
    # every message.
    keyed: list[Keyed] = [(e, t, _keys(e, t)) for e in events if (t := e.thread) is not None]
    if not keyed:
        return Placed({}, set(), set(), set())
    threaded = [e for e, _, _ in keyed]
    ids = set(chain.from_iterable(keys for _, _, keys in keyed))
    hints = {thread.hint for _, thread, _ in keyed if thread.hint}
    rows = select_in(conn, THREAD_LINKS, {"source": source}, "key", ids | hints)
    # A stored message is the link of its own id: no link row is written for it (`_write_links`).
    own = {e.external_id for e in threaded}
    fields = ["external_id", "conversation"]
    stored = select_in(conn, MESSAGES, {"source": source}, "external_id", ids | own, fields)
    groups = _Groups({r["conversation"] for r in rows} | {m["conversation"] for m in stored})
    owner: dict[str, str] = {}  # id key -> a conversation name (find() gives the current one)
    spans: dict[str, dict[str, Span]] = defaultdict(dict)  # hint -> conversation -> span
    for row in rows:
        key, name = row["key"], row["conversation"]
        if key.startswith(HINT_PREFIX):
            span = _span_of(row)
            if span is not None:
                spans[key][name] = span
        elif key in owner:
            groups.join([owner[key], name])
        else:
            owner[key] = name
    for message in stored:
        key, name = message["external_id"], message["conversation"]
        if key not in owner:
            owner[key] = name
        elif owner[key] != name:
            groups.join([owner[key], name])
    found_ids = {m["external_id"] for m in stored}
    messages = found_ids | own  # ids that need no link row (`_write_links`)

    # The hot loop (every message of a batch): names are looked up (`find`) only once
    # something merged, and spans widened inline. The links each event asks for are noted as
    # it is placed (`wanted`: its keys that are no message's id, and its hint), in event
    # order, so that `_write_links` need not go over the events again.
    placed: list[str] = []
    wanted: list[Wanted] = []  # in the order the events ask for them
    setdefault, get = owner.setdefault, owner.get
    for event, thread, keys in keyed:
        found: set[str] = set(map(get, keys))  # type: ignore[arg-type]  # (in C)
        found.discard(None)  # its keys that lead nowhere
        hint, at = thread.hint, event.at
        known = None
        if hint:
            known = spans.get(hint)
            if known is None:
                known = spans[hint] = {}
            elif thread.by_hint:
                window = thread.window
                for name, (first, last) in known.items():
                    if first - window <= at <= last + window:
                        found.add(name)
        if not found:
            name = event.conversation
        elif len(found) == 1:  # one conversation: nothing to merge
            name = found.pop()
            if groups.parent:
                name = groups.find(name)
        else:
            name = groups.join(found)
        for key in keys:
            setdefault(key, name)
            if key not in messages:
                wanted.append((key, name, None))
        if hint and known is not None:
            span = known.get(name)  # `_widen`, inline: this runs for every message
            if span is None:
                known[name] = (at, at)
            elif at < span[0]:
                known[name] = (at, span[1])
            elif at > span[1]:
                known[name] = (span[0], at)
            wanted.append((hint, name, at))
        placed.append(name)

    merged = bool(groups.parent)
    if merged:  # a merge: names found so far may have been merged away since
        placed = list(map(groups.find, placed))
    final = dict(zip((e.external_id for e in threaded), placed, strict=True))
    moved = groups.merged() & groups.stored
    regrouped = moved | {groups.find(n) for n in moved}
    if moved:
        _move_messages(conn, source, moved, groups)
        rows = _with_links_of(conn, source, rows, moved)
    # The batch's messages are stored in their conversations by the caller, in this transaction.
    if merged:  # the names noted in the loop may have been merged away: asked for again
        wanted = _wanted(keyed, placed, messages)
    _write_links(conn, source, rows, wanted, groups)
    return Placed(final, regrouped, own, found_ids & own)


def _wanted(
    keyed: list[Keyed],
    placed: list[str],
    messages: set[str],
) -> list[Wanted]:
    """The links the events ask for, in their order, in their final conversations (`placed`):
    each key that is no message's id (`messages`), and each hint with its event's time."""
    wanted: list[Wanted] = []
    for (event, thread, keys), name in zip(keyed, placed, strict=True):
        wanted.extend((key, name, None) for key in keys if key not in messages)
        if thread.hint:
            wanted.append((thread.hint, name, event.at))
    return wanted


def _keys(event: MessageEvent, thread: Thread) -> tuple[str, ...]:
    keys = thread.keys
    return keys if event.conversation in keys else (*keys, event.conversation)


def _span_of(row: Any) -> Span | None:
    # Only hints keep a span. Stored as aware UTC; naive values from a driver are read as UTC.
    if row["first_at"] is None or row["last_at"] is None:
        return None
    return (_utc(row["first_at"]), _utc(row["last_at"]))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _widen(span: Span | None, at: datetime) -> Span:
    if span is None:
        return (at, at)
    # Compared, not min() and max() of pairs (a tuple and an iteration each, for every hint).
    return (at, span[1]) if at < span[0] else (span[0], at) if at > span[1] else span


def _move_messages(conn: Connection, source: str, moved: set[str], groups: _Groups) -> None:
    targets: dict[str, list[str]] = defaultdict(list)
    for name in sorted(moved):
        targets[groups.find(name)].append(name)
    for target, names in sorted(targets.items()):
        for part in chunks(names):
            conn.execute(
                update(MESSAGES)
                .where(MESSAGES.c.source == source, MESSAGES.c.conversation.in_(part))
                .values(conversation=target)
            )


def _with_links_of(conn: Connection, source: str, rows: list[Any], moved: set[str]) -> list[Any]:
    """`rows` plus every link of the merged-away conversations (their other keys move too)
    and the survivors' links under the same keys (a hint's spans are joined, not doubled)."""
    seen = {r["id"] for r in rows}
    extra = select_in(conn, THREAD_LINKS, {"source": source}, "conversation", moved)
    extra += select_in(conn, THREAD_LINKS, {"source": source}, "key", {r["key"] for r in extra})
    found = list(rows)
    for row in extra:
        if row["id"] not in seen:
            seen.add(row["id"])
            found.append(row)
    return found


def _write_links(
    conn: Connection,
    source: str,
    rows: list[Any],
    wanted: list[Wanted],
    groups: _Groups,
) -> None:
    """Bring the links to their new state with as few writes as possible: a batch read again
    writes nothing. Id keys carry no span; hints carry the span of their messages. `wanted`:
    the links the events ask for, in their order, in their final conversations (`_wanted`:
    the id of a message stored in the source needs no link, its row leads to its
    conversation and moves with it)."""
    desired: dict[tuple[str, str], Span | None] = {}
    existing: dict[tuple[str, str], Any] = {}
    deletes: list[int] = []
    for row in rows:
        name = groups.find(row["conversation"])
        pair = (row["key"], name)
        desired[pair] = _merge(desired.get(pair), _span_of(row))
        if name == row["conversation"]:
            existing[pair] = row
        else:
            deletes.append(row["id"])
    # Id keys first take no span; then each hint's span widens by its events' times.
    setdefault = desired.setdefault
    for key, name, _ in wanted:
        setdefault((key, name), None)
    for key, name, at in wanted:
        if at is not None:
            pair = (key, name)
            desired[pair] = _widen(desired[pair], at)

    inserts: list[tuple[str, str, str]] = []  # id keys: no span to convert, cheaper to insert
    spanned: list[tuple[str, str, str, datetime, datetime]] = []
    updates: list[dict[str, Any]] = []
    for (key, name), span in desired.items():
        row = existing.get((key, name))
        if row is None:
            if span is None:
                inserts.append((source, key, name))
            else:
                spanned.append((source, key, name, span[0], span[1]))
        elif _span_of(row) != span:
            first, last = span if span is not None else (None, None)
            updates.append({"link_id": row["id"], "first": first, "last": last})
    for part in chunks(deletes):
        conn.execute(delete(THREAD_LINKS).where(THREAD_LINKS.c.id.in_(part)))
    if updates:
        conn.execute(
            update(THREAD_LINKS)
            .where(THREAD_LINKS.c.id == bindparam("link_id"))
            .values(first_at=bindparam("first"), last_at=bindparam("last")),
            updates,
        )
    unique = ("source", "key", "conversation")
    insert_rows(conn, THREAD_LINKS, unique, inserts, ignore_conflicts=unique)
    spans = (*unique, "first_at", "last_at")
    insert_rows(conn, THREAD_LINKS, spans, spanned, ignore_conflicts=unique)


def _merge(one: Span | None, other: Span | None) -> Span | None:
    if one is None or other is None:
        return one or other
    return (min(one[0], other[0]), max(one[1], other[1]))
