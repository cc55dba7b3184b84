"""The metrics engine: nearest-rank percentiles and the figures of a period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import BUILTIN_TARGETS
from monitor.measure.summaries import (
    NOT_RECORDED,
    OTHER,
    EndedAt,
    ended_at,
    percentile,
    summarize_calls,
    summarize_inquiries,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([15, 20, 35, 40, 50], 30, 20),  # the textbook nearest-rank example
        ([15, 20, 35, 40, 50], 40, 20),
        ([15, 20, 35, 40, 50], 50, 35),
        ([15, 20, 35, 40, 50], 100, 50),
        ([3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 90, 16),
        ([3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 50, 8),
        ([42], 90, 42),
        ([], 50, None),
    ],
)
def test_percentiles_are_nearest_rank(
    values: list[float], q: float, expected: float | None
) -> None:
    assert percentile(values, q) == expected


@given(st.lists(st.floats(0, 1e6), min_size=1), st.floats(0.1, 100))
def test_a_percentile_is_always_one_of_the_values(values: list[float], q: float) -> None:
    assert percentile(values, q) in values


def inquiry(
    status: str,
    response: float | None = None,
    *,
    opened_hours_ago: float = 30,
    breached: bool = False,
) -> dict[str, Any]:
    opened = NOW - timedelta(hours=opened_hours_ago)
    return {
        "status": status,
        "response_seconds": response,
        "business_seconds": None,
        "breached": breached,
        "clamped": False,
        "opened_at": opened,
        "due_at": opened + timedelta(hours=24),
    }


def test_inquiry_figures_of_a_hand_built_day() -> None:
    period = [
        inquiry("answered", 60),
        inquiry("answered", 600),
        inquiry("answered", 90_000, breached=True),
        inquiry("open", opened_hours_ago=30),  # past its 24 h target
        inquiry("open", opened_hours_ago=2),  # not yet due
        inquiry("missed", breached=False),
    ]
    open_now = [r for r in period if r["status"] == "open"]
    figures = summarize_inquiries(period, open_now, NOW)
    assert (figures.received, figures.answered, figures.within_target) == (6, 3, 2)
    assert figures.decided == 5  # 3 answered, 1 open past target, 1 missed
    assert figures.within_target_ratio == pytest.approx(2 / 5)
    assert (figures.median_seconds, figures.p90_seconds) == (600, 90_000)
    assert (figures.breached, figures.missed) == (2, 1)
    assert (figures.open_now, figures.open_breached_now) == (2, 1)
    assert figures.oldest_open_age_seconds == 30 * 3600


def test_a_day_with_nothing_has_no_percentiles_rather_than_zeros() -> None:
    figures = summarize_inquiries([], [], NOW)
    assert figures.median_seconds is None and figures.within_target_ratio is None


def call(outcome: str, wait: float) -> dict[str, Any]:
    return {"outcome": outcome, "wait_seconds": wait, "entered_at": NOW - timedelta(hours=1)}


def test_call_figures_count_hold_breaches_of_five_and_thirteen_minutes() -> None:
    period = [
        call("answered", 10),
        call("answered", 240),
        call("answered", 400),  # over 5 minutes
        call("transferred", 15),
        call("abandoned", 840),  # over 13 minutes: counts in both
        call("abandoned", 5),
        call("timeout", 900),
    ]
    waiting = [{"entered_at": NOW - timedelta(minutes=6), "outcome": "waiting"}]
    figures = summarize_calls(period, waiting, NOW, BUILTIN_TARGETS)
    assert (figures.total, figures.answered, figures.abandoned, figures.unanswered) == (7, 4, 2, 3)
    assert (figures.over_warn, figures.over_max) == (3, 2)
    assert figures.longest_wait_seconds == 900
    assert figures.service_level == pytest.approx(2 / 7)  # answered within 20 s: 10 s and 15 s
    assert figures.abandoned_ratio == pytest.approx(2 / 7)
    assert (figures.waiting_now, figures.longest_waiting_now_seconds) == (1, 360)


def test_service_level_can_leave_quick_abandons_out() -> None:
    targets = BUILTIN_TARGETS.__class__(**{**BUILTIN_TARGETS.__dict__, "abandons_count": False})
    period = [call("answered", 10), call("answered", 60), call("abandoned", 5)]
    assert summarize_calls(period, [], NOW, targets).service_level == pytest.approx(1 / 2)
    assert summarize_calls(period, [], NOW, BUILTIN_TARGETS).service_level == pytest.approx(1 / 3)


def test_calls_the_system_ended_are_listed_by_destination_most_first_and_bounded() -> None:
    """Nine calls the system ended: 4 at EndCall, 2 at ivr-closed, 1 each at `a` and `b`, 1
    stored with no destination. Listed most first (ties by name, where the not-recorded entry
    sorts first), the first three, and the rest (2 calls) together as one OTHER entry: a
    digest line stays short however many destinations a dialplan has."""
    places = ["EndCall"] * 4 + ["ivr-closed"] * 2 + ["a", "b", None]
    assert ended_at(places) == (
        EndedAt("EndCall", 4),
        EndedAt("ivr-closed", 2),
        EndedAt(NOT_RECORDED, 1),
        EndedAt(OTHER, 2),
    )
    assert ended_at(["EndCall", "ivr-closed", "EndCall"]) == (
        EndedAt("EndCall", 2),
        EndedAt("ivr-closed", 1),
    )
