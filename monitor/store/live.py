"""What needs someone now and today so far, read at the cost of what is shown (the status page).

The figures are the metrics engine's (`monitor.measure.summaries`, through the same period reads
as `monitor.store.figures`), so the page says what `report` says for the same moment. What
differs is how the open backlog is read: never row by row. Per source, its size, how much of it
is past its target and its oldest are counted as every report counts them
(`monitor.store.backlog`: an aggregate row and the partial indexes of open inquiries), and only
the `top` oldest past or near their target are fetched, so a page costs the same with a
hundred or a hundred thousand open inquiries. Callers still in a queue are a handful
(`ix_call_waiting`) and are read whole.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from monitor.config import ResolvedTargets, Settings, SourceSettings, channel_of
from monitor.config import inquiry_channel_of as inquiry_channel
from monitor.measure.items import CallItem, InquiryItem
from monitor.measure.summaries import summarize_calls, summarize_inquiries
from monitor.store import backlog
from monitor.store.backlog import Group
from monitor.store.database import transaction
from monitor.store.figures import (
    CALL_COLUMNS,
    INQUIRY_COLUMNS,
    SourceFigures,
    call_items,
    open_items,
    period_rows,
)
from monitor.store.health import source_health
from monitor.store.schema import CALLS, INQUIRIES, WAITING_CALL

# What the summaries read of the day's rows (monitor.measure.summaries): no names, subjects or
# unused times, so a busy day's thousands of rows cost the page little to fetch.
# (tests/publish/test_status_page.py checks the page's figures equal report's, so a summary
# that starts reading another column fails there until it is added here.)
DAY_INQUIRY_COLUMNS = [
    INQUIRIES.c[name]
    for name in ("status", "response_seconds", "business_seconds", "due_at", "breached", "clamped")
]
DAY_CALL_COLUMNS = [
    CALLS.c[name] for name in ("outcome", "wait_seconds", "talk_seconds", "short_abandon", "caller")
]


@dataclass(frozen=True)
class OpenCounts:
    """A source's open inquiries at a moment, counted in the index."""

    open_now: int
    past_target: int
    oldest_opened_at: datetime | None


@dataclass(frozen=True)
class Live:
    """Today so far and what needs someone now, at `now`."""

    now: datetime
    since: datetime
    until: datetime
    figures: tuple[SourceFigures, ...]  # configuration order, as `report` lists them
    waiting: tuple[CallItem, ...]  # callers in a queue now, longest waiting first
    overdue: tuple[InquiryItem, ...]  # open past or near their target, oldest first (`top`)


def open_counts(conn: Connection, source: str, now: datetime) -> OpenCounts:
    """How many inquiries of `source` are open, how many of them past their target (`now` is
    past the due time), and when the oldest opened, over its channels (monitor.store.backlog)."""
    return OpenCounts(*backlog.totals(backlog.open_counts(conn, now, {source}), source))


def oldest_due(conn: Connection, groups: list[Group], by: datetime, limit: int) -> list[Any]:
    """The `limit` oldest open inquiries of `groups` (one source's channels) that are due by
    `by` (past their target, or about to be).

    Read as the `limit` oldest open ones (backlog.oldest_open: index entries, no sort of the
    backlog) and kept when due by `by`: a source's due times follow its open times (one target,
    added on one clock), so its oldest open inquiries are those due first, and asking the
    database for "due by, oldest first" instead would sort the whole overdue backlog."""
    rows = sorted(
        backlog.oldest_open(conn, groups, limit, INQUIRY_COLUMNS), key=lambda r: r["opened_at"]
    )[:limit]
    return [row for row in rows if row["due_at"] is not None and row["due_at"] <= by]


def live(
    engine: Engine,
    settings: Settings,
    period: tuple[datetime, datetime],
    now: datetime,
    *,
    top: int,
    margin: Callable[[ResolvedTargets], timedelta],
    read_after: datetime | None = None,
) -> Live:
    """The figures of `period` (today so far) for every configured source, with the open backlog
    counted (see the module docstring) and each source's health (complete: read after
    `read_after`, by default the period's end, as `all_figures`); the callers waiting now; and
    the `top` oldest open inquiries past their target or due within `margin(targets)` of
    `now`."""
    since, until = period
    figures: list[SourceFigures] = []
    overdue: list[Any] = []
    with transaction(engine) as conn:
        health = source_health(conn, settings, now)
        waiting_rows = conn.execute(select(*CALL_COLUMNS).where(WAITING_CALL)).mappings().all()
        waiting_by_source: dict[str, list[Any]] = defaultdict(list)
        for row in waiting_rows:
            waiting_by_source[row["source"]].append(row)
        # What is open now, for every source at once (as all_figures reads it).
        open_now = backlog.open_counts(conn, now, [s.name for s in settings.sources])
        for source in settings.sources:
            targets = settings.targets_for(source)
            rows = period_rows(
                conn, source.name, since, until, DAY_INQUIRY_COLUMNS, DAY_CALL_COLUMNS
            )
            counts = OpenCounts(*backlog.totals(open_now, source.name))
            found = _figures(settings, source, period, now, rows, counts, waiting_by_source)
            state = health[source.name]
            complete = state.complete_until(read_after or until)
            figures.append(replace(found, health=state, complete=complete))
            if counts.open_now:
                groups = [group for group in open_now if group[0] == source.name]
                overdue.extend(oldest_due(conn, groups, now + margin(targets), top))
    known = {s.name for s in settings.sources}
    waiting = sorted(
        (i for i in call_items(settings, [r for r in waiting_rows if r["source"] in known], now)),
        key=lambda i: (i.entered_at, i.source, i.external_id),
    )
    oldest = sorted(
        open_items(settings, overdue, now, period),
        key=lambda i: (i.opened_at, i.source, i.conversation),
    )
    return Live(now, since, until, tuple(figures), tuple(waiting), tuple(oldest[:top]))


def _figures(
    settings: Settings,
    source: SourceSettings,
    period: tuple[datetime, datetime],
    now: datetime,
    rows: tuple[Sequence[Any], Sequence[Any]],
    counts: OpenCounts,
    waiting_by_source: dict[str, list[Any]],
) -> SourceFigures:
    """The source's figures as `source_figures` makes them, its open inquiries from `counts`;
    not queue by queue (the page does not show queues)."""
    inquiries, calls = rows
    waiting = waiting_by_source.get(source.name, [])
    channel = channel_of(source).value
    targets = settings.targets_for(source)
    has_calls = channel == "phone" or bool(calls) or bool(waiting)
    has_inquiries = channel != "phone" or bool(inquiries) or bool(counts.open_now)
    summary = None
    if has_inquiries:
        oldest = counts.oldest_opened_at
        summary = replace(
            summarize_inquiries(inquiries, (), now),
            open_now=counts.open_now,
            open_breached_now=counts.past_target,
            oldest_open_age_seconds=None if oldest is None else (now - oldest).total_seconds(),
        )
    since, until = period
    return SourceFigures(
        source=source.name,
        kind=source.kind,
        channel=channel,
        stage=source.stage.value,
        since=since,
        until=until,
        inquiries=summary,
        calls=summarize_calls(calls, waiting, now, targets) if has_calls else None,
        inquiry_channel=inquiry_channel(source).value,
    )
