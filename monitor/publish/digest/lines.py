"""The rows of a touchpoint's table in the digest: one figure of the day, worded, and its change
against the day before and the same weekday a week before.

Every value is a figure of the metrics engine (`InquiryFigures`, `CallFigures`); this module
only words it. A change says its direction (▲ up, ▼ down) and whether that is good news:
`better`, `worse`, or `neutral` for volumes, where more is neither good nor bad.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from monitor.config import ResolvedTargets
from monitor.measure.summaries import CallFigures, InquiryFigures
from monitor.publish.words import duration_text, ended_at_text, percent_text

Verdict = Literal["better", "worse", "neutral", "none"]
Measure = Literal["count", "ratio", "duration"]
Good = Literal["up", "down"] | None  # which direction is good news; None: a volume
UP, DOWN, NO_DATA = "▲", "▼", "–"


@dataclass(frozen=True)
class Change:
    text: str  # "▲ 3", "▼ 6 pts", "▲ 2m 10s", "same", or "–" when either day has no figure
    verdict: Verdict

    @property
    def words(self) -> str:
        """The change for plain text, where there is no colour to say good or bad."""
        return f"{self.text} {self.verdict}" if self.verdict in ("better", "worse") else self.text


@dataclass(frozen=True)
class Line:
    label: str
    value: str
    note: str = ""  # what the value is made of, e.g. "10 of 12"
    changes: tuple[Change, ...] = ()  # vs the day before, vs the same weekday a week before
    alarm: bool = False  # the value itself means customers waited too long


def target_text(value: timedelta) -> str:
    """A configured target as people write it: `24h`, `2m`, `90s`, `1h 30m`."""
    seconds = round(value.total_seconds())
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def change(now: float | None, then: float | None, measure: Measure, good: Good) -> Change:
    """How `now` differs from `then`, compared as displayed (whole percents, whole seconds), so a
    change never contradicts the two values a reader sees."""
    if now is None or then is None:
        return Change(NO_DATA, "none")
    if measure == "ratio":
        a, b = round(now * 100), round(then * 100)
    else:
        a, b = round(now), round(then)
    if a == b:
        return Change("same", "neutral")
    size = b - a if a < b else a - b
    amount = {"count": str(size), "ratio": f"{size} pts", "duration": duration_text(size)}
    went_up = a > b
    verdict: Verdict = (
        "neutral" if good is None else "better" if went_up == (good == "up") else "worse"
    )
    return Change(f"{UP if went_up else DOWN} {amount[measure]}", verdict)


def _changes(
    attribute: str,
    measure: Measure,
    good: Good,
    now: object,
    then: tuple[object | None, ...],
) -> tuple[Change, ...]:
    value = getattr(now, attribute)
    return tuple(
        change(value, None if old is None else getattr(old, attribute), measure, good)
        for old in then
    )


def inquiry_lines(
    day: InquiryFigures,
    then: tuple[InquiryFigures | None, ...],
    targets: ResolvedTargets,
    business: bool,
) -> tuple[Line, ...]:
    """Received, answered, within target, response median and p90 (and in business time when
    the source has a calendar), breached, open now."""

    def changes(attribute: str, measure: Measure, good: Good) -> tuple[Change, ...]:
        return _changes(attribute, measure, good, day, then)

    clock = " business" if targets.reply_clock == "business" else ""
    lines = [
        Line("Received", str(day.received), changes=changes("received", "count", None)),
        Line("Answered", str(day.answered), changes=changes("answered", "count", None)),
        Line(
            f"Within{clock} {target_text(targets.reply_within)}",
            percent_text(day.within_target_ratio),
            f"{day.within_target} of {day.decided}" if day.decided else "none due yet",
            changes("within_target_ratio", "ratio", "up"),
            alarm=day.not_within_target > 0,
        ),
        Line(
            "Median reply",
            duration_text(day.median_seconds),
            changes=changes("median_seconds", "duration", "down"),
        ),
        Line(
            "90% replied within",
            duration_text(day.p90_seconds),
            changes=changes("p90_seconds", "duration", "down"),
        ),
    ]
    if business:
        lines += [
            Line(
                "Median, business time",
                duration_text(day.median_business_seconds),
                changes=changes("median_business_seconds", "duration", "down"),
            ),
            Line(
                "90%, business time",
                duration_text(day.p90_business_seconds),
                changes=changes("p90_business_seconds", "duration", "down"),
            ),
        ]
    missed = f", {day.missed} missed" if day.missed else ""
    lines += [
        Line(
            "Breached target",
            str(day.breached),
            f"late or unanswered{missed}" if day.breached else "",
            changes("breached", "count", "down"),
            alarm=day.breached > 0,
        ),
        Line(
            "Open now",
            str(day.open_now),
            _open_note(day),
            alarm=day.open_breached_now > 0,
        ),
    ]
    return _worth_showing(lines)


def _worth_showing(lines: list[Line]) -> tuple[Line, ...]:
    """Drop the rows with nothing to say: no value that day and none to compare with (the
    median reply of a day when nothing was answered, ...)."""
    return tuple(
        line
        for line in lines
        if line.value not in ("-", "") or any(c.text != NO_DATA for c in line.changes)
    )


def _open_note(day: InquiryFigures) -> str:
    if not day.open_now:
        return ""
    oldest = f"oldest {duration_text(day.oldest_open_age_seconds)}"
    if day.open_breached_now:
        return f"{day.open_breached_now} past target, {oldest}"
    return oldest


def call_lines(
    day: CallFigures, then: tuple[CallFigures | None, ...], targets: ResolvedTargets
) -> tuple[Line, ...]:
    """Calls, answered, abandoned, service level, median and p90 wait, over hold_warn and
    hold_max, longest wait, and callers waiting now (when any)."""

    def changes(attribute: str, measure: Measure, good: Good) -> tuple[Change, ...]:
        return _changes(attribute, measure, good, day, then)

    warn, top = target_text(targets.hold_warn), target_text(targets.hold_max)
    lines = [
        Line("Calls", str(day.total), changes=changes("total", "count", None)),
        Line("Answered", str(day.answered), changes=changes("answered", "count", None)),
        Line(
            "Abandoned",
            percent_text(day.abandoned_ratio),
            f"{day.abandoned} of {day.total}" if day.total else "",
            changes("abandoned_ratio", "ratio", "down"),
        ),
        Line(
            f"Answered within {target_text(targets.answer_within)}",
            percent_text(day.service_level),
            "service level",
            changes("service_level", "ratio", "up"),
        ),
        Line(
            "Median wait",
            duration_text(day.median_wait_seconds),
            changes=changes("median_wait_seconds", "duration", "down"),
        ),
        Line(
            "90% waited at most",
            duration_text(day.p90_wait_seconds),
            changes=changes("p90_wait_seconds", "duration", "down"),
        ),
        Line(
            f"Held over {warn}",
            str(day.over_warn),
            percent_text(day.over_warn / day.total) if day.total else "",
            changes("over_warn", "count", "down"),
            alarm=day.over_warn > 0,
        ),
        Line(
            f"Held over {top}",
            str(day.over_max),
            percent_text(day.over_max / day.total) if day.total else "",
            changes("over_max", "count", "down"),
            alarm=day.over_max > 0,
        ),
        Line(
            "Longest wait",
            duration_text(day.longest_wait_seconds),
            changes=changes("longest_wait_seconds", "duration", "down"),
            alarm=(day.longest_wait_seconds or 0) > targets.hold_warn.total_seconds(),
        ),
    ]
    if day.system_ended:
        lines.append(
            Line(
                "Ended by the phone system",
                str(day.system_ended),
                f"{ended_at_text(day.system_ended_at)}: no person took them",
                alarm=True,
            )
        )
    if day.missed_without_number:
        lines.append(
            Line(
                "Missed, no number",
                str(day.missed_without_number),
                "withheld callers: no callback possible",
            )
        )
    if day.waiting_now:
        lines.append(
            Line(
                "Waiting now",
                str(day.waiting_now),
                f"longest {duration_text(day.longest_waiting_now_seconds)}",
                alarm=(day.longest_waiting_now_seconds or 0) > targets.hold_warn.total_seconds(),
            )
        )
    return _worth_showing(lines)
