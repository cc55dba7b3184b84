"""Alert state and the notices it owes: pure functions of (state rows, findings, now, settings).

Each (rule, subject) has one stored state, `ok` or `firing`. An evaluation *diffs* the stored
states against the rules' findings: a finding whose state is not firing starts an episode
(`started_at`), a firing state with no finding ends it (`resolved_at`), the rest keep firing.

Notifying is separate from changing state: a state row *owes* a notice when

- `firing`: it is firing and nobody has been told of this episode yet;
- `repeat`: it is firing, was told, and `alerts.repeat` has passed since the last notice;
- `resolved`: it is back to ok, its firing was told, and its end was not.

So a notice that cannot go out now is simply still owed at the next evaluation. That is how
quiet hours work: outside the open hours of `alerts.quiet_hours.calendar`, notices of the chosen
severities are *held*; at opening, whatever still fires is told (with the time it started) and
what fired and ended while closed is never told at all. A warning whose critical twin fired in
the same episode (hold_warn under hold_max, reply_due_soon under reply_overdue) is *covered*:
the critical alert's own notices tell the story, so the warning's are marked done unsent; so are
those of a source that was disabled or removed from the configuration.

`monitor.publish.alerts.run` writes the same steps to the database, each guarded by the old values
(compare-and-set), so two instances never make the same transition or claim the same notice.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from monitor.config import Settings
from monitor.measure.calendars import BusinessCalendar
from monitor.publish.alerts.rules import RULES, Finding

OK, FIRING = "ok", "firing"
Key = tuple[str, str]  # (rule, subject)


@dataclass(frozen=True)
class State:
    """One alert_state row."""

    id: int | None
    rule: str
    subject: str
    source: str | None
    severity: str
    state: str
    value: float | None
    threshold: float | None
    started_at: datetime | None
    resolved_at: datetime | None
    last_notified_at: datetime | None
    evaluated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> State:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    @property
    def key(self) -> Key:
        return (self.rule, self.subject)

    @property
    def told(self) -> bool:
        """Someone was told of the current (or last) episode."""
        return (
            self.last_notified_at is not None
            and self.started_at is not None
            and self.last_notified_at >= self.started_at
        )


@dataclass(frozen=True)
class Change:
    kind: Literal["fire", "keep", "resolve"]
    key: Key
    old: State | None  # None: no row yet
    finding: Finding | None  # None for resolve


# The rule about reading itself: it is evaluated whether or not the source was read.
READING_RULES = ("source_stale",)


def diff(
    states: Mapping[Key, State], findings: Sequence[Finding], unread: Collection[str] = ()
) -> list[Change]:
    """The transitions that bring `states` in line with `findings`, sorted by key (so that
    instances writing them lock rows in the same order).

    `unread` names the sources not read since this process started: what is stored of them may
    be hours old, so their alerts (but `source_stale`) keep the state they had. Nothing of
    theirs starts firing on old rows (a caller "waiting" since before a restart) and nothing
    resolves (no one can tell yet that the caller got through)."""

    def held(source: str | None, rule: str) -> bool:
        return source in unread and rule not in READING_RULES

    found = {(f.rule, f.subject): f for f in findings if not held(f.source, f.rule)}
    changes = []
    for key, finding in found.items():
        old = states.get(key)
        kind: Literal["fire", "keep"] = "keep" if old and old.state == FIRING else "fire"
        changes.append(Change(kind, key, old, finding))
    for key, old in states.items():
        if old.state == FIRING and key not in found and not held(old.source, old.rule):
            changes.append(Change("resolve", key, old, None))
    return sorted(changes, key=lambda c: c.key)


def advance(
    states: Mapping[Key, State], changes: Sequence[Change], now: datetime
) -> dict[Key, State]:
    """The states after `changes` (what `monitor.publish.alerts.run.apply_changes` writes)."""
    after = dict(states)
    for change in changes:
        after[change.key] = after_change(change, now)
    return after


def after_change(change: Change, now: datetime) -> State:
    """The state a change leaves behind."""
    old, finding = change.old, change.finding
    if change.kind == "resolve":
        assert old is not None
        return replace(old, state=OK, resolved_at=now, evaluated_at=now)
    assert finding is not None
    started = old.started_at if change.kind == "keep" and old else now
    return State(
        id=old.id if old else None,
        rule=finding.rule,
        subject=finding.subject,
        source=finding.source,
        severity=finding.severity,
        state=FIRING,
        value=finding.value,
        threshold=finding.threshold,
        started_at=started,
        resolved_at=old.resolved_at if change.kind == "keep" and old else None,
        last_notified_at=old.last_notified_at if old else None,
        evaluated_at=now,
    )


Event = Literal["firing", "repeat", "resolved"]


@dataclass(frozen=True)
class Notice:
    event: Event
    state: State


def owed(state: State, now: datetime, settings: Settings) -> Event | None:
    """The notice `state` owes at `now`, if any (see the module docstring)."""
    repeat = settings.file.alerts.repeat
    if state.state == FIRING:
        if not state.told:
            return "firing"
        assert state.last_notified_at is not None
        if repeat and now - state.last_notified_at >= repeat:
            return "repeat"
        return None
    if state.told and state.resolved_at is not None:
        assert state.last_notified_at is not None
        if state.last_notified_at < state.resolved_at:
            return "resolved"
    return None


def covered(state: State, states: Mapping[Key, State]) -> bool:
    """The rule's critical twin fired for the same subject during this state's episode."""
    rule = RULES.get(state.rule)
    twin = states.get((rule.superseded_by, state.subject)) if rule and rule.superseded_by else None
    if twin is None or twin.started_at is None or state.started_at is None:
        return False
    if twin.started_at < state.started_at:
        return False
    return (
        state.state == FIRING or state.resolved_at is None or twin.started_at <= state.resolved_at
    )


def quiet_severities(settings: Settings, now: datetime) -> frozenset[str]:
    """The severities whose notices are held at `now` (none during the calendar's hours)."""
    quiet = settings.file.alerts.quiet_hours
    if quiet is None:
        return frozenset()
    calendar = BusinessCalendar.from_settings(settings.file.calendars[quiet.calendar])
    return frozenset() if calendar.is_open(now) else frozenset(quiet.severities)


@dataclass(frozen=True)
class Plan:
    """What the owed notices come to at one moment."""

    send: list[Notice]
    held: list[Notice]  # quiet hours: owed again at the next evaluation
    covered: list[Notice]  # told by the critical twin, or unwatched: marked done unsent


def notices(states: Mapping[Key, State], now: datetime, settings: Settings) -> Plan:
    plan = Plan([], [], [])
    held_severities = quiet_severities(settings, now)
    # A source disabled or removed from the config stops being alerted on: its alerts resolve
    # unannounced ("is read again" would be untrue).
    watched = {s.name for s in settings.sources if s.enabled}
    for key in sorted(states):
        state = states[key]
        event = owed(state, now, settings)
        if event is None:
            continue
        notice = Notice(event, state)
        if covered(state, states) or state.source not in watched:
            plan.covered.append(notice)
        elif state.severity in held_severities:
            plan.held.append(notice)
        else:
            plan.send.append(notice)
    return plan
