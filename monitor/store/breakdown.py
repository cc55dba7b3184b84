"""A period's figures broken down as asked, and every item behind them.

`report --by source|queue|stage|team|agent` and `report --items` read the period once
(`read_period`): every inquiry opened in it and every call that entered it, the inquiries open
and the callers waiting now, and the messages of the period that never paired. Each row becomes
its item (monitor.measure.items), with the agent who answered it and the team it counts for
(monitor.measure.teams); the rows of each group of items are then summarized by the metrics
engine (monitor.measure.summaries), the same functions as `report`, the digest and the alerts
use. So the `--by` figures are, by construction, sums over the very items `--items` lists.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, select

from monitor.config import ResolvedTargets, Settings
from monitor.measure.items import (
    CallItem,
    InquiryItem,
    LeftOutItem,
    call_item,
    inquiry_item,
    left_out_reason,
)
from monitor.measure.summaries import (
    CallFigures,
    InquiryFigures,
    summarize_calls,
    summarize_inquiries,
)
from monitor.measure.teams import Roster
from monitor.store.bulk import select_in
from monitor.store.database import transaction
from monitor.store.figures import CALL_COLUMNS, INQUIRY_COLUMNS
from monitor.store.schema import CALLS, INQUIRIES, MESSAGES, OPEN_INQUIRY, WAITING_CALL

DIMENSIONS = ("source", "queue", "stage", "team", "agent")
Key = tuple[str | None, ...]


@dataclass(frozen=True)
class Period:
    """The items of a period, each with the stored row it was made from."""

    since: datetime
    until: datetime
    now: datetime
    inquiries: tuple[tuple[Any, InquiryItem], ...]
    calls: tuple[tuple[Any, CallItem], ...]
    left_out: tuple[LeftOutItem, ...]
    targets: dict[str, ResolvedTargets]
    stages: dict[str, str]

    def only(self, sources: Set[str] = frozenset(), teams: Set[str] = frozenset()) -> Period:
        """The items of these sources that count for these teams (empty: all of them)."""

        def kept(item: InquiryItem | CallItem | LeftOutItem) -> bool:
            return (not sources or item.source in sources) and (not teams or item.team in teams)

        return replace(
            self,
            inquiries=tuple(pair for pair in self.inquiries if kept(pair[1])),
            calls=tuple(pair for pair in self.calls if kept(pair[1])),
            left_out=tuple(item for item in self.left_out if kept(item)),
        )


def read_period(
    engine: Engine, settings: Settings, since: datetime, until: datetime, now: datetime
) -> Period:
    """Every inquiry and call of [since, until) and those open or waiting at `now`, and the
    messages of the period that never paired, of the configured sources, as items."""
    names = [s.name for s in settings.sources]
    roster = Roster.from_settings(settings)
    with transaction(engine) as conn:
        period = _rows(conn, INQUIRY_COLUMNS, INQUIRIES.c.opened_at, names, since, until)
        open_now = (
            conn.execute(
                select(*INQUIRY_COLUMNS).where(OPEN_INQUIRY, INQUIRIES.c.source.in_(names))
            )
            .mappings()
            .all()
        )
        calls = _rows(conn, CALL_COLUMNS, CALLS.c.entered_at, names, since, until)
        waiting = (
            conn.execute(select(*CALL_COLUMNS).where(WAITING_CALL, CALLS.c.source.in_(names)))
            .mappings()
            .all()
        )
        left_out = _left_out(conn, roster, names, since, until)
    inquiries: list[tuple[Any, InquiryItem]] = []
    for row in period:
        member = roster.inquiry_member(row)
        agent = None if member is None else member.name
        asked = inquiry_item(row, now, agent=agent, team=roster.inquiry_team(row))
        inquiries.append((row, asked))
    for row in open_now:
        if not since <= row["opened_at"] < until:  # open since before the period
            asked = inquiry_item(row, now, team=roster.inquiry_team(row), in_period=False)
            inquiries.append((row, asked))
    targets = {s.name: settings.targets_for(s) for s in settings.sources}
    found: list[tuple[Any, CallItem]] = []
    for row, in_period in [(r, True) for r in calls] + [
        (r, False) for r in waiting if not since <= r["entered_at"] < until
    ]:
        member = roster.call_member(row)
        item = call_item(
            row,
            targets[row["source"]],
            now,
            agent=None if member is None else member.name,
            team=roster.call_team(row),
            in_period=in_period,
        )
        found.append((row, item))
    inquiries.sort(key=lambda pair: (pair[1].opened_at, pair[1].source, pair[1].conversation))
    found.sort(key=lambda pair: (pair[1].entered_at, pair[1].source, pair[1].external_id))
    return Period(
        since=since,
        until=until,
        now=now,
        inquiries=tuple(inquiries),
        calls=tuple(found),
        left_out=tuple(left_out),
        targets=targets,
        stages={s.name: s.stage.value for s in settings.sources},
    )


def _rows(
    conn: Any, columns: Sequence[Any], at: Any, names: list[str], since: datetime, until: datetime
) -> Sequence[Any]:
    table = at.table
    query = select(*columns).where(table.c.source.in_(names), at >= since, at < until)
    rows: Sequence[Any] = conn.execute(query).mappings().all()
    return rows


def _left_out(
    conn: Any, roster: Roster, names: list[str], since: datetime, until: datetime
) -> list[LeftOutItem]:
    """The messages of the period that opened, extended and closed nothing: automatic and
    internal ones, and agent messages that answered nobody (no inquiry names them as its
    reply, in any source: a callback closes inquiries of other phone sources)."""
    m = MESSAGES.c
    query = (
        select(
            m.source,
            m.external_id,
            m.conversation,
            m.at,
            m.side,
            m.kind,
            m.automatic,
            m.internal,
            m.channel,
            m.subject,
            m.agent,
            m.left_out,
        )
        .where(
            m.source.in_(names),
            m.at >= since,
            m.at < until,
            or_(m.automatic, m.internal, m.side == "agent"),
        )
        .order_by(m.at, m.id)
    )
    rows = conn.execute(query).mappings().all()
    replies = [r["external_id"] for r in rows if r["side"] == "agent"]
    closing = {
        (r["conversation"], r["closed_by"])
        for r in select_in(conn, INQUIRIES, {}, "closed_by", replies, ["conversation", "closed_by"])
    }
    items = []
    for row in rows:
        reason = left_out_reason(row, (row["conversation"], row["external_id"]) in closing)
        if reason is None:
            continue
        member = roster.member(row["agent"]) if row["side"] == "agent" else None
        team = member.team if member is not None and member.team else None
        items.append(
            LeftOutItem(
                source=row["source"],
                channel=row["channel"],
                conversation=row["conversation"],
                external_id=row["external_id"],
                at=row["at"],
                side=row["side"],
                subject=row["subject"],
                agent=None if member is None else member.name,
                team=team or roster.source_teams.get(row["source"]),
                reason=reason,
            )
        )
    return items


@dataclass(frozen=True)
class Group:
    """The figures of one group: `key` holds its value of each dimension asked for (None: no
    queue, no team, nobody)."""

    key: Key
    inquiries: InquiryFigures | None
    calls: CallFigures | None


def dimension(name: str, period: Period) -> Callable[[InquiryItem | CallItem], str | None]:
    """The value of dimension `name` of an item."""
    if name == "source":
        return lambda item: item.source
    if name == "queue":
        return lambda item: item.queue if isinstance(item, CallItem) else None
    if name == "stage":
        return lambda item: period.stages.get(item.source)
    if name == "team":
        return lambda item: item.team
    if name == "agent":
        return lambda item: item.agent
    raise ValueError(f"no dimension {name!r} (known: {', '.join(DIMENSIONS)})")


def breakdown(period: Period, by: Sequence[str]) -> list[Group]:
    """The period's figures per group of `by` (one group per combination of values met), in
    the order of the values, "none" last. Inquiries and calls are summarized by the metrics
    engine from the rows of the group's items; the calls with their own source's targets."""
    keys = [dimension(name, period) for name in by]

    def key(item: InquiryItem | CallItem) -> Key:
        return tuple(k(item) for k in keys)

    inquiries: dict[Key, tuple[list[Any], list[Any]]] = defaultdict(lambda: ([], []))
    for row, item in period.inquiries:
        group = inquiries[key(item)]
        if item.in_period:
            group[0].append(row)
        if item.open_now:
            group[1].append(row)
    calls: dict[Key, tuple[list[Any], list[Any]]] = defaultdict(lambda: ([], []))
    for row, call in period.calls:
        group = calls[key(call)]
        if call.in_period:
            group[0].append(row)
        if call.waiting_now:
            group[1].append(row)

    def targets(row: Any) -> ResolvedTargets:
        return period.targets[row["source"]]

    groups = []
    for k in sorted(inquiries.keys() | calls.keys(), key=_order):
        asked = inquiries.get(k)
        called = calls.get(k)
        groups.append(
            Group(
                key=k,
                inquiries=None if asked is None else summarize_inquiries(*asked, period.now),
                calls=None if called is None else summarize_calls(*called, period.now, targets),
            )
        )
    return groups


def _order(key: Key) -> tuple[tuple[bool, str], ...]:
    return tuple((value is None, (value or "").casefold()) for value in key)
