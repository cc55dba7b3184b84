"""Figures per source for a period, read from the store and summarized by the metrics engine.

This is the one place the report, the digest and the alerter get their numbers from, each
source's with its health (monitor.store.health): a source that was not read is marked so
wherever its figures appear, never shown as a quiet day.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from monitor.config import Settings, SourceSettings, channel_of, inquiry_channel_of
from monitor.measure.summaries import (
    CallFigures,
    Hold,
    HourCounts,
    InquiryFigures,
    OpenInquiry,
    hourly,
    is_callback,
    longest_holds,
    oldest_open,
    summarize_calls,
    summarize_inquiries,
)
from monitor.store.database import transaction
from monitor.store.health import SourceHealth, source_health
from monitor.store.tables import CALLS, INQUIRIES, WAITING_CALL


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
    # Only with `detail` (the digest): whom to act on, and the period hour by hour.
    oldest_open: tuple[OpenInquiry, ...] = ()  # open inquiries but callbacks, oldest first
    longest_holds: tuple[Hold, ...] = ()
    hours: tuple[HourCounts, ...] = ()
    callbacks: tuple[OpenInquiry, ...] = ()  # callers waiting for a callback, oldest first
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
        "status",
        "opened_at",
        "response_seconds",
        "business_seconds",
        "due_at",
        "breached",
        "clamped",
        "customer",
        "subject",
    )
]
CALL_COLUMNS = [
    CALLS.c[name]
    for name in (
        "source",
        "external_id",
        "queue",
        "entered_at",
        "wait_seconds",
        "outcome",
        "caller",
        "short_abandon",
    )
]


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Midnight to midnight of `day` in `zone` (23 or 25 hours on a daylight-saving change)."""
    return datetime.combine(day, time(), zone), datetime.combine(
        day + timedelta(days=1), time(), zone
    )


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
) -> SourceFigures:
    """Inquiries opened and calls entered in [since, until), and what is open/waiting at `now`.

    With `detail` > 0 also the `detail` oldest open inquiries and callbacks, the `detail`
    longest holds of the period and its hour-by-hour counts. With the source's `health`, the
    figures say whether they are complete: the source was read after `read_after` (by default
    the period's end)."""
    channel = channel_of(source).value
    with transaction(engine) as conn:
        period = (
            conn.execute(
                select(*INQUIRY_COLUMNS).where(
                    INQUIRIES.c.source == source.name,
                    INQUIRIES.c.opened_at >= since,
                    INQUIRIES.c.opened_at < until,
                )
            )
            .mappings()
            .all()
        )
        open_now = (
            conn.execute(
                select(*INQUIRY_COLUMNS).where(
                    INQUIRIES.c.status == "open", INQUIRIES.c.source == source.name
                )
            )
            .mappings()
            .all()
        )
        calls = (
            conn.execute(
                select(*CALL_COLUMNS).where(
                    CALLS.c.source == source.name,
                    CALLS.c.entered_at >= since,
                    CALLS.c.entered_at < until,
                )
            )
            .mappings()
            .all()
        )
        waiting = (
            conn.execute(select(*CALL_COLUMNS).where(WAITING_CALL, CALLS.c.source == source.name))
            .mappings()
            .all()
        )
    callbacks = [row for row in open_now if is_callback(row)]
    others = [row for row in open_now if not is_callback(row)]
    has_calls = channel == "phone" or bool(calls) or bool(waiting)
    has_inquiries = channel != "phone" or bool(period) or bool(open_now)
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
        inquiries=summarize_inquiries(period, open_now, now) if has_inquiries else None,
        calls=summarize_calls(calls, waiting, now, targets) if has_calls else None,
        inquiry_channel=inquiry_channel_of(source).value,
        queues=queues,
        oldest_open=oldest_open(others, now, detail) if detail else (),
        longest_holds=longest_holds(calls, targets, detail) if detail else (),
        hours=hourly(period, calls, since, until, now, targets) if detail else (),
        callbacks=oldest_open(callbacks, now, detail) if detail else (),
        health=health,
        complete=True if health is None else health.complete_until(read_after or until),
    )


def all_figures(
    engine: Engine,
    settings: Settings,
    since: datetime,
    until: datetime,
    now: datetime,
    *,
    detail: int = 0,
    read_after: datetime | None = None,
) -> list[SourceFigures]:
    """The figures of every configured source, each with its health (see `source_figures`)."""
    with transaction(engine) as conn:
        health = source_health(conn, settings, now)
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
        )
        for s in settings.sources
    ]


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
