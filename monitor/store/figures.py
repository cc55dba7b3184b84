"""Figures per source for a period, read from the store and summarized by the metrics engine.

This is the one place the report, the digest and the alerter get their numbers from, each
source's with its health (monitor.store.health): a source that was not read is marked so
wherever its figures appear, never shown as a quiet day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, func, select

from monitor.config import Settings, SourceSettings, channel_of, inquiry_channel_of
from monitor.measure.items import (
    CallItem,
    InquiryItem,
    call_item,
    inquiry_item,
    is_callback,
    longest_holds,
    oldest_open,
)
from monitor.measure.summaries import (
    CallFigures,
    HourCounts,
    InquiryFigures,
    OpenNow,
    hourly,
    summarize_calls,
    summarize_inquiries,
)
from monitor.measure.teams import Roster
from monitor.store.backlog import Backlog, open_counts, totals
from monitor.store.backlog import oldest_open as oldest_open_rows
from monitor.store.database import transaction
from monitor.store.health import SourceHealth, source_health
from monitor.store.schema import CALLS, INQUIRIES, WAITING_CALL


@dataclass(frozen=True)
class QueueFigures:
    """The calls of one queue of a phone source."""

    queue: str
    calls: CallFigures


@dataclass(frozen=True)
class SourceFigures:
    source: str
    kind: str
    channel: str  # the source's channel (its calls' for a phone source)
    stage: str
    since: datetime
    until: datetime
    inquiries: InquiryFigures | None  # None for sources that produce no inquiries
    calls: CallFigures | None  # None for sources that produce no calls
    # The channel of its inquiries, as the metrics label them (a phone source's: voicemail).
    inquiry_channel: str = ""
    queues: tuple[QueueFigures, ...] = ()  # the calls queue by queue, by queue name
    # Only with `detail` (the digest): whom to act on (the items `report --items` lists), and
    # the period hour by hour.
    oldest_open: tuple[InquiryItem, ...] = ()  # open inquiries but callbacks, oldest first
    longest_holds: tuple[CallItem, ...] = ()
    hours: tuple[HourCounts, ...] = ()
    callbacks: tuple[InquiryItem, ...] = ()  # callers waiting for a callback, oldest first
    # Whether the source was read (monitor.store.health), and whether these figures hold all it
    # had for the period: read after the period ended (or, for one still running, read fine).
    health: SourceHealth | None = None
    complete: bool = True


# The columns the summaries and the digest's lists read: fetching only these (no ids, no
# unused timestamps) keeps a digest of a busy day cheap. Add a column here when a summary needs it.
INQUIRY_COLUMNS = [
    INQUIRIES.c[name]
    for name in (
        "source",
        "conversation",
        "channel",
        "kind",
        "status",
        "opened_at",
        "closed_at",
        "ended_at",
        "response_seconds",
        "business_seconds",
        "due_at",
        "breached",
        "clamped",
        "customer",
        "subject",
        "closed_by",
        "agent",
    )
]
CALL_COLUMNS = [
    CALLS.c[name]
    for name in (
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
        "ended_by",
    )
]


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Midnight to midnight of `day` in `zone` (23 or 25 hours on a daylight-saving change)."""
    return datetime.combine(day, time(), zone), datetime.combine(
        day + timedelta(days=1), time(), zone
    )


def period_rows(
    conn: Connection,
    source: str,
    since: datetime,
    until: datetime,
    inquiry_columns: Sequence[Any] = INQUIRY_COLUMNS,
    call_columns: Sequence[Any] = CALL_COLUMNS,
) -> tuple[Sequence[Any], Sequence[Any]]:
    """The inquiries of `source` opened and its calls entered in [since, until), as rows of the
    columns given (by default all that the figures and items read)."""
    inquiries = (
        conn.execute(
            select(*inquiry_columns).where(
                INQUIRIES.c.source == source,
                INQUIRIES.c.opened_at >= since,
                INQUIRIES.c.opened_at < until,
            )
        )
        .mappings()
        .all()
    )
    calls = (
        conn.execute(
            select(*call_columns).where(
                CALLS.c.source == source,
                CALLS.c.entered_at >= since,
                CALLS.c.entered_at < until,
            )
        )
        .mappings()
        .all()
    )
    return inquiries, calls


def source_figures(
    engine: Engine,
    settings: Settings,
    source: SourceSettings,
    since: datetime,
    until: datetime,
    now: datetime,
    *,
    detail: int = 0,
    health: SourceHealth | None = None,
    read_after: datetime | None = None,
    backlog: Backlog | None = None,
) -> SourceFigures:
    """Inquiries opened and calls entered in [since, until), and what is open/waiting at `now`.

    With `detail` > 0 also the `detail` oldest open inquiries and callbacks, the `detail`
    longest holds of the period and its hour-by-hour counts. With the source's `health`, the
    figures say whether they are complete: the source was read after `read_after` (by default
    the period's end). What is open now is counted by monitor.store.backlog (given as
    `backlog` when several periods share it, as the digest's compared days do), and only the
    `detail` oldest open inquiries are read."""
    channel = channel_of(source).value
    with transaction(engine) as conn:
        if backlog is None:
            backlog = open_counts(conn, now, [source.name])
        groups = [key for key in backlog if key[0] == source.name]
        open_now = oldest_open_rows(conn, groups, detail, INQUIRY_COLUMNS)
        period, calls = period_rows(conn, source.name, since, until)
        waiting = (
            conn.execute(select(*CALL_COLUMNS).where(WAITING_CALL, CALLS.c.source == source.name))
            .mappings()
            .all()
        )
    # Only with `detail`: the open inquiries to name, callers waiting for a callback apart.
    opened = open_items(settings, open_now, now, (since, until)) if detail else []
    has_calls = channel == "phone" or bool(calls) or bool(waiting)
    count, breached, oldest = totals(backlog, source.name)
    has_inquiries = channel != "phone" or bool(period) or count > 0
    backlog_now = OpenNow(
        count, breached, None if oldest is None else (now - oldest).total_seconds()
    )
    targets = settings.targets_for(source)
    queues: tuple[QueueFigures, ...] = ()
    if has_calls:
        by_queue: dict[str, tuple[list[Any], list[Any]]] = defaultdict(lambda: ([], []))
        for row in calls:
            by_queue[row["queue"]][0].append(row)
        for row in waiting:
            by_queue[row["queue"]][1].append(row)
        queues = tuple(
            QueueFigures(name, summarize_calls(left, still, now, targets))
            for name, (left, still) in sorted(by_queue.items())
        )
    return SourceFigures(
        source=source.name,
        kind=source.kind,
        channel=channel,
        stage=source.stage.value,
        since=since,
        until=until,
        inquiries=summarize_inquiries(period, backlog_now, now) if has_inquiries else None,
        calls=summarize_calls(calls, waiting, now, targets) if has_calls else None,
        inquiry_channel=inquiry_channel_of(source).value,
        queues=queues,
        oldest_open=oldest_open([i for i in opened if not is_callback(i)], detail),
        longest_holds=(longest_holds(call_items(settings, calls, now), detail) if detail else ()),
        hours=hourly(period, calls, since, until, now, targets) if detail else (),
        callbacks=oldest_open([i for i in opened if is_callback(i)], detail),
        health=health,
        complete=True if health is None else health.complete_until(read_after or until),
    )


def _oldest(rows: Sequence[Any], limit: int) -> list[Any]:
    """The `limit` rows `items.oldest_open` would list first, in its order."""
    return sorted(rows, key=lambda r: (r["opened_at"], r["source"], r["conversation"]))[:limit]


def _longest(rows: Sequence[Any], limit: int) -> list[Any]:
    """The `limit` finished calls of known wait `items.longest_holds` would list first."""
    known = [r for r in rows if r["outcome"] not in ("waiting", "unknown")]
    known = [r for r in known if r["wait_seconds"] is not None]
    known.sort(key=lambda r: (-float(r["wait_seconds"]), r["entered_at"], r["external_id"]))
    return known[:limit]


def open_items(
    settings: Settings,
    rows: Sequence[Any],
    now: datetime,
    period: tuple[datetime, datetime],
    roster: Roster | None = None,
) -> list[InquiryItem]:
    """The items of open inquiry rows (opened whenever; those opened in `period` are also
    inquiries of the period): nobody answered them, and each counts for its source's team."""
    roster = roster or Roster.from_settings(settings)
    since, until = period
    return [
        inquiry_item(
            row, now, team=roster.inquiry_team(row), in_period=since <= row["opened_at"] < until
        )
        for row in rows
    ]


def call_items(
    settings: Settings, rows: Sequence[Any], now: datetime, roster: Roster | None = None
) -> list[CallItem]:
    """The items of call rows of the period, each with its source's targets, who answered it
    and the team it counts for."""
    roster = roster or Roster.from_settings(settings)
    targets = {s.name: settings.targets_for(s) for s in settings.sources}
    items = []
    for row in rows:
        member = roster.call_member(row)
        items.append(
            call_item(
                row,
                targets[row["source"]],
                now,
                agent=None if member is None else member.name,
                team=roster.call_team(row),
            )
        )
    return items


def all_figures(
    engine: Engine,
    settings: Settings,
    since: datetime,
    until: datetime,
    now: datetime,
    *,
    detail: int = 0,
    read_after: datetime | None = None,
    backlog: Backlog | None = None,
) -> list[SourceFigures]:
    """The figures of every configured source, each with its health (see `source_figures`).
    `backlog` (what is open now: monitor.store.backlog.open_counts) is read here unless given."""
    with transaction(engine) as conn:
        health = source_health(conn, settings, now)
        if backlog is None:
            backlog = open_counts(conn, now, [s.name for s in settings.sources])
    return [
        source_figures(
            engine,
            settings,
            s,
            since,
            until,
            now,
            detail=detail,
            health=health[s.name],
            read_after=read_after,
            backlog=backlog,
        )
        for s in settings.sources
    ]


def backlog_now(engine: Engine, settings: Settings, now: datetime) -> Backlog:
    """What is open now over the configured sources (monitor.store.backlog), read once for
    the figures of several periods."""
    with transaction(engine) as conn:
        return open_counts(conn, now, [s.name for s in settings.sources])


def latest_activity(engine: Engine, settings: Settings) -> datetime | None:
    """When the newest stored inquiry opened or call entered, over the configured sources: to
    point a report of an empty period at where the data is (each maximum is an index lookup)."""
    latest: list[datetime] = []
    with transaction(engine) as conn:
        for source in settings.sources:
            for column in (INQUIRIES.c.opened_at, CALLS.c.entered_at):
                table = column.table
                found = conn.execute(
                    select(func.max(column)).where(table.c.source == source.name)
                ).scalar()
                if found is not None:
                    latest.append(found)
    return max(latest, default=None)
