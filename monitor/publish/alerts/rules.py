"""The built-in alert rules: pure functions of (rows, now, settings).

Each rule yields a `Finding` for every subject that fires at `now`; a subject it does not yield
is not firing. The numbers come from the metrics engine (`summaries`, `inquiries`), read from the
same rows as `/metrics`, `report` and the digest, and the defaults match `prometheus/rules.yml`,
so a built-in alert and its Prometheus twin agree:

| rule | severity | subject | Prometheus alert |
|---|---|---|---|
| hold_warn | warning | one waiting caller | SupportCallerWaitingOverHoldWarn |
| hold_max | critical | one waiting caller | SupportCallerWaitingOverHoldMax |
| long_holds | warning | one queue | SupportLongHoldsRising |
| reply_due_soon | warning | one open inquiry | SupportRepliesDueSoon |
| reply_overdue | critical | one open inquiry | SupportRepliesOverdue |
| source_stale | warning | one source | SupportSourceStale / SupportSourceNeverRead |

Disabled sources and sources no longer configured are never alerted on: their rows are history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.config import ResolvedTargets, Settings, SourceSettings
from monitor.measure.inquiries import is_breached_now, is_due_soon
from monitor.measure.summaries import summarize_calls, waiting_seconds
from monitor.store.health import health_of

Row = Mapping[Any, Any]
WARNING, CRITICAL = "warning", "critical"
# A call that left the queue inside the long-holds window entered it at most this long before
# the window (queue_log's `unknown_after` caps a stay at hours), so the query can use the
# (source, entered_at) index instead of scanning every call.
LONGEST_STAY = timedelta(hours=12)


@dataclass(frozen=True)
class Finding:
    """One subject firing one rule at the time of evaluation."""

    rule: str
    subject: str
    source: str
    severity: str
    value: float | None  # seconds, or a share for long_holds
    threshold: float | None


@dataclass(frozen=True)
class AlertInputs:
    """The rows the rules read (monitor.publish.alerts.run loads them)."""

    waiting: Sequence[Row] = ()  # calls with outcome `waiting`
    recent_calls: Sequence[Row] = ()  # calls that entered after now - window - LONGEST_STAY
    open_inquiries: Sequence[Row] = ()  # inquiries with status `open`
    source_states: Sequence[Row] = ()  # source_state rows (last success, failures)


@dataclass
class _Context:
    """Per-evaluation lookups shared by the rules."""

    settings: Settings
    sources: dict[str, SourceSettings]
    _targets: dict[str, ResolvedTargets] = field(default_factory=dict)

    def targets(self, name: str) -> ResolvedTargets:
        if name not in self._targets:
            self._targets[name] = self.settings.targets_for(self.sources[name])
        return self._targets[name]


Check = Callable[[AlertInputs, datetime, _Context], Iterator[Finding]]


def call_subject(row: Row) -> str:
    """A call's identity (source names cannot contain "/", so the first "/" splits it)."""
    return f"{row['source']}/{row['external_id']}"


def inquiry_subject(row: Row) -> str:
    """An open inquiry's identity: a conversation has at most one open inquiry at a time."""
    return f"{row['source']}/{row['conversation']}"


def split_subject(subject: str) -> tuple[str, str]:
    source, _, rest = subject.partition("/")
    return source, rest


def left_queue_at(call: Row) -> datetime:
    """When a finished call left the queue (entered + wait when the log gave no end time)."""
    left: datetime | None = call["left_at"] or call["answered_at"]
    if left is None:
        left = call["entered_at"] + timedelta(seconds=float(call["wait_seconds"] or 0.0))
    return left


def _waiting_over(rule: str, severity: str, limit: Callable[[ResolvedTargets], timedelta]) -> Check:
    """A caller still in the queue whose current wait has passed the source's threshold: a
    waiting caller breaches the moment their wait passes it, so this fires while they wait, not
    after they hang up."""

    def check(inputs: AlertInputs, now: datetime, ctx: _Context) -> Iterator[Finding]:
        for call in inputs.waiting:
            if call["source"] not in ctx.sources:
                continue
            threshold = limit(ctx.targets(call["source"])).total_seconds()
            wait = waiting_seconds(call, now)
            if wait > threshold:
                yield Finding(rule, call_subject(call), call["source"], severity, wait, threshold)

    return check


def long_holds(inputs: AlertInputs, now: datetime, ctx: _Context) -> Iterator[Finding]:
    """More than `long_holds_ratio` of a queue's calls that left it in the last
    `long_holds_window` waited longer than hold_warn, with at least `long_holds_min_calls`."""
    alerts = ctx.settings.file.alerts
    since = now - alerts.long_holds_window
    queues: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for call in inputs.recent_calls:
        if call["outcome"] == "waiting" or call["source"] not in ctx.sources:
            continue
        if since < left_queue_at(call) <= now:
            queues[(call["source"], call["queue"])].append(call)
    for (source, queue), calls in sorted(queues.items()):
        figures = summarize_calls(calls, (), now, ctx.targets(source))
        if figures.total < alerts.long_holds_min_calls:
            continue
        share = figures.over_warn / figures.total
        if share > alerts.long_holds_ratio:
            subject = f"{source}/{queue}"
            yield Finding("long_holds", subject, source, WARNING, share, alerts.long_holds_ratio)


def due_soon_margin(settings: Settings, targets: ResolvedTargets) -> timedelta:
    """`alerts.due_soon`, or a quarter of the source's reply target (as rules.yml)."""
    return settings.file.alerts.due_soon or targets.reply_within / 4


def reply_due_soon(inputs: AlertInputs, now: datetime, ctx: _Context) -> Iterator[Finding]:
    """An open inquiry that will pass its reply target within the margin."""
    for row in inputs.open_inquiries:
        if row["source"] not in ctx.sources:
            continue
        margin = due_soon_margin(ctx.settings, ctx.targets(row["source"]))
        if is_due_soon(row["due_at"], now, margin):
            left = (row["due_at"] - now).total_seconds()
            subject = inquiry_subject(row)
            yield Finding(
                "reply_due_soon", subject, row["source"], WARNING, left, margin.total_seconds()
            )


def reply_overdue(inputs: AlertInputs, now: datetime, ctx: _Context) -> Iterator[Finding]:
    """An open inquiry already past its reply target; the value is its age."""
    for row in inputs.open_inquiries:
        if row["source"] not in ctx.sources or not is_breached_now(row["due_at"], now):
            continue
        age = (now - row["opened_at"]).total_seconds()
        target = ctx.targets(row["source"]).reply_within.total_seconds()
        yield Finding("reply_overdue", inquiry_subject(row), row["source"], CRITICAL, age, target)


def source_stale(inputs: AlertInputs, now: datetime, ctx: _Context) -> Iterator[Finding]:
    """No successful poll for `stale_after`; a source never read successfully is stale once it
    has failed `stale_intervals` polls in a row spanning that long (value: None). What "stale"
    means is monitor.store.health's, the notion the digest and `report` show too."""
    states = {row["source"]: row for row in inputs.source_states}
    for name, source in ctx.sources.items():
        state = states.get(name)
        if state is None:  # never attempted yet (the service is just starting)
            continue
        health = health_of(state, source, ctx.settings, now)
        if health.alarming:
            limit = health.stale_after.total_seconds()
            yield Finding("source_stale", name, name, WARNING, health.unread_for, limit)


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    check: Check
    # The critical rule that supersedes this warning for the same subject: while it fires (or
    # once it has fired in this warning's episode) the warning's own notices are not sent,
    # as Alertmanager inhibits SupportCallerWaitingOverHoldWarn under ...OverHoldMax.
    superseded_by: str | None = None


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "hold_warn",
            WARNING,
            _waiting_over("hold_warn", WARNING, lambda t: t.hold_warn),
            superseded_by="hold_max",
        ),
        Rule("hold_max", CRITICAL, _waiting_over("hold_max", CRITICAL, lambda t: t.hold_max)),
        Rule("long_holds", WARNING, long_holds),
        Rule("reply_due_soon", WARNING, reply_due_soon, superseded_by="reply_overdue"),
        Rule("reply_overdue", CRITICAL, reply_overdue),
        Rule("source_stale", WARNING, source_stale),
    )
}


def evaluate(inputs: AlertInputs, now: datetime, settings: Settings) -> list[Finding]:
    """Every (rule, subject) firing at `now`, in a stable order."""
    ctx = _Context(settings, {s.name: s for s in settings.sources if s.enabled})
    findings = [f for rule in RULES.values() for f in rule.check(inputs, now, ctx)]
    return sorted(findings, key=lambda f: (f.rule, f.subject))
