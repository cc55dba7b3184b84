"""The alert rules and the notices their states owe: pure functions, no database, pinned time."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.publish.alerts.rules import AlertInputs, Finding, evaluate
from monitor.publish.alerts.state import State, advance, diff, notices

MIN = timedelta(minutes=1)


def settings(*, disabled: tuple[str, ...] = (), **alerts: Any) -> Settings:
    config = settings_from_mapping(
        {
            "timezone": "Europe/London",
            "calendars": {
                "office": {"timezone": "Europe/London", "hours": {"fri": ["09:00-17:00"]}}
            },
            "sources": [
                {"name": "phones", "kind": "asterisk_queue_log", "path": "q", "every": "1m"},
                {
                    "name": "sales",
                    "kind": "asterisk_queue_log",
                    "path": "s",
                    "every": "5m",
                    "targets": {"hold_warn": "2m", "hold_max": "4m"},
                },
                {
                    "name": "chat",
                    "kind": "chat_jsonl",
                    "path": "c",
                    "targets": {"reply_within": "1h"},
                },
                {"name": "old", "kind": "chat_jsonl", "path": "o", "enabled": False},
            ],
            "alerts": alerts,
        },
        Path("."),
    )
    sources = tuple(
        s.model_copy(update={"enabled": s.enabled and s.name not in disabled})
        for s in config.sources
    )
    return Settings(file=config.file, sources=sources, base_dir=config.base_dir)


def waiting(source: str, minutes: float, now: datetime, name: str = "c1") -> dict[str, Any]:
    return {"source": source, "external_id": name, "entered_at": now - minutes * MIN}


def fired(
    inputs: AlertInputs, now: datetime, config: Settings | None = None
) -> list[tuple[str, str]]:
    return [(f.rule, f.subject) for f in evaluate(inputs, now, config or settings())]


def test_a_waiting_caller_fires_hold_warn_then_hold_max_while_still_waiting(now: datetime) -> None:
    assert fired(AlertInputs(waiting=[waiting("phones", 4, now)]), now) == []
    assert fired(AlertInputs(waiting=[waiting("phones", 6, now)]), now) == [
        ("hold_warn", "phones/c1")
    ]
    assert fired(AlertInputs(waiting=[waiting("phones", 14, now)]), now) == [
        ("hold_max", "phones/c1"),
        ("hold_warn", "phones/c1"),
    ]


def test_a_source_s_own_hold_thresholds_are_honoured(now: datetime) -> None:
    (finding,) = evaluate(AlertInputs(waiting=[waiting("sales", 3, now)]), now, settings())
    assert (finding.rule, finding.value, finding.threshold) == ("hold_warn", 180.0, 120.0)


def test_disabled_and_unconfigured_sources_are_not_alerted_on(now: datetime) -> None:
    rows = [waiting("gone", 60, now)]
    inquiries = [{"source": "old", "conversation": "x", "opened_at": now - 9 * 60 * MIN}]
    inquiries[0]["due_at"] = now - MIN
    assert fired(AlertInputs(waiting=rows, open_inquiries=inquiries), now) == []


def call(
    left_minutes_ago: float, wait_minutes: float, now: datetime, queue: str = "q"
) -> dict[str, Any]:
    left = now - left_minutes_ago * MIN
    return {
        "source": "phones",
        "queue": queue,
        "outcome": "answered",
        "entered_at": left - wait_minutes * MIN,
        "answered_at": left,
        "left_at": left,
        "wait_seconds": wait_minutes * 60,
    }


def test_long_holds_fire_when_the_share_over_hold_warn_passes_the_ratio(now: datetime) -> None:
    calls = [call(5, 6, now), call(6, 7, now), call(7, 1, now), call(8, 1, now), call(9, 1, now)]
    (finding,) = evaluate(AlertInputs(recent_calls=calls), now, settings())
    assert (finding.rule, finding.subject, finding.value) == ("long_holds", "phones/q", 0.4)
    assert finding.threshold == 0.25


def test_long_holds_need_enough_calls_in_the_window(now: datetime) -> None:
    calls = [call(5, 6, now), call(6, 7, now), call(7, 1, now), call(8, 1, now)]
    assert fired(AlertInputs(recent_calls=calls), now) == []
    calls.append(call(45, 1, now))  # left before the 30-minute window
    assert fired(AlertInputs(recent_calls=calls), now) == []
    assert fired(AlertInputs(recent_calls=calls), now, settings(long_holds_min_calls=4)) == [
        ("long_holds", "phones/q")
    ]


def inquiry(opened_minutes_ago: float, now: datetime, target_minutes: float = 60) -> dict[str, Any]:
    opened = now - opened_minutes_ago * MIN
    return {
        "source": "chat",
        "conversation": "conv-1",
        "opened_at": opened,
        "due_at": opened + target_minutes * MIN,
    }


def test_an_open_inquiry_is_due_soon_within_a_quarter_of_its_target_then_overdue(
    now: datetime,
) -> None:
    assert fired(AlertInputs(open_inquiries=[inquiry(44, now)]), now) == []
    (soon,) = evaluate(AlertInputs(open_inquiries=[inquiry(46, now)]), now, settings())
    assert (soon.rule, soon.severity, soon.value, soon.threshold) == (
        "reply_due_soon",
        "warning",
        14 * 60,
        15 * 60,
    )
    (late,) = evaluate(AlertInputs(open_inquiries=[inquiry(61, now)]), now, settings())
    assert (late.rule, late.severity, late.value, late.threshold) == (
        "reply_overdue",
        "critical",
        61 * 60,
        3600,
    )


def test_the_due_soon_margin_can_be_set(now: datetime) -> None:
    inputs = AlertInputs(open_inquiries=[inquiry(40, now)])
    assert fired(inputs, now, settings(due_soon="30m")) == [("reply_due_soon", "chat/conv-1")]


def health(source: str, now: datetime, **row: Any) -> dict[str, Any]:
    return {"source": source, "last_success_at": None, "consecutive_failures": 0, **row}


@pytest.mark.parametrize(
    ("source", "row", "stale"),
    [
        ("phones", {"last_success_at": -4}, False),  # every 1m: 3 intervals, at least 5 min
        ("phones", {"last_success_at": -6}, True),
        ("sales", {"last_success_at": -14}, False),  # every 5m: 3 intervals = 15 min
        ("sales", {"last_success_at": -16}, True),
        ("phones", {"consecutive_failures": 4}, False),  # never read: 4 failed polls = 4 min
        ("phones", {"consecutive_failures": 5}, True),
        ("old", {"last_success_at": -600}, False),  # disabled
    ],
)
def test_a_source_is_stale_after_its_intervals_and_at_least_stale_min(
    now: datetime, source: str, row: dict[str, Any], stale: bool
) -> None:
    if "last_success_at" in row:
        row = {**row, "last_success_at": now + row["last_success_at"] * MIN}
    inputs = AlertInputs(source_states=[health(source, now, **row)])
    assert fired(inputs, now) == ([("source_stale", source)] if stale else [])


# --- state and notices -------------------------------------------------------------------------


def step(
    states: dict[tuple[str, str], State], findings: list[Finding], now: datetime, config: Settings
) -> tuple[dict[tuple[str, str], State], list[tuple[str, str, str]]]:
    """One evaluation in memory: advance the states, "send" what is owed, mark it told."""
    states = advance(states, diff(states, findings), now)
    plan = notices(states, now, config)
    for notice in plan.send + plan.covered:
        states[notice.state.key] = State(**{**notice.state.__dict__, "last_notified_at": now})
    return states, [(n.event, n.state.rule, n.state.severity) for n in plan.send]


def hold(rule: str, wait: float) -> Finding:
    severity = "critical" if rule == "hold_max" else "warning"
    return Finding(rule, "phones/c1", "phones", severity, wait, 300 if rule == "hold_warn" else 780)


def test_warning_then_critical_then_one_resolve_for_a_caller(now: datetime) -> None:
    config = settings()
    states: dict[tuple[str, str], State] = {}
    sent = []
    script = [[], [hold("hold_warn", 360)], [hold("hold_warn", 840), hold("hold_max", 840)], []]
    for minute, findings in zip([4, 6, 14, 15], script, strict=True):
        states, told = step(states, findings, now + minute * MIN, config)
        sent += told
    states, again = step(states, [], now + 16 * MIN, config)
    assert sent == [
        ("firing", "hold_warn", "warning"),
        ("firing", "hold_max", "critical"),
        ("resolved", "hold_max", "critical"),
    ]
    assert again == []


def test_a_caller_first_seen_past_hold_max_gets_only_the_critical_notices(now: datetime) -> None:
    config = settings()
    states, first = step({}, [hold("hold_warn", 900), hold("hold_max", 900)], now, config)
    states, last = step(states, [], now + MIN, config)
    assert first + last == [
        ("firing", "hold_max", "critical"),
        ("resolved", "hold_max", "critical"),
    ]


def test_repeat_notifies_again_while_firing(now: datetime) -> None:
    config = settings(repeat="30m")
    stale = Finding("source_stale", "phones", "phones", "warning", 600, 300)
    states: dict[tuple[str, str], State] = {}
    sent = []
    for minute in (0, 10, 30, 40, 60):
        states, told = step(states, [stale], now + minute * MIN, config)
        sent.append([event for event, _, _ in told])
    assert sent == [["firing"], [], ["repeat"], [], ["repeat"]]


def test_quiet_hours_hold_warnings_until_opening_and_drop_what_ended_meanwhile(
    now: datetime,
) -> None:
    config = settings(quiet_hours={"calendar": "office", "severities": ["warning"]})
    friday_evening = now.replace(hour=18)  # 2026-11-20 is a Friday; the office closes at 17:00
    stale = Finding("source_stale", "phones", "phones", "warning", 600, 300)
    blip = Finding("source_stale", "sales", "sales", "warning", 1000, 900)
    critical = hold("hold_max", 900)
    states, told = step({}, [stale, blip, critical], friday_evening, config)
    assert told == [("firing", "hold_max", "critical")]  # critical is not held
    states, told = step(states, [stale], friday_evening + 10 * MIN, config)
    assert told == [("resolved", "hold_max", "critical")]  # the blip ended unseen
    next_friday = friday_evening + timedelta(days=7, hours=-8)  # 10:00, open
    states, told = step(states, [stale], next_friday, config)
    assert told == [("firing", "source_stale", "warning")]
    assert states[("source_stale", "phones")].started_at == friday_evening
    assert step(states, [stale], next_friday + MIN, config)[1] == []


def test_disabling_a_source_resolves_its_alerts_without_a_notice(now: datetime) -> None:
    stale = Finding("source_stale", "sales", "sales", "warning", 1000, 900)
    states, told = step({}, [stale], now, settings())
    assert told == [("firing", "source_stale", "warning")]
    states, told = step(states, [], now + MIN, settings(disabled=("sales",)))
    assert told == [] and states[("source_stale", "sales")].state == "ok"
