"""Which digest is due, and whether its figures have been read: the digest waits for its sources.

The digest of day D is due at each `digest.schedule` time (the day before the fire time, in
the configured timezone), and caught up at start-up when its time passed in the last day. It
is built only from read data: every enabled source must have finished a successful poll that
*began* after D ended (monitor.store.health: `read_from`), and, when the service has just
started, after it started (what was stored before may be hours behind). Until then it waits,
re-checked at every tick of the service; past `digest.wait_for_sources` (counted from the fire
time, or from the start for a catch-up) it goes out anyway, naming the sources still unread
first with their figures marked incomplete.

Pure decisions here (`due_digest`, `deadline`) and one read of the sources' state (`unread`);
the service's DigestJob runs them, and `check` says what a digest is waiting for
(`waiting_line`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.cron import cron_trigger, last_fire
from monitor.publish.unread import what, when
from monitor.store.database import transaction
from monitor.store.figures import day_bounds
from monitor.store.health import SourceHealth, source_health, unread_since

CATCH_UP = timedelta(days=1)  # a fire time this recent, missed while nothing ran, is caught up


@dataclass(frozen=True)
class Due:
    fired: datetime  # the schedule's fire time
    day: date  # the day the digest is about: the day before the fire time
    day_end: datetime  # midnight after `day`, in the configured timezone

    def read_after(self, started_at: datetime | None) -> datetime:
        """Every source must have been read from this moment on: the end of the day, or the
        service's start when that is later (its start-up catch-up)."""
        return max(self.day_end, started_at) if started_at is not None else self.day_end

    def deadline(self, wait: timedelta, started_at: datetime | None) -> datetime:
        """When the digest goes out whatever is still unread."""
        start = max(self.fired, started_at) if started_at is not None else self.fired
        return start + wait


def trigger_of(settings: Settings) -> CronTrigger | None:
    digest = settings.file.digest
    if digest is None:
        return None
    return cron_trigger(digest.schedule, settings.timezone)


def due_digest(settings: Settings, trigger: CronTrigger, now: datetime) -> Due | None:
    """The digest due at `now`: the latest fire time at or before it, within a day."""
    # A second of slack: the scheduler may call a job a hair before our clock says so.
    fired = last_fire(trigger, now + timedelta(seconds=1), CATCH_UP)
    if fired is None:
        return None
    day = fired.astimezone(settings.timezone).date() - timedelta(days=1)
    return Due(fired, day, day_bounds(day, settings.timezone)[1])


def unread(
    engine: Engine, settings: Settings, read_after: datetime, now: datetime
) -> list[SourceHealth]:
    """The enabled sources not read since `read_after` (no successful poll began then or
    later), in configuration order."""
    with transaction(engine) as conn:
        health = source_health(conn, settings, now)
    return unread_since(health, read_after)


def reasons(sources: list[SourceHealth], read_after: datetime, settings: Settings) -> str:
    """`phones (never read: 2 failed polls …), chat (not read since 00:00 yet)`, for logs and
    `check`."""
    zone = settings.timezone
    parts = []
    for health in sources:
        why = what(health, zone)
        if why == "ok":
            why = f"not read since {when(read_after, zone)} yet"
        parts.append(f"{health.source} ({why})")
    return ", ".join(parts)


def waiting_line(engine: Engine, settings: Settings, now: datetime) -> str | None:
    """For `check`: the digest due now that is not claimed yet because sources were not read
    after its day ended, and which; None when no digest waits. The database must have its
    tables (`check` asks only then: it creates nothing)."""
    from monitor.publish.digest.mail import is_claimed

    digest = settings.file.digest
    trigger = trigger_of(settings)
    if digest is None or not digest.to or trigger is None:
        return None
    due = due_digest(settings, trigger, now)
    if due is None or is_claimed(engine, due.day):
        return None
    missing = unread(engine, settings, due.day_end, now)
    deadline = due.deadline(digest.wait_for_sources, None)
    zone = settings.timezone
    if now >= deadline:  # whatever its sources, a running service would have sent it
        unread_too = f"; not read: {reasons(missing, due.day_end, settings)}" if missing else ""
        return (
            f"digest {due.day}: due since {when(due.fired, zone)} and not sent "
            f"(is `run` running?){unread_too}"
        )
    if not missing:
        return f"digest {due.day}: due, every source read; `run` sends it at its next tick"
    return (
        f"digest {due.day}: waiting for {reasons(missing, due.day_end, settings)}; "
        f"sent by {when(deadline, zone)} at the latest, naming them"
    )
