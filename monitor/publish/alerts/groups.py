"""Grouping the notices of one evaluation into notifications, as Alertmanager's `group_by` does.

A backlog fires many alerts at once: 200 overdue inquiries at the first evaluation, a queue full
of callers over `hold_warn`. One notification each would bury the one that matters, so the
notices claimed in one evaluation go out as one notification per (rule, event) to each
notifier: every rule has one severity and one unit, so a group's lines compare like with like
(longest wait first), and the firing, still-firing (`repeat`) and resolved notices of a rule
stay apart, since they ask different things of the reader.

A group of one is the single notice exactly as `alert_notices.build` makes it, plus `count`
and `alerts`; a bigger group says how many and lists the worst `LISTED` in its text (the e-mail
shows the same), and carries the worst `CARRIED` as objects in `alerts` for machines (the
whole body is stored with its delivery, so it stays a bounded size however large the backlog).
Pure functions of (notices, their bodies, now).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.publish.alerts.notices import iso, label, slack_escape
from monitor.publish.alerts.rules import PER_INQUIRY, is_source_wide
from monitor.publish.alerts.state import Notice

LISTED = 20  # alerts named in a group's text and e-mail, worst first; "… and N more"
CARRIED = 100  # alert objects in a group's JSON body, worst first; `count` is the total
SEVERITY_RANK = {"critical": 0, "warning": 1}

# A group's summary, by rule: (what a subject is, plural; firing; resolved).
PHRASES = {
    "hold_warn": (
        "callers",
        "are waiting longer than hold_warn",
        "who waited longer than hold_warn have left the queue",
    ),
    "hold_max": (
        "callers",
        "are waiting longer than hold_max",
        "who waited longer than hold_max have left the queue",
    ),
    "long_holds": ("queues", "have too many long holds", "are back under the long-holds limit"),
    "reply_due_soon": (
        "inquiries",
        "will breach their reply target soon",
        "are no longer due soon",
    ),
    "reply_overdue": ("inquiries", "are past their reply target", "are no longer overdue"),
    "source_stale": ("sources", "have not been read successfully", "are read again"),
}
# The fields that describe one alert, in a group's `alerts` list.
MEMBER_FIELDS = (
    "rule",
    "severity",
    "status",
    "source",
    "subject",
    "value",
    "threshold",
    "unit",
    "started_at",
    "resolved_at",
    "summary",
    "details",
)


def group(notices: Sequence[Notice]) -> list[list[Notice]]:
    """The notices by (rule, event), groups and members in key order (so instances claiming
    them lock rows in one order). A reply rule's source-wide alerts (a flood each) make a
    group of their own: their count is of sources, not of inquiries."""
    groups: dict[tuple[str, str, bool], list[Notice]] = {}
    for notice in sorted(notices, key=lambda n: n.state.key):
        state = notice.state
        key = (state.rule, notice.event, is_source_wide(state.rule, state.subject))
        groups.setdefault(key, []).append(notice)
    return [groups[key] for key in sorted(groups)]


def group_key(notices: Sequence[Notice], now: datetime, index: int) -> str:
    """The delivery key of a group for `alerts.notify[index]`: unique per evaluation and set of
    alert episodes, so a retry or another instance can never insert it twice."""
    rule, event = notices[0].state.rule, notices[0].event
    episodes = sorted(f"{n.state.subject}@{iso(n.state.started_at)}" for n in notices)
    digest = hashlib.sha256("\n".join(episodes).encode()).hexdigest()[:16]
    return f"alert:{rule}:{event}:{iso(now)}:{digest}:notify[{index}]"


def worst_first(body: dict[str, Any]) -> tuple[int, float, str]:
    """Sort key: the longest wait or age, the largest share, the soonest breach first; a source
    never read comes before one read long ago."""
    value = body["value"]
    if value is None:
        return (0 if body["rule"] == "source_stale" else 2, 0.0, body["subject"])
    soonest = body["rule"] == "reply_due_soon" and body["unit"] == "seconds"
    return (1, value if soonest else -value, body["subject"])


def combine(
    notices: Sequence[Notice], bodies: Sequence[dict[str, Any]], now: datetime
) -> dict[str, Any]:
    """One notification for the notices of one group (`bodies[i]` is `build(notices[i])`)."""
    members = sorted(bodies, key=worst_first)
    alerts = [{name: body[name] for name in MEMBER_FIELDS} for body in members[:CARRIED]]
    if len(members) == 1:
        return {**members[0], "count": 1, "alerts": alerts}
    first = notices[0]
    rule, event = first.state.rule, first.event

    def common(name: str) -> Any:
        values = {body[name] for body in members}
        return values.pop() if len(values) == 1 else None

    sources = sorted({body["source"] for body in members if body["source"]})
    resolved = [body["resolved_at"] for body in members if body["resolved_at"]]
    wide = is_source_wide(rule, first.state.subject)
    summary = summarize(rule, event, len(members), wide=wide)
    lines = [f"[{label(first)}] {slack_escape(summary)}"]
    lines += [f"• {slack_escape(body['summary'])}" for body in members[:LISTED]]
    if len(members) > LISTED:
        lines.append(f"… and {len(members) - LISTED} more")
    return {
        "rule": rule,
        "severity": min((b["severity"] for b in members), key=lambda s: SEVERITY_RANK.get(s, 9)),
        "status": "resolved" if event == "resolved" else "firing",
        "repeat": event == "repeat",
        "source": common("source"),
        "subject": None,
        "value": None,
        "threshold": common("threshold"),
        "unit": common("unit"),
        "started_at": min((b["started_at"] for b in members if b["started_at"]), default=None),
        "resolved_at": max(resolved) if event == "resolved" and resolved else None,
        "notified_at": iso(now),
        "summary": summary,
        "details": {"sources": sources},
        "count": len(members),
        "alerts": alerts,
        # Slack and Mattermost render the line breaks; a chat reader sees the worst at once.
        "text": "\n".join(lines),
    }


def summarize(rule: str, event: str, count: int, *, wide: bool = False) -> str:
    """`19 inquiries are past their reply target`; with `wide`, of source-wide alerts:
    `2 sources have more than 200 inquiries past their reply target`."""
    if wide:
        what = "past their reply target" if rule == "reply_overdue" else "due soon"
        if event == "resolved":
            return f"{count} sources are down to {PER_INQUIRY // 2} or fewer inquiries {what}"
        return f"{count} sources have more than {PER_INQUIRY} inquiries {what}"
    if rule not in PHRASES:
        return f"{rule} {'resolved' if event == 'resolved' else 'firing'} for {count} subjects"
    noun, firing, resolved = PHRASES[rule]
    return f"{count} {noun} {resolved if event == 'resolved' else firing}"
