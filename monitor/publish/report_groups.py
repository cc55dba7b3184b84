"""`report --by`: a period's figures per source, queue, stage, team or agent (or several).

Each group's figures are the metrics engine's (monitor.store.breakdown): inquiries received,
answered, within target (share and count), median and p90 response in calendar and business
time, open now and past target; calls, answered, median and p90 wait, talk time, service
level. A group with no value of a dimension (an inquiry has no queue, an open inquiry no agent,
a source no team) shows `-`. Every value is printed through `monitor.publish.printable`, and
CSV cells cannot start a formula.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from monitor.measure.summaries import CallFigures, InquiryFigures
from monitor.publish.printable import line
from monitor.publish.report import csv_text, table
from monitor.publish.words import duration_text, percent_text
from monitor.store.breakdown import Group

NONE = "-"


def inquiry_values(i: InquiryFigures) -> dict[str, Any]:
    """The inquiry figures of a group, units in the key names, durations in whole seconds."""
    return {
        "inquiries_received": i.received,
        "inquiries_answered": i.answered,
        "inquiries_within_target": i.within_target,
        "inquiries_decided": i.decided,
        "inquiries_within_target_ratio": i.within_target_ratio,
        "inquiries_not_within_target": i.not_within_target,
        "inquiries_missed": i.missed,
        "inquiries_clamped": i.clamped,
        "inquiries_median_seconds": _whole(i.median_seconds),
        "inquiries_p90_seconds": _whole(i.p90_seconds),
        "inquiries_median_business_seconds": _whole(i.median_business_seconds),
        "inquiries_p90_business_seconds": _whole(i.p90_business_seconds),
        "inquiries_open_now": i.open_now,
        "inquiries_open_past_target_now": i.open_breached_now,
        "inquiries_oldest_open_age_seconds": _whole(i.oldest_open_age_seconds),
    }


def call_values(c: CallFigures) -> dict[str, Any]:
    """The call figures of a group, as `inquiry_values`."""
    return {
        "calls_total": c.total,
        "calls_answered": c.answered,
        "calls_unanswered": c.unanswered,
        "calls_unknown": c.unknown,
        "calls_median_wait_seconds": _whole(c.median_wait_seconds),
        "calls_p90_wait_seconds": _whole(c.p90_wait_seconds),
        "calls_over_warn": c.over_warn,
        "calls_over_max": c.over_max,
        "calls_talk_seconds": _whole(c.talk_seconds),
        "calls_median_talk_seconds": _whole(c.median_talk_seconds),
        "calls_answered_within": c.answered_within,
        "calls_offered": c.offered,
        "calls_service_level": c.service_level,
        "calls_waiting_now": c.waiting_now,
    }


def _whole(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds)


def flat_rows(by: Sequence[str], groups: Sequence[Group]) -> list[dict[str, Any]]:
    rows = []
    for group in groups:
        row: dict[str, Any] = dict(zip(by, group.key, strict=True))
        if group.inquiries is not None:
            row.update(inquiry_values(group.inquiries))
        if group.calls is not None:
            row.update(call_values(group.calls))
        rows.append(row)
    return rows


def render_json(by: Sequence[str], groups: Sequence[Group]) -> str:
    return json.dumps({"by": list(by), "groups": flat_rows(by, groups)}, indent=2)


def render_csv(by: Sequence[str], groups: Sequence[Group]) -> str:
    return csv_text(flat_rows(by, groups), by)


INQUIRY_GROUPS = (
    ("inquiries opened in the period", ("received", "answered", "within", "of")),
    ("share", ("in target",)),
    ("response time", ("median", "p90", "median (bus.)", "p90 (bus.)")),
    ("open now", ("open", "late", "oldest")),
)
CALL_GROUPS = (
    ("calls in the period", ("calls", "answered", "> warn", "> max")),
    ("wait", ("median", "p90")),
    ("talk", ("total", "median")),
    ("share", ("service lvl",)),
    ("now", ("waiting",)),
)


def render_table(by: Sequence[str], groups: Sequence[Group], title: str) -> str:
    """An inquiries table and a calls table, a row per group, under `title` (the period)."""
    names = ("", tuple(by))
    inquiry_rows = [
        (*_names(g), *_inquiry_cells(i)) for g in groups if (i := g.inquiries) is not None
    ]
    call_rows = [(*_names(g), *_call_cells(c)) for g in groups if (c := g.calls) is not None]
    parts, grouped = [title], ", ".join(by)
    if inquiry_rows:
        parts.append(f"Inquiries by {grouped}\n" + table((names, *INQUIRY_GROUPS), inquiry_rows))
    if call_rows:
        parts.append(f"Calls by {grouped}\n" + table((names, *CALL_GROUPS), call_rows))
    if not inquiry_rows and not call_rows:
        parts.append("No inquiries or calls in this period.")
    parts.append(
        "within: answered within target (of: those whose verdict is in: answered, missed, or "
        "open past target); late: open past target now. `report --items` lists every inquiry "
        "and call behind these figures."
    )
    return "\n\n".join(parts) + "\n"


def _names(group: Group) -> tuple[str, ...]:
    return tuple(NONE if value is None else line(value, 60) for value in group.key)


def _inquiry_cells(i: InquiryFigures) -> tuple[str, ...]:
    return (
        str(i.received),
        str(i.answered),
        str(i.within_target),
        str(i.decided),
        percent_text(i.within_target_ratio),
        duration_text(i.median_seconds),
        duration_text(i.p90_seconds),
        duration_text(i.median_business_seconds),
        duration_text(i.p90_business_seconds),
        str(i.open_now),
        str(i.open_breached_now),
        duration_text(i.oldest_open_age_seconds),
    )


def _call_cells(c: CallFigures) -> tuple[str, ...]:
    return (
        str(c.total),
        str(c.answered),
        str(c.over_warn),
        str(c.over_max),
        duration_text(c.median_wait_seconds),
        duration_text(c.p90_wait_seconds),
        duration_text(c.talk_seconds),
        duration_text(c.median_talk_seconds),
        percent_text(c.service_level),
        str(c.waiting_now),
    )
