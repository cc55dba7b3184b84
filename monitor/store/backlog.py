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
