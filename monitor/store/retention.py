"""Retention: what is older than `retention` is deleted; the counters keep their totals.

The *horizon* is now minus `retention`. A purge deletes, in short transactions:

- messages and inquiries, conversation by conversation: everything before a *cut* at or before
  the horizon where no inquiry is open (an inquiry still open, or answered after the horizon,
  keeps itself and every later message; so the stored inquiries stay exactly what the kept
  messages derive). Where a conversation keeps later messages, a marker message (no sender, no
  subject) stands for what was cut, so its next inquiry is still a follow-up. Its thread links
  go with the last of a conversation's messages in a source; an e-mail cut from a conversation
  that lives on leaves the link of its id (its stored row was that link);
- calls that left the queue before the horizon (callers still waiting are kept);
- sent or failed deliveries claimed before the horizon (never a digest's claim for a day inside
  it, which stops a second send), with their attempts, and alert states resolved before it.

Kept: the tallies (what the deleted rows counted goes to `purged_tally`, so a recount at start-up
still equals them and no counter goes down), cursors and source health, leases.

Reading a purged row again (a re-import, an IMAP UIDVALIDITY resync) must not store and count it
again: ingest skips events older than the horizon (`recent`) and reports them as skipped.

Two instances may purge at once: on PostgreSQL each transaction takes an advisory lock, and the
tallies are moved by what the DELETE returned, so a row is never retired twice.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, or_, select, text
from sqlalchemy.exc import SQLAlchemyError

from monitor.config import Settings
from monitor.measure.events import CallEvent, Channel, Event, MessageKind, Side, micros
from monitor.store.batches import MESSAGE_COLUMNS
from monitor.store.bulk import insert_rows, select_in
from monitor.store.database import StoreError, chunks, describe, error_line
from monitor.store.schema import (
    ALERT_STATES,
    ATTEMPTS,
    CALLS,
    DELIVERIES,
    INQUIRIES,
    MESSAGES,
    PURGED_TALLIES,
    THREAD_LINKS,
)
from monitor.store.tallies import (
    Layout,
    call_tallies,
    difference,
    gauges,
    inquiry_tallies,
    layout_for,
)
from monitor.store.tallies import apply as apply_tallies

logger = logging.getLogger(__name__)

# Rows of a table looked at per transaction: a first purge of a long history holds SQLite's
# write lock for a fraction of a second at a time, and polls go on in between.
WINDOW = 10_000
TABLES = (
    "message",
    "inquiry",
    "thread_link",
    "call",
    "delivery",
    "delivery_attempt",
    "alert_state",
)
MARKER_PREFIX = "retention:"  # the external id of a marker message: retention:<conversation>
_LOCK = 0x5350_5247  # PostgreSQL advisory lock key of purge transactions
SKIPPED_REASON = "older than retention"


def horizon(now: datetime, settings: Settings) -> datetime | None:
    """Stored events older than this are purged and not stored again; None keeps everything."""
    keep = settings.file.retention
    return None if keep is None else now - keep


def recent(events: Sequence[Event], cutoff: datetime) -> tuple[Sequence[Event], int]:
    """The events not older than `cutoff`, and how many were not. A call's time is when it left
    the queue (when it entered, while waiting), so the end of a call stored as waiting is kept."""
    cutoff_us = micros(cutoff)  # a call's times are microseconds: compared with no datetime made
    kept = [
        e
        for e in events
        if (
            (e.entered_us if e.left_us is None else e.left_us) >= cutoff_us
            if isinstance(e, CallEvent)
            else e.at >= cutoff
        )
    ]
    return (events, 0) if len(kept) == len(events) else (kept, len(events) - len(kept))


def purge(
    engine: Engine,
    settings: Settings,
    now: datetime,
    *,
    dry_run: bool = False,
    window: int = WINDOW,
) -> dict[str, int]:
    """Delete what is older than the horizon; the rows deleted per table (with `dry_run`, the
    rows that would be: every step runs and is rolled back). `window`: ids per transaction."""
    counts = dict.fromkeys(TABLES, 0)
    cutoff = horizon(now, settings)
    if cutoff is None:
        return counts
    purger = _Purger(engine, settings, cutoff, dry_run, counts, window)
    purger.conversations()
    purger.calls()
    purger.deliveries()
    purger.alert_states()
    summary = ", ".join(f"{n} {table}" for table, n in counts.items())
    logger.info(
        "purge before %s%s: %s", cutoff.isoformat(), " (dry run)" if dry_run else "", summary
    )
    return counts


@dataclass
class _Plan:
    """What goes of the conversations of one chunk, deleted together."""

    messages: list[int] = field(default_factory=list)
    inquiries: list[int] = field(default_factory=list)
    links: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    markers: list[tuple[Any, ...]] = field(default_factory=list)
    # (source, key, conversation): the ids of e-mails cut from a conversation that lives on.
    kept_links: list[tuple[str, str, str]] = field(default_factory=list)


class _Purger:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        cutoff: datetime,
        dry_run: bool,
        counts: dict[str, int],
        window: int,
    ) -> None:
        self.engine, self.settings, self.cutoff = engine, settings, cutoff
        self.dry_run, self.counts, self.window = dry_run, counts, window
        self.layout: Layout = layout_for(settings)

    @contextmanager
    def step(self) -> Iterator[Connection]:
        """One transaction: committed, or rolled back in a dry run."""
        try:
            with self.engine.connect() as conn:
                with conn.begin() as trans:
                    if conn.dialect.name == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
                    yield conn
                    if self.dry_run:
                        trans.rollback()
        except SQLAlchemyError as exc:
            raise StoreError(f"database {describe(self.engine)}: {error_line(exc)}") from exc

    def windows(self, table: Any) -> Iterator[tuple[int, int]]:
        """(after, upto] id ranges covering `table` as it is now, WINDOW ids each."""
        with self.engine.connect() as conn:
            top = conn.execute(select(func.max(table.c.id))).scalar() or 0
        for after in range(0, top, self.window):
            yield after, after + self.window

    # Messages and inquiries

    def conversations(self) -> None:
        for after, upto in self.windows(MESSAGES):
            with self.step() as conn:
                window = (MESSAGES.c.id > after, MESSAGES.c.id <= upto)
                query = select(MESSAGES.c.conversation).where(*window, MESSAGES.c.at < self.cutoff)
                keys = sorted(set(conn.execute(query.distinct()).scalars()))
                for part in chunks(keys):
                    self.cut(conn, part, after, upto)

    def cut(self, conn: Connection, keys: Sequence[str], after: int, upto: int) -> None:
        fields = ["id", "source", "conversation", "at", "kind", "channel", "external_id"]
        messages: dict[str, list[Any]] = defaultdict(list)
        for row in select_in(conn, MESSAGES, {}, "conversation", keys, fields):
            messages[row["conversation"]].append(row)
        sources: dict[str, set[str]] = defaultdict(set)
        for key, rows in messages.items():
            for row in rows:
                sources[row["source"]].add(key)
        inquiries: dict[str, list[Any]] = defaultdict(list)
        for source, among in sorted(sources.items()):
            for row in select_in(conn, INQUIRIES, {"source": source}, "conversation", among):
                inquiries[row["conversation"]].append(row)
        plan = _Plan()
        for key in keys:
            rows = messages[key]
            old = [m["id"] for m in rows if m["at"] < self.cutoff]
            # A conversation is looked at in the window of its first old message only, so a dry
            # run (where nothing goes) counts it once.
            if old and after < min(old) <= upto:
                self.plan(plan, key, rows, inquiries[key])
        self.carry_out(conn, plan)

    def plan(self, plan: _Plan, key: str, messages: list[Any], inquiries: list[Any]) -> None:
        """Add what goes of one conversation to `plan`."""
        cut = self.cut_at(inquiries)
        gone = [m for m in messages if m["at"] < cut]
        retired = [i["id"] for i in inquiries if i["opened_at"] < cut]
        if not retired and all(m["kind"] == MessageKind.EARLIER for m in gone):
            return  # nothing but the marker of an earlier purge before the cut
        plan.messages += [m["id"] for m in gone]
        plan.inquiries += retired
        had_earlier = {i["source"] for i in inquiries if i["opened_at"] < cut}
        had_earlier |= {m["source"] for m in gone if m["kind"] == MessageKind.EARLIER}
        for source in sorted({m["source"] for m in messages}):
            kept = [m for m in messages if m["source"] == source and m["at"] >= cut]
            if not kept:
                plan.links[source].append(key)
                continue
            # A stored e-mail is the thread link of its own id (monitor.store.threads): a late
            # reply naming one cut here still finds the conversation by the link left instead.
            plan.kept_links += [
                (source, m["external_id"], key)
                for m in gone
                if m["source"] == source
                and m["channel"] == Channel.EMAIL
                and m["kind"] != MessageKind.EARLIER
            ]
            if source in had_earlier:
                channel = next(m["channel"] for m in messages if m["source"] == source)
                plan.markers.append(_marker(source, key, cut, channel))

    def carry_out(self, conn: Connection, plan: _Plan) -> None:
        for part in chunks(plan.messages):
            deleted = conn.execute(
                delete(MESSAGES).where(MESSAGES.c.id.in_(part)).returning(MESSAGES.c.external_id)
            ).scalars()
            self.counts["message"] += sum(1 for e in deleted if not e.startswith(MARKER_PREFIX))
        for part in chunks(plan.inquiries):
            rows = conn.execute(
                delete(INQUIRIES).where(INQUIRIES.c.id.in_(part)).returning(*INQUIRIES.c)
            ).mappings()
            removed = list(rows)
            self.counts["inquiry"] += len(removed)
            kept, gauge = gauges(inquiry_tallies(removed, self.layout))
            apply_tallies(conn, kept, PURGED_TALLIES)
            apply_tallies(conn, difference(Counter(), gauge))  # no longer open: not counted
        for source, keys in sorted(plan.links.items()):
            for part in chunks(keys):
                links = conn.execute(
                    delete(THREAD_LINKS).where(
                        THREAD_LINKS.c.source == source, THREAD_LINKS.c.conversation.in_(part)
                    )
                )
                self.counts["thread_link"] += max(0, links.rowcount)
        unique = ["source", "external_id"]
        insert_rows(conn, MESSAGES, MESSAGE_COLUMNS, plan.markers, ignore_conflicts=unique)
        linked = ("source", "key", "conversation")
        insert_rows(conn, THREAD_LINKS, linked, plan.kept_links, ignore_conflicts=linked)

    def cut_at(self, inquiries: list[Any]) -> datetime:
        """The latest moment at or before the horizon that no inquiry spans: before it, every
        inquiry has ended (answered, missed), so pairing what follows finds the same."""
        cut = self.cutoff
        while True:
            spanning = [
                i["opened_at"]
                for i in inquiries
                if i["opened_at"] < cut and ((i["closed_at"] or i["ended_at"]) or cut) >= cut
            ]
            if not spanning:
                return cut
            cut = min(spanning)

    # Calls

    def calls(self) -> None:
        targets = {s.name: self.settings.targets_for(s) for s in self.settings.sources}
        finished = CALLS.c.outcome != "waiting"
        old = or_(
            and_(CALLS.c.left_at.is_not(None), CALLS.c.left_at < self.cutoff),
            and_(CALLS.c.left_at.is_(None), CALLS.c.entered_at < self.cutoff),
        )
        for after, upto in self.windows(CALLS):
            with self.step() as conn:
                rows = conn.execute(
                    delete(CALLS)
                    .where(CALLS.c.id > after, CALLS.c.id <= upto, finished, old)
                    .returning(
                        CALLS.c.source,
                        CALLS.c.queue,
                        CALLS.c.outcome,
                        CALLS.c.wait_seconds,
                        CALLS.c.short_abandon,
                    )
                ).mappings()
                removed = list(rows)
                self.counts["call"] += len(removed)
                apply_tallies(conn, call_tallies(removed, self.layout, targets), PURGED_TALLIES)

    # Deliveries and alert states

    def deliveries(self) -> None:
        first_day = self.cutoff.astimezone(self.settings.timezone).date()
        for after, upto in self.windows(DELIVERIES):
            with self.step() as conn:
                query = select(DELIVERIES.c.id, DELIVERIES.c.key, DELIVERIES.c.purpose).where(
                    DELIVERIES.c.id > after,
                    DELIVERIES.c.id <= upto,
                    DELIVERIES.c.status != "pending",
                    DELIVERIES.c.claimed_at < self.cutoff,
                )
                ids = [r.id for r in conn.execute(query) if _expired(r.key, r.purpose, first_day)]
                for part in chunks(ids):
                    attempts = conn.execute(
                        delete(ATTEMPTS).where(ATTEMPTS.c.delivery_id.in_(part))
                    )
                    self.counts["delivery_attempt"] += max(0, attempts.rowcount)
                    done = conn.execute(delete(DELIVERIES).where(DELIVERIES.c.id.in_(part)))
                    self.counts["delivery"] += max(0, done.rowcount)

    def alert_states(self) -> None:
        told = ALERT_STATES.c.last_notified_at
        with self.step() as conn:
            done = conn.execute(
                delete(ALERT_STATES).where(
                    ALERT_STATES.c.state == "ok",
                    ALERT_STATES.c.resolved_at < self.cutoff,
                    # not while the end of a told alert is still to be told
                    or_(
                        told.is_(None),
                        ALERT_STATES.c.started_at.is_(None),
                        told < ALERT_STATES.c.started_at,
                        told >= ALERT_STATES.c.resolved_at,
                    ),
                )
            )
            self.counts["alert_state"] += max(0, done.rowcount)


def _expired(key: str, purpose: str, first_day: date) -> bool:
    """A digest's claim stops a second send of its day: it goes only with days before the
    horizon's. Other deliveries are claimed for one moment (their keys hold the time)."""
    if purpose != "digest":
        return True
    try:
        return date.fromisoformat(key.split(":", 1)[1]) < first_day
    except (IndexError, ValueError):
        return False


def _marker(source: str, conversation: str, cut: datetime, channel: str) -> tuple[Any, ...]:
    # Customer side: callbacks read the agent side of other sources, so others never see it.
    return (
        source,
        MARKER_PREFIX + conversation,
        conversation,
        cut - timedelta(microseconds=1),  # before every kept message
        Side.CUSTOMER.value,
        MessageKind.EARLIER.value,
        True,
        True,
        channel,
        None,  # no customer
        None,  # no subject
        None,  # refers to nothing
        None,  # nobody wrote it
        "earlier messages purged",  # why it never pairs
    )
