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
| reply_due_soon | warning | one open inquiry, or one source (a flood) | SupportRepliesDueSoon |
| reply_overdue | critical | one open inquiry, or one source (a flood) | SupportRepliesOverdue |
| source_stale | warning | one source | SupportSourceStale / SupportSourceNeverRead |

Disabled sources and sources no longer configured are never alerted on: their rows are history.

A flood of inquiries is one alert: while more than `PER_INQUIRY` of a source's open inquiries
are overdue (or due soon), the rule fires once for the source (subject: the source's name, value:
how many), as its Prometheus twin does per source and channel, instead of once per inquiry. A
support lead with 84,000 unreturned callbacks needs "84,000 callbacks are overdue, the oldest
since March", not 84,000 alerts that start, and end, one by one; and the evaluation then reads
the counts (monitor.store.backlog), not the backlog. It stays one alert until the count is down
to half the limit (`flooded`), so a backlog hovering at the limit does not switch back and
forth; while a source's replies are overdue by the flood, its due-soon alerts are not evaluated
(its customers are late already: warning of the next one adds nothing to read).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
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
# The most open inquiries of one source alerted on one by one, per rule (see the docstring).
PER_INQUIRY = 200
INQUIRY_RULES = ("reply_due_soon", "reply_overdue")


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
    # Open inquiries with a due time: at least those due by now + the source's margin, for
    # the (rule, source) pairs not flooded (monitor.publish.alerts.run reads no others).
    open_inquiries: Sequence[Row] = ()
    source_states: Sequence[Row] = ()  # source_state rows (last success, failures)
    # How many of a source's open inquiries each reply rule finds, by (rule, source), and
    # the pairs alerted on as one (`flooded`); empty: every inquiry alone.
    inquiry_counts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    flooded: Collection[tuple[str, str]] = ()


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


def is_source_wide(rule: str, subject: str) -> bool:
    """A reply rule's alert for a whole source (a flood): its subject is the source's name,
    which holds no "/", where one inquiry's is "source/conversation"."""
    return rule in INQUIRY_RULES and "/" not in subject


def flooded(
    counts: Mapping[tuple[str, str], int],
    firing: Collection[tuple[str, str]],
    limit: int = PER_INQUIRY,
) -> frozenset[tuple[str, str]]:
    """The (rule, source) pairs alerted on as one: more than `limit` inquiries found, or
    more than half of it while the source-wide alert (`firing`) is firing; and the due-soon
    rule of a source flooded with overdue inquiries (not evaluated: see the docstring)."""
    over = {
        key
        for key, count in counts.items()
        if count > limit or (key in firing and count > limit // 2)
    }
    late = {source for rule, source in over if rule == "reply_overdue"}
    return frozenset(over | {("reply_due_soon", source) for source in late})


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


def _flood(rule: str, severity: str, inputs: AlertInputs, ctx: _Context) -> Iterator[Finding]:
    """The source-wide alerts of `rule`: value, how many inquiries; threshold, the limit."""
    for source in sorted(s for r, s in inputs.flooded if r == rule and s in ctx.sources):
        if rule == "reply_due_soon" and ("reply_overdue", source) in inputs.flooded:
            continue  # late already: not evaluated
        count = inputs.inquiry_counts.get((rule, source), 0)
        if count > 0:
            yield Finding(rule, source, source, severity, count, PER_INQUIRY)


def reply_due_soon(inputs: AlertInputs, now: datetime, ctx: _Context) -> Iterator[Finding]:
    """An open inquiry that will pass its reply target within the margin."""
    yield from _flood("reply_due_soon", WARNING, inputs, ctx)
    for row in inputs.open_inquiries:
        if row["source"] not in ctx.sources:
            continue
        if ("reply_due_soon", row["source"]) in inputs.flooded:
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
    yield from _flood("reply_overdue", CRITICAL, inputs, ctx)
    for row in inputs.open_inquiries:
        if row["source"] not in ctx.sources or not is_breached_now(row["due_at"], now):
            continue
        if ("reply_overdue", row["source"]) in inputs.flooded:
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
