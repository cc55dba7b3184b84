"""`report --items`: every inquiry and call behind a period's figures, with its arithmetic.

One row per item (monitor.store.breakdown): what it is (an inquiry, a call, or a message left
out), where (source, queue, channel), a reference (the subject, or the number masked to its
last four digits, and the conversation), when it opened and was answered, by whom (the agent
when `reports.agents` is true; the team otherwise) and by which reply, how long it waited in
calendar seconds and, for a source with a `calendar`, in business seconds with the open
intervals that make them up, in one line (`Fri 17:00–17:30 + Mon 09:00–09:30 = 1h 00m`,
read from the calendar itself: the sum is the business seconds), its verdict, and for a
message left out, why (automatic: which header or subtype; internal; nobody was waiting).

Outsiders write subjects and names: every value is printed through
`monitor.publish.printable`, and no CSV cell can start a formula.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from monitor.config import Settings
from monitor.measure.calendars import BusinessCalendar
from monitor.measure.items import CallItem, InquiryItem, LeftOutItem
from monitor.publish.printable import line
from monitor.publish.report import csv_text, table
from monitor.publish.words import duration_text
from monitor.store.breakdown import Period

Item = InquiryItem | CallItem | LeftOutItem
# Intervals written out in an arithmetic line; beyond, the middle ones are counted, not listed.
SHOWN_INTERVALS = 6
# Characters of a subject or a conversation id in the terminal table.
REFERENCE_WIDTH = 40

COLUMNS = (
    "kind",
    "source",
    "queue",
    "channel",
    "conversation",
    "reference",
    "opened",
    "answered",
    "by",
    "team",
    "reply",
    "calendar_seconds",
    "business_seconds",
    "business_hours",
    "verdict",
    "reason",
    "in_period",
    "now",
)


def mask_number(value: str | None) -> str:
    """A phone number with all but its last four digits hidden (`+•• •••• ••0958`); text
    that is not a number (`anonymous`, a name) as it is."""
    if not value:
        return ""
    digits = sum(ch.isdigit() for ch in value)
    if digits < 6:
        return value
    seen, out = 0, []
    for ch in value:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > digits - 4 else "•")
        else:
            out.append(ch)
    return "".join(out)


def arithmetic(calendar: BusinessCalendar, start: datetime, end: datetime) -> tuple[float, str]:
    """The business seconds of [start, end) and the open intervals that make them up, in one
    line in the calendar's zone: `Fri 17:00–17:30 + Mon 09:00–09:30 = 1h 00m`."""
    spans = list(calendar.open_intervals(start, end)) if end > start else []
    total = sum(((e - s).total_seconds() for s, e in spans), 0.0)
    zone = calendar.zone
    parts = [_interval(s, e, zone) for s, e in spans]
    if len(parts) > SHOWN_INTERVALS:
        hidden = len(parts) - SHOWN_INTERVALS + 1
        head, tail = parts[: SHOWN_INTERVALS // 2], parts[-(SHOWN_INTERVALS // 2 - 1) :]
        parts = [*head, f"({hidden} more intervals)", *tail]
    written = " + ".join(parts) if parts else "closed throughout"
    return total, f"{written} = {_hours(total)}"


def _hours(seconds: float) -> str:
    """Open time in hours and minutes, never in days (`188h 00m`): a business day is not 24
    hours, so `7d 20h` of open time would read as something it is not."""
    if seconds < 3600:
        return duration_text(seconds)
    minutes = round(seconds) // 60
    return f"{minutes // 60}h {minutes % 60:02d}m"


def _interval(start: datetime, end: datetime, zone: tzinfo) -> str:
    s, e = start.astimezone(zone), end.astimezone(zone)
    if e.date() == s.date():
        return f"{s:%a %H:%M}–{e:%H:%M}"
    return f"{s:%a %H:%M}–{e:%a %H:%M}"


@dataclass(frozen=True)
class Options:
    """What the rows show and which items they keep."""

    agents: bool  # `reports.agents`: name who answered (else only the team)
    zone: tzinfo  # the configured timezone, for times
    calendars: Mapping[str, BusinessCalendar]  # per source with a `calendar`
    sources: frozenset[str] = frozenset()  # --source (empty: all)
    teams: frozenset[str] = frozenset()  # --team
    verdicts: frozenset[str] = frozenset()  # --verdict

    @classmethod
    def for_settings(cls, settings: Settings, **filters: frozenset[str]) -> Options:
        """The options of `settings` (who answered, the zone, each source's calendar)."""
        calendars = {
            s.name: BusinessCalendar.from_settings(settings.file.calendars[s.calendar])
            for s in settings.sources
            if s.calendar is not None
        }
        return cls(
            agents=settings.file.reports.agents,
            zone=settings.timezone,
            calendars=calendars,
            **filters,
        )


def item_rows(period: Period, options: Options) -> list[dict[str, Any]]:
    """The rows of every item of `period` that the filters keep: inquiries, then calls, then
    messages left out, each in time order."""
    items: list[Item] = [item for _, item in period.inquiries]
    items += [item for _, item in period.calls]
    items += list(period.left_out)
    rows = []
    for item in items:
        if not _kept(item, options):
            continue
        if isinstance(item, InquiryItem):
            rows.append(_inquiry_row(item, period.now, options))
        elif isinstance(item, CallItem):
            rows.append(_call_row(item, options))
        else:
            rows.append(_left_out_row(item, options))
    return rows


def _kept(item: Item, options: Options) -> bool:
    return (
        (not options.sources or item.source in options.sources)
        and (not options.teams or item.team in options.teams)
        and (not options.verdicts or item.verdict in options.verdicts)
    )


def _when(at: datetime | None, zone: tzinfo) -> str:
    return "" if at is None else f"{at.astimezone(zone):%Y-%m-%d %H:%M:%S}"


def _inquiry_row(item: InquiryItem, now: datetime, options: Options) -> dict[str, Any]:
    calendar = options.calendars.get(item.source)
    business, hours = item.business_seconds, ""
    if calendar is not None:
        end = item.closed_at or item.ended_at or now
        counted, hours = arithmetic(calendar, item.opened_at, max(end, item.opened_at))
        if business is None:  # open, or missed: counted up to now, or to the end
            business = counted
    phone = item.channel in ("voicemail", "answering_service")
    notes = []
    if item.clamped:
        notes.append("the reply is dated before its question (clock skew): counted at 0 s")
    if item.kind == "followup":
        notes.append("a follow-up")
    return {
        "kind": "inquiry",
        "source": item.source,
        "queue": "",
        "channel": item.channel,
        "conversation": item.conversation,
        "reference": item.subject or (mask_number(item.customer) if phone else ""),
        "opened": _when(item.opened_at, options.zone),
        "answered": _when(item.closed_at, options.zone),
        "by": (item.agent or "") if options.agents else "",
        "team": item.team or "",
        "reply": item.reply or "",
        "calendar_seconds": round(item.age_seconds),
        "business_seconds": None if business is None else round(business),
        "business_hours": hours,
        "verdict": item.verdict,
        "reason": "; ".join(notes),
        "in_period": item.in_period,
        "now": "open" if item.open_now else "",
    }


def _call_row(item: CallItem, options: Options) -> dict[str, Any]:
    notes = []
    if item.short_abandon:
        notes.append("a short abandon: out of the service level, no callback owed")
    if item.outcome == "unknown":
        notes.append("never seen to end: no known wait")
    elif item.answered_within:
        notes.append("answered within answer_within")
    if item.over_max:
        notes.append("held over hold_max")
    elif item.over_warn:
        notes.append("held over hold_warn")
    return {
        "kind": "call",
        "source": item.source,
        "queue": item.queue,
        "channel": "phone",
        "conversation": item.external_id,
        "reference": mask_number(item.caller),
        "opened": _when(item.entered_at, options.zone),
        "answered": _when(item.answered_at, options.zone),
        "by": (item.agent or "") if options.agents else "",
        "team": item.team or "",
        "reply": "",
        "calendar_seconds": None if item.wait_seconds is None else round(item.wait_seconds),
        "business_seconds": None,
        "business_hours": "",
        "verdict": item.verdict,
        "reason": "; ".join([item.outcome, *notes]),
        "in_period": item.in_period,
        "now": "waiting" if item.waiting_now else "",
    }


def _left_out_row(item: LeftOutItem, options: Options) -> dict[str, Any]:
    return {
        "kind": "message",
        "source": item.source,
        "queue": "",
        "channel": item.channel,
        "conversation": item.conversation,
        "reference": item.subject or "",
        "opened": _when(item.at, options.zone),
        "answered": "",
        "by": (item.agent or "") if options.agents and item.side == "agent" else "",
        "team": item.team or "",
        "reply": item.external_id,
        "calendar_seconds": None,
        "business_seconds": None,
        "business_hours": "",
        "verdict": item.verdict,
        "reason": item.reason,
        "in_period": True,
        "now": "",
    }


def render_json(rows: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps({"items": list(rows)}, indent=2, ensure_ascii=True)


def render_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    return csv_text(rows, COLUMNS)


ITEM_GROUPS = (
    ("", ("verdict", "kind", "source", "where", "reference", "opened", "answered", "by", "team")),
    ("waited", ("calendar", "business")),
)


def render_table(rows: Sequence[Mapping[str, Any]], title: str) -> str:
    """An aligned table, a row per item; under an item, indented, its business-hours
    arithmetic and why it counts as it does."""
    if not rows:
        return f"{title}\n\nNo items match.\n"
    cells = [_cells(row) for row in rows]
    lines = table(ITEM_GROUPS, cells).split("\n")
    out = lines[:3]
    for row, text in zip(rows, lines[3:], strict=True):
        out.append(text)
        if row["business_hours"]:
            out.append(f"    business hours: {line(row['business_hours'], 300)}")
        if row["reason"]:
            out.append(f"    {line(row['reason'], 300)}")
    counts = counts_text(rows)
    return f"{title}\n\n" + "\n".join(out) + f"\n\n{counts}\n"


def _cells(row: Mapping[str, Any]) -> tuple[str, ...]:
    where = row["queue"] or row["channel"]
    reference = row["reference"] or row["conversation"]
    return (
        row["verdict"].replace("_", " "),
        row["kind"],
        line(row["source"], 64),
        line(where, 40),
        line(reference, REFERENCE_WIDTH),
        row["opened"][:16],
        row["answered"][:16] or "-",
        line(row["by"] or "-", 40),
        line(row["team"] or "-", 40),
        duration_text(row["calendar_seconds"]),
        duration_text(row["business_seconds"]),
    )


def counts_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """How many inquiries (opened in the period, open since before it), calls and messages."""
    kinds = {"inquiry": 0, "call": 0, "message": 0}
    for row in rows:
        kinds[row["kind"]] += 1
    received = sum(1 for r in rows if r["kind"] == "inquiry" and r["in_period"])
    earlier = kinds["inquiry"] - received
    return (
        f"{kinds['inquiry']} inquiries ({received} opened in the period"
        f"{f', {earlier} open since before it' if earlier else ''}), {kinds['call']} calls, "
        f"{kinds['message']} messages left out"
    )
