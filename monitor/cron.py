"""Cron schedules (`digest.schedule`) as APScheduler 3.x triggers, with cron's weekday numbers.

APScheduler 3.x's `CronTrigger.from_crontab` reads weekday numbers with 0 = Monday, while cron
(and everyone writing `0 8 * * 1-5`) means 0 = Sunday; 4.x fixed it, 3.x cannot (its docs warn
of the mismatch). So the weekday field is read here the cron way and handed over as names,
which both agree on.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo

from apscheduler.triggers.cron import CronTrigger

NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_PART = re.compile(r"^(\*|[a-z]{3}|\d)(?:-([a-z]{3}|\d))?(?:/(\d+))?$")


def _day(text: str) -> int:
    if text.isdigit():
        number = int(text)
        if number > 7:
            raise ValueError(f"weekday {number} is not 0-7")
        return number % 7  # 7 is Sunday too
    if text not in NAMES:
        raise ValueError(f"unknown weekday {text!r}")
    return NAMES.index(text)


def weekdays(field: str) -> str:
    """A cron weekday field (`1-5`, `0,6`, `*/2`, `mon-fri`) as APScheduler weekday names."""
    days: set[int] = set()
    for part in field.lower().split(","):
        match = _PART.match(part)
        if match is None:
            raise ValueError(f"cannot read the weekday field {field!r}")
        first, last, step = match.groups()
        if first == "*":
            if last is not None:
                raise ValueError(f"cannot read the weekday field {field!r}")
            start, end = 0, 6
        else:
            start = _day(first)
            end = start if last is None and step is None else 6 if last is None else _day(last)
            if last is not None and end == 0 and start > 0:  # `5-7`, `mon-sun`: up to Sunday
                end = 7
        if end < start:
            raise ValueError(f"weekday range {part!r} runs backwards")
        days.update(d % 7 for d in range(start, end + 1, int(step or 1)))
    if len(days) == 7:
        return "*"
    return ",".join(NAMES[d] for d in sorted(days))


def cron_trigger(expression: str, timezone: tzinfo | None = None) -> CronTrigger:
    """The trigger of a five-field cron expression in `timezone`. ValueError when unreadable."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    fields[4] = weekdays(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)


def last_fire(trigger: CronTrigger, now: datetime, within: timedelta) -> datetime | None:
    """The latest time at or before `now`, and no earlier than `now - within`, at which the
    trigger fired (or would have, had anything been running)."""
    latest = None
    at = trigger.get_next_fire_time(None, now - within)
    while at is not None and at <= now:
        latest = at
        at = trigger.get_next_fire_time(at, at + timedelta(seconds=1))
    return latest
