"""The metrics engine: figures of a period from inquiry and call rows (pure; `now` passed in).

The report, the digest and the alerter all call these functions, and the exporter's live gauges
use the same breach rule (`inquiries.is_breached_now`), so every surface shows the same numbers.

Percentiles are nearest-rank (SPEC §2): the smallest value with at least q% of the values at or
below it, so a reported p90 is always a response time that really happened.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.config import ResolvedTargets
from monitor.inquiries import is_breached_now

Row = Mapping[Any, Any]
UNANSWERED_OUTCOMES = ("abandoned", "timeout", "exit_key", "exit_empty", "unknown")


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


def summarize_inquiries(
    period: Iterable[Row], open_now: Iterable[Row], now: datetime
) -> InquiryFigures:
    """Figures for the inquiries opened in a period (`period`) and those open at `now`."""
    rows = list(period)
    answered = [r for r in rows if r["status"] == "answered"]
    responses = [r["response_seconds"] for r in answered]
    business = [r["business_seconds"] for r in answered if r["business_seconds"] is not None]
    late_open = [r for r in rows if r["status"] == "open" and is_breached_now(r["due_at"], now)]
    missed = [r for r in rows if r["status"] == "missed"]
    within = [r for r in answered if not r["breached"]]
    currently_open = list(open_now)
    ages = [(now - r["opened_at"]).total_seconds() for r in currently_open]
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
        open_now=len(currently_open),
        open_breached_now=sum(1 for r in currently_open if is_breached_now(r["due_at"], now)),
        oldest_open_age_seconds=max(ages) if ages else None,
    )


@dataclass(frozen=True)
class CallFigures:
    total: int  # calls that entered the queue in the period and have left it
    answered: int  # answered, including answered then transferred
    abandoned: int  # the caller hung up while waiting
    unanswered: int  # abandoned, timed out, left by key or empty queue, or never seen to end
    service_level: float | None  # answered within answer_within / offered
    median_wait_seconds: float | None
    p90_wait_seconds: float | None
    mean_wait_seconds: float | None
    over_warn: int
    over_max: int
    longest_wait_seconds: float | None
    waiting_now: int
    longest_waiting_now_seconds: float | None

    @property
    def abandoned_ratio(self) -> float | None:
        return _ratio(self.abandoned, self.total)


def summarize_calls(
    period: Iterable[Row], waiting_now: Iterable[Row], now: datetime, targets: ResolvedTargets
) -> CallFigures:
    """Figures for the calls of a period and the callers waiting at `now`."""
    rows = [r for r in period if r["outcome"] != "waiting"]
    waits = [float(r["wait_seconds"] or 0.0) for r in rows]
    answered = [r for r in rows if r["outcome"] in ("answered", "transferred")]
    abandoned = [r for r in rows if r["outcome"] == "abandoned"]
    limit = targets.answer_within.total_seconds()
    fast = sum(1 for r in answered if (r["wait_seconds"] or 0.0) <= limit)
    # Callers who hung up before the service-level threshold arguably never gave us a chance;
    # whether they count against it is a setting (`abandons_count`).
    quick_abandons = sum(1 for r in abandoned if (r["wait_seconds"] or 0.0) <= limit)
    offered = len(rows) if targets.abandons_count else len(rows) - quick_abandons
    current = [waiting_seconds(r, now) for r in waiting_now]
    return CallFigures(
        total=len(rows),
        answered=len(answered),
        abandoned=len(abandoned),
        unanswered=sum(1 for r in rows if r["outcome"] in UNANSWERED_OUTCOMES),
        service_level=_ratio(fast, offered),
        median_wait_seconds=percentile(waits, 50),
        p90_wait_seconds=percentile(waits, 90),
        mean_wait_seconds=sum(waits) / len(waits) if waits else None,
        over_warn=sum(1 for w in waits if w > targets.hold_warn.total_seconds()),
        over_max=sum(1 for w in waits if w > targets.hold_max.total_seconds()),
        longest_wait_seconds=max(waits) if waits else None,
        waiting_now=len(current),
        longest_waiting_now_seconds=max(current) if current else None,
    )
