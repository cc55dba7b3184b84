"""The open backlog at a glance, at the cost of what is shown: never by reading the backlog.

A site can carry tens of thousands of open inquiries (unreturned callbacks, stale e-mail) for
months. Every report of "open now" (the exporter's gauges, the report's and the digest's
figures, the status page) reads them here, the same way, so their numbers agree:

- how many are open per (source, channel): one tally row each, kept by ingest in the same
  transaction as the inquiries (monitor.store.tallies.OPEN_NOW);
- how many of them are past their due time now: the open count less those not yet due (and
  those never due), counted on `ix_inquiry_open_due`, which holds open inquiries only: the few
  opened within the last reply target, whatever the backlog;
- the oldest open and the next due time: one index seek each;
- the `limit` oldest open inquiries themselves (whom to act on): `limit` index entries per
  (source, channel) (`ix_inquiry_open`), merged.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from monitor.store.schema import INQUIRIES, OPEN_INQUIRY, TALLIES
from monitor.store.tallies import OPEN_NOW, parse_labels

Group = tuple[str, str]  # (source, channel)


@dataclass(frozen=True)
class OpenCounts:
    """The inquiries open now of one source and channel."""

    source: str
    channel: str
    count: int
    breached: int  # past their due time now
    oldest_opened_at: datetime | None
    next_due_at: datetime | None  # the earliest due time still ahead (None: none)

    def oldest_age_seconds(self, now: datetime) -> float | None:
        if self.oldest_opened_at is None:
            return None
        return (now - self.oldest_opened_at).total_seconds()


Backlog = dict[Group, OpenCounts]


def open_counts(conn: Connection, now: datetime, sources: Collection[str] | None = None) -> Backlog:
    """The open inquiries of every (source, channel) with any open now (of `sources` only,
    when given), as seen at `now`."""
    c = INQUIRIES.c
    found: Backlog = {}
    counted = conn.execute(
        select(TALLIES.c.source, TALLIES.c.labels, TALLIES.c.value).where(
            TALLIES.c.metric == OPEN_NOW, TALLIES.c.le == ""
        )
    ).all()
    for source, labels, value in sorted(counted):
        count = int(value)
        if count <= 0 or (sources is not None and source not in sources):
            continue
        channel = parse_labels(labels).get("channel", "")
        mine = (OPEN_INQUIRY, c.source == source, c.channel == channel)
        ahead, next_due = conn.execute(
            select(func.count(), func.min(c.due_at)).where(*mine, c.due_at >= now)
        ).one()
        never = conn.execute(select(func.count()).where(*mine, c.due_at.is_(None))).scalar_one()
        # The first entry of the index, not min(): SQLite's plan for min() with these terms
        # walks every entry of the group.
        oldest = conn.execute(
            select(c.opened_at).where(*mine).order_by(c.opened_at).limit(1)
        ).scalar()
        found[(source, channel)] = OpenCounts(
            source=source,
            channel=channel,
            count=count,
            breached=max(0, count - int(ahead) - int(never)),
            oldest_opened_at=oldest,
            next_due_at=next_due,
        )
    return found


def oldest_open(
    conn: Connection, groups: Iterable[Group], limit: int, columns: Sequence[Any] = ()
) -> list[Any]:
    """The `limit` oldest open inquiries of each of `groups`, as rows of `columns` (by default
    every column), oldest first (then by source and conversation, as
    monitor.measure.items.oldest_open orders them)."""
    if limit <= 0:
        return []
    c = INQUIRIES.c
    chosen = list(columns) or list(INQUIRIES.c)
    rows: list[Any] = []
    for source, channel in sorted(set(groups)):
        rows.extend(
            conn.execute(
                select(*chosen)
                .where(OPEN_INQUIRY, c.source == source, c.channel == channel)
                .order_by(c.opened_at, c.conversation)
                .limit(limit)
            ).mappings()
        )
    return rows


def totals(backlog: Backlog, source: str) -> tuple[int, int, datetime | None]:
    """A source's open inquiries over its channels: how many, how many past due, the oldest's
    opening."""
    mine = [o for o in backlog.values() if o.source == source]
    oldest = [o.oldest_opened_at for o in mine if o.oldest_opened_at is not None]
    return sum(o.count for o in mine), sum(o.breached for o in mine), min(oldest, default=None)


def open_groups(conn: Connection, sources: Collection[str] | None = None) -> list[Group]:
    """The (source, channel) pairs with any inquiry open now (of `sources` only, when given):
    the open-count tallies, a few rows whatever the backlog."""
    counted = conn.execute(
        select(TALLIES.c.source, TALLIES.c.labels).where(
            TALLIES.c.metric == OPEN_NOW, TALLIES.c.le == "", TALLIES.c.value > 0
        )
    ).all()
    return sorted(
        {
            (source, parse_labels(labels).get("channel", ""))
            for source, labels in counted
            if sources is None or source in sources
        }
    )


def due_count(conn: Connection, group: Group, since: datetime, until: datetime) -> int:
    """How many of a group's open inquiries are due from `since` to `until` (both included):
    entries of `ix_inquiry_open_due` in that range, not the backlog."""
    c = INQUIRIES.c
    found = conn.execute(
        select(func.count()).where(
            OPEN_INQUIRY,
            c.source == group[0],
            c.channel == group[1],
            c.due_at >= since,
            c.due_at <= until,
        )
    ).scalar_one()
    return int(found)


def due_by(
    conn: Connection,
    groups: Iterable[Group],
    until: datetime | None,
    columns: Sequence[Any] = (),
    *,
    inclusive: bool = True,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[Any]:
    """The open inquiries of `groups` due by `until` (before it, when not `inclusive`; any
    time, when None; from `since` on, when given), soonest due first, as rows of `columns` (by
    default every column): a range of `ix_inquiry_open_due`, so what is read is what is
    returned (at most `limit` per group)."""
    c = INQUIRIES.c
    chosen = list(columns) or list(INQUIRIES.c)
    rows: list[Any] = []
    for source, channel in sorted(set(groups)):
        query = (
            select(*chosen)
            .where(
                OPEN_INQUIRY,
                c.source == source,
                c.channel == channel,
                c.due_at.is_not(None) if since is None else c.due_at >= since,
            )
            .order_by(c.due_at)
        )
        if until is not None:
            query = query.where(c.due_at <= until if inclusive else c.due_at < until)
        if limit is not None:
            query = query.limit(limit)
        rows.extend(conn.execute(query).mappings())
    return rows
