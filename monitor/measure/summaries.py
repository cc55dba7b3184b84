"""The metrics engine: figures of a period from inquiry and call rows (pure; `now` passed in).

The report, the digest and the alerter all call these functions, and the exporter's live gauges
use the same breach rule (`inquiries.is_breached_now`), so every surface shows the same numbers.

Percentiles are nearest-rank: the smallest value with at least q% of the values at or below
it, so a reported p90 is always a response time that really happened.

A call whose end was never seen (`unknown`) has no known wait: it is counted among the calls
and the unanswered ones, but never in waits, their percentiles, the hold thresholds or the
service level (a 0-second hold would flatter every one of them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config import ResolvedTargets
from monitor.measure.events import callback_conversation
from monitor.measure.inquiries import is_breached_now

Row = Mapping[Any, Any]
UNANSWERED_OUTCOMES = ("abandoned", "timeout", "exit_key", "exit_empty", "unknown")
# Calls that ask for a callback when their number is known (monitor.measure.events).
MISSED_OUTCOMES = ("abandoned", "timeout", "exit_key", "exit_empty")
UNKNOWN = "unknown"


def is_short_abandon(
    outcome: str, wait: float | None, flagged: bool, targets: ResolvedTargets
) -> bool:
    """An abandoned call the caller hung up within `short_abandon` of entering (0: off), or
    that its source itself called a short abandon: no callback is owed for it and the service
    level leaves it out (a misdial is not a customer let down). It stays an abandoned call."""
    if outcome != "abandoned":
        return False
    if flagged:
        return True
    limit = targets.short_abandon.total_seconds()
    return limit > 0 and wait is not None and wait <= limit


def known_wait(row: Row) -> float | None:
    """A finished call's wait, None when it is not known (an `unknown` call)."""
    if row["outcome"] == UNKNOWN or row["wait_seconds"] is None:
        return None
    return float(row["wait_seconds"])


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (0 < q <= 100) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def waiting_seconds(call: Row, now: datetime) -> float:
    """The current wait of a caller still in the queue: now minus entering it, never negative."""
    entered: datetime = call["entered_at"]
    return max(0.0, (now - entered).total_seconds())


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class InquiryFigures:
    received: int  # opened in the period
    answered: int
    within_target: int  # answered no later than the target
    decided: int  # answered, missed, or still open past the target: the target's verdict is in
    missed: int  # the conversation ended with nobody answering (chats)
    breached: int  # answered late, missed late, or open past the target
    clamped: int  # replies dated before their question (clock skew), counted as 0 s
    median_seconds: float | None
    p90_seconds: float | None
    mean_seconds: float | None
    median_business_seconds: float | None
    p90_business_seconds: float | None
    open_now: int  # open at `now`, whenever opened
    open_breached_now: int
    oldest_open_age_seconds: float | None

    @property
    def within_target_ratio(self) -> float | None:
        """Share answered within target among the inquiries whose verdict is in."""
        return _ratio(self.within_target, self.decided)

    @property
    def not_within_target(self) -> int:
        """Answered late, missed, or open past the target: customers left waiting too long."""
        return self.decided - self.within_target


def let_down(row: Row, now: datetime) -> bool:
    """An inquiry not answered within its target: answered late, missed, or open past it.
    (The complement, among decided inquiries, of `InquiryFigures.within_target`.)"""
    if row["status"] == "answered":
        return bool(row["breached"])
    if row["status"] == "missed":
        return True
    return is_breached_now(row["due_at"], now)


@dataclass(frozen=True)
class OpenNow:
    """The inquiries open at a moment, in figures: how many, how many past their due time, and
    how long the oldest has waited. The store counts them by aggregate and index
    (monitor.store.backlog), so a report never reads a backlog to say how big it is."""

    count: int = 0
    breached: int = 0
    oldest_age_seconds: float | None = None

    @classmethod
    def of_rows(cls, rows: Iterable[Row], now: datetime) -> OpenNow:
        """The figures of these open inquiry rows (a group of them: a team's, an agent's)."""
        found = list(rows)
        ages = [(now - r["opened_at"]).total_seconds() for r in found]
        return cls(
            count=len(found),
            breached=sum(1 for r in found if is_breached_now(r["due_at"], now)),
            oldest_age_seconds=max(ages) if ages else None,
        )


def summarize_inquiries(
    period: Iterable[Row], open_now: Iterable[Row] | OpenNow, now: datetime
) -> InquiryFigures:
    """Figures for the inquiries opened in a period (`period`) and those open at `now` (their
    rows, or their figures already counted)."""
    backlog = open_now if isinstance(open_now, OpenNow) else OpenNow.of_rows(open_now, now)
    rows = list(period)
    answered = [r for r in rows if r["status"] == "answered"]
    responses = [r["response_seconds"] for r in answered]
    business = [r["business_seconds"] for r in answered if r["business_seconds"] is not None]
    late_open = [r for r in rows if r["status"] == "open" and is_breached_now(r["due_at"], now)]
    missed = [r for r in rows if r["status"] == "missed"]
    within = [r for r in answered if not r["breached"]]
    return InquiryFigures(
        received=len(rows),
        answered=len(answered),
        within_target=len(within),
        decided=len(answered) + len(late_open) + len(missed),
        missed=len(missed),
        breached=sum(1 for r in answered + missed if r["breached"]) + len(late_open),
        clamped=sum(1 for r in answered if r["clamped"]),
        median_seconds=percentile(responses, 50),
        p90_seconds=percentile(responses, 90),
        mean_seconds=sum(responses) / len(responses) if responses else None,
        median_business_seconds=percentile(business, 50),
        p90_business_seconds=percentile(business, 90),
        open_now=backlog.count,
        open_breached_now=backlog.breached,
        oldest_open_age_seconds=backlog.oldest_age_seconds,
    )


# Where the system ended calls, as the report and the digest list it: the destinations with the
# most such calls first, this many, and the rest together as OTHER (a dialplan has any number of
# destinations, and a list of them must stay short enough to read in a digest line).
SHOWN_DESTINATIONS = 3
# Names no stored destination can have (`<` and `>` are not kept: events.destination).
OTHER = "<other>"
NOT_RECORDED = "<not recorded>"  # stored before destinations were kept, or the file said none


@dataclass(frozen=True)
class EndedAt:
    """How many calls the phone system ended at one destination."""

    destination: str  # as stored, or OTHER, or NOT_RECORDED
    calls: int


def ended_at(destinations: Iterable[str | None]) -> tuple[EndedAt, ...]:
    """The calls the system ended, per destination (one entry per call's destination, None when
    not recorded): most first (then by name), at most `SHOWN_DESTINATIONS` and then the rest
    together as OTHER."""
    counts: dict[str, int] = {}
    for name in destinations:
        key = NOT_RECORDED if name is None else name
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if len(ranked) > SHOWN_DESTINATIONS:
        rest = sum(n for _, n in ranked[SHOWN_DESTINATIONS:])
        ranked = [*ranked[:SHOWN_DESTINATIONS], (OTHER, rest)]
    return tuple(EndedAt(name, n) for name, n in ranked)


@dataclass(frozen=True)
class CallFigures:
    total: int  # calls that entered the queue in the period and have left it
    answered: int  # answered, including answered then transferred
    abandoned: int  # the caller hung up while waiting (short abandons included)
    unanswered: int  # abandoned, timed out, left by key or empty queue, or never seen to end
    service_level: float | None  # answered within answer_within / offered
    median_wait_seconds: float | None
    p90_wait_seconds: float | None
    mean_wait_seconds: float | None
    over_warn: int
    over_max: int
    held_long_or_unanswered: int  # over hold_warn, or not answered at all: callers let down
    longest_wait_seconds: float | None
    waiting_now: int
    longest_waiting_now_seconds: float | None
    unknown: int = 0  # never seen to end: no known wait, left out of every wait figure
    short_abandoned: int = 0  # hung up within `short_abandon`: out of the service level
    # The longest wait an `unknown` call was seen to have, at least (it may have held longer).
    unknown_wait_at_least_seconds: float | None = None
    # Talk time of the answered calls whose source gives it: the sum and the median.
    talk_seconds: float | None = None
    median_talk_seconds: float | None = None
    answered_within: int = 0  # the service level's numerator
    offered: int = 0  # the service level's denominator
    # Ended by the phone system with no person (a closed message, a hang-up destination such as
    # 3CX's EndCall, an empty queue): `exit_empty`, let-downs, never answered.
    system_ended: int = 0
    # Where (ended_at): most first, a few and OTHER.
    system_ended_at: tuple[EndedAt, ...] = ()
    # Missed calls (not short abandons) with no number to call back: withheld callers.
    missed_without_number: int = 0

    @property
    def abandoned_ratio(self) -> float | None:
        return _ratio(self.abandoned, self.total)

    @property
    def held_long_or_unanswered_ratio(self) -> float | None:
        return _ratio(self.held_long_or_unanswered, self.total)


# The targets of each call: one set for a source's calls, or a function of the row where calls
# of several sources are summarized together (a team's, a stage's).
CallTargets = ResolvedTargets | Callable[[Row], ResolvedTargets]


def _targets_of(targets: CallTargets) -> Callable[[Row], ResolvedTargets]:
    if isinstance(targets, ResolvedTargets):
        return lambda _row: targets
    return targets


def call_let_down(row: Row, targets: ResolvedTargets) -> bool:
    """A finished call that waited longer than `hold_warn` or was never answered."""
    wait = known_wait(row) or 0.0
    return wait > targets.hold_warn.total_seconds() or row["outcome"] in UNANSWERED_OUTCOMES


def is_offered(row: Row, targets: ResolvedTargets) -> bool:
    """In the service level's denominator: not unknown calls (no known wait), not short
    abandons (no chance to answer); callers who hung up before the threshold arguably never
    gave us a chance either: whether they count is `abandons_count`."""
    if row["outcome"] == UNKNOWN or _short(row, targets):
        return False
    limit = targets.answer_within.total_seconds()
    quick = row["outcome"] == "abandoned" and (known_wait(row) or 0.0) <= limit
    return targets.abandons_count or not quick


def answered_within(row: Row, targets: ResolvedTargets) -> bool:
    """Answered within `answer_within`: the service level's numerator."""
    if row["outcome"] not in ANSWERED_OUTCOMES:
        return False
    return (known_wait(row) or 0.0) <= targets.answer_within.total_seconds()


ANSWERED_OUTCOMES = ("answered", "transferred")


def summarize_calls(
    period: Iterable[Row], waiting_now: Iterable[Row], now: datetime, targets: CallTargets
) -> CallFigures:
    """Figures for the calls of a period and the callers waiting at `now`. `targets` are the
    source's, or a function giving each call its own source's (calls of several sources)."""
    of = _targets_of(targets)
    rows = [r for r in period if r["outcome"] != "waiting"]
    unknown = [r for r in rows if r["outcome"] == UNKNOWN]
    waits = [w for r in rows if (w := known_wait(r)) is not None]
    answered = [r for r in rows if r["outcome"] in ANSWERED_OUTCOMES]
    abandoned = [r for r in rows if r["outcome"] == "abandoned"]
    short = [r for r in abandoned if _short(r, of(r))]
    fast = sum(1 for r in answered if answered_within(r, of(r)))
    offered = sum(1 for r in rows if is_offered(r, of(r)))
    talks = [float(r["talk_seconds"]) for r in answered if r.get("talk_seconds") is not None]

    def over(row: Row, threshold: str) -> bool:
        wait = known_wait(row)
        limit: timedelta = getattr(of(row), threshold)
        return wait is not None and wait > limit.total_seconds()

    current = [waiting_seconds(r, now) for r in waiting_now]
    seen = [float(r["wait_seconds"]) for r in unknown if r["wait_seconds"] is not None]
    return CallFigures(
        total=len(rows),
        answered=len(answered),
        abandoned=len(abandoned),
        unanswered=sum(1 for r in rows if r["outcome"] in UNANSWERED_OUTCOMES),
        service_level=_ratio(fast, offered),
        median_wait_seconds=percentile(waits, 50),
        p90_wait_seconds=percentile(waits, 90),
        mean_wait_seconds=sum(waits) / len(waits) if waits else None,
        over_warn=sum(1 for r in rows if over(r, "hold_warn")),
        over_max=sum(1 for r in rows if over(r, "hold_max")),
        held_long_or_unanswered=sum(1 for r in rows if call_let_down(r, of(r))),
        longest_wait_seconds=max(waits) if waits else None,
        waiting_now=len(current),
        longest_waiting_now_seconds=max(current) if current else None,
        unknown=len(unknown),
        short_abandoned=len(short),
        unknown_wait_at_least_seconds=max(seen) if seen else None,
        talk_seconds=sum(talks) if talks else None,
        median_talk_seconds=percentile(talks, 50),
        answered_within=fast,
        offered=offered,
        system_ended=sum(1 for r in rows if r["outcome"] == "exit_empty"),
        system_ended_at=ended_at(r.get("ended_by") for r in rows if r["outcome"] == "exit_empty"),
        missed_without_number=sum(
            1
            for r in rows
            if r["outcome"] in MISSED_OUTCOMES
            and not _short(r, of(r))
            and callback_conversation(r["caller"] if "caller" in r else None) is None
        ),
    )


def let_down_share(
    inquiries: InquiryFigures | None, calls: CallFigures | None
) -> tuple[float, int]:
    """How badly customers were let down, the weakest-first rank of the digest: the worse of
    the share of inquiries not answered within target (of those whose verdict is in) and the
    share of calls held longer than `hold_warn` or not answered; and how many customers that
    is, both kinds together."""
    shares: list[float] = []
    count = 0
    if inquiries is not None:
        count += inquiries.not_within_target
        if inquiries.within_target_ratio is not None:
            shares.append(1 - inquiries.within_target_ratio)
    if calls is not None:
        count += calls.held_long_or_unanswered
        if calls.held_long_or_unanswered_ratio is not None:
            shares.append(calls.held_long_or_unanswered_ratio)
    return max(shares, default=0.0), count


def _short(row: Row, targets: ResolvedTargets) -> bool:
    flagged = bool(row["short_abandon"]) if "short_abandon" in row else False
    return is_short_abandon(row["outcome"], row["wait_seconds"], flagged, targets)


@dataclass(frozen=True)
class HourCounts:
    """Contacts that began in one hour [start, start + 1 h) and how many were let down."""

    start: datetime
    inquiries: int = 0
    inquiries_let_down: int = 0  # not answered within target (see `let_down`)
    calls: int = 0
    calls_let_down: int = 0  # held over hold_warn or not answered (see `call_let_down`)

    def __add__(self, other: HourCounts) -> HourCounts:
        return HourCounts(
            self.start,
            self.inquiries + other.inquiries,
            self.inquiries_let_down + other.inquiries_let_down,
            self.calls + other.calls,
            self.calls_let_down + other.calls_let_down,
        )


HOUR = timedelta(hours=1)


def hour_starts(since: datetime, until: datetime) -> list[datetime]:
    """Hour starts from `since` to `until`, stepped in absolute time: a day with a
    daylight-saving change has 23 or 25 of them (UTC arithmetic: Python adds wall-clock time
    to datetimes in a zone)."""
    starts, at, end = [], since.astimezone(UTC), until.astimezone(UTC)
    while at < end:
        starts.append(at)
        at += HOUR
    return starts


def hourly(
    inquiries: Iterable[Row],
    calls: Iterable[Row],
    since: datetime,
    until: datetime,
    now: datetime,
    targets: ResolvedTargets,
) -> tuple[HourCounts, ...]:
    """Inquiries opened and finished calls entered in each hour of [since, until)."""
    starts = hour_starts(since, until)
    counts = [[0, 0, 0, 0] for _ in starts]
    origin = since.astimezone(UTC)

    def slot(at: datetime) -> int | None:
        index = int((at - origin).total_seconds() // 3600)
        return index if 0 <= index < len(starts) else None

    for r in inquiries:
        if (i := slot(r["opened_at"])) is not None:
            counts[i][0] += 1
            counts[i][1] += let_down(r, now)
    for r in calls:
        if r["outcome"] != "waiting" and (i := slot(r["entered_at"])) is not None:
            counts[i][2] += 1
            counts[i][3] += call_let_down(r, targets)
    return tuple(HourCounts(start, *c) for start, c in zip(starts, counts, strict=True))
