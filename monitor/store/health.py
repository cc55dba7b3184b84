"""Source health: whether a source's figures can be trusted, one notion for every surface.

A source that was not read must never look like a quiet day. Each source's state row
(`source_state`, kept by every poll) says when it was last read and whether its polls fail;
this module turns it into a `SourceHealth`, and the digest, `report`, the alert rules, the
exporter and `/healthz` all ask it, so they agree:

- **never read**: no poll of it has ever succeeded (none has finished yet, or every one failed);
- **failing**: its last poll failed (what it held since its last success may be missing);
- **stale**: no successful poll for `alerts.stale_intervals` poll intervals and at least
  `alerts.stale_min` (its polls do not run: no instance is running, or one poll hangs);
- **disabled**: `enabled: false`, so it is not read at all;
- **ok** otherwise.

Beside that state, figures of a period are **complete** only when the source was read after
the period ended: its last successful poll *began* after the end (`read_from`), so everything
the source held for the period was there to read. That is the rule the digest waits for; a
period still running (a report up to now) is complete while the source is ok. A service that
has just started also asks whether a source was read since it started (`read_since`): until
then, what is stored may be hours old, and "nobody waiting" or "resolved" would be a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, select

from monitor.config import Settings, SourceSettings
from monitor.store.schema import STATES

# The `meta` key counting digests sent while a source was unread or failing
# (support_digests_incomplete_total): kept with the store, so it survives restarts and agrees
# between instances.
DIGESTS_INCOMPLETE = "digests_incomplete_total"

Status = Literal["ok", "never_read", "failing", "stale", "disabled"]
STATUS_WORDS: dict[str, str] = {
    "ok": "read",
    "never_read": "never read",
    "failing": "failing",
    "stale": "stale",
    "disabled": "disabled",
}


def stale_after(settings: Settings, source: SourceSettings) -> timedelta:
    """`stale_intervals` poll intervals, and at least `stale_min` (as prometheus/rules.yml)."""
    alerts = settings.file.alerts
    return max(source.every * alerts.stale_intervals, alerts.stale_min)


@dataclass(frozen=True)
class SourceHealth:
    source: str
    enabled: bool
    now: datetime
    stale_after: timedelta
    stale_intervals: int
    every: timedelta
    last_attempt_at: datetime | None = None  # when the last poll, whatever its outcome, began
    last_success_at: datetime | None = None  # when the last successful poll ended
    read_from: datetime | None = None  # when the last successful poll began
    consecutive_failures: int = 0
    failing_since: datetime | None = None  # when the first of the failed polls in a row began
    last_error: str | None = None
    last_error_at: datetime | None = None

    @property
    def status(self) -> Status:
        if not self.enabled:
            return "disabled"
        if self.last_success_at is None:
            return "never_read"
        if self.consecutive_failures:
            return "failing"
        if self.now - self.last_success_at > self.stale_after:
            return "stale"
        return "ok"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def unread_for(self) -> float | None:
        """Seconds since the last successful poll ended; None when there was none."""
        if self.last_success_at is None:
            return None
        return max(0.0, (self.now - self.last_success_at).total_seconds())

    @property
    def alarming(self) -> bool:
        """The `source_stale` alert fires: no successful poll for `stale_after`; a source never
        read, once it has failed `stale_intervals` polls in a row spanning that long (so a
        monitor that has just started, or a first poll that takes a while, is not an alert)."""
        if not self.enabled:
            return False
        if self.last_success_at is not None:
            return self.now - self.last_success_at > self.stale_after
        failures = self.consecutive_failures
        return failures >= self.stale_intervals and self.every * failures >= self.stale_after

    def read_since(self, moment: datetime) -> bool:
        """A successful poll began at or after `moment`: all the source held then is stored."""
        return self.enabled and self.read_from is not None and self.read_from >= moment

    def complete_until(self, until: datetime) -> bool:
        """The figures of a period ending at `until` hold everything the source had for it: it
        was read after the period ended; for a period not over yet, the source is ok."""
        if until >= self.now:
            return self.ok
        return self.read_since(until)


def health_of(
    row: Mapping[Any, Any] | None, source: SourceSettings, settings: Settings, now: datetime
) -> SourceHealth:
    """The health of `source` from its state row (None: no poll has finished yet)."""
    base = SourceHealth(
        source=source.name,
        enabled=source.enabled,
        now=now,
        stale_after=stale_after(settings, source),
        stale_intervals=settings.file.alerts.stale_intervals,
        every=source.every,
    )
    if row is None:
        return base
    return replace(
        base,
        last_attempt_at=row.get("last_attempt_at"),
        last_success_at=row.get("last_success_at"),
        read_from=row.get("read_from"),
        consecutive_failures=int(row.get("consecutive_failures") or 0),
        failing_since=row.get("failing_since"),
        last_error=row.get("last_error"),
        last_error_at=row.get("last_error_at"),
    )


def health_from_rows(
    rows: Iterable[Mapping[Any, Any]], settings: Settings, now: datetime
) -> dict[str, SourceHealth]:
    """The health of every configured source, by name, from the state rows read."""
    by_source = {row["source"]: row for row in rows}
    return {s.name: health_of(by_source.get(s.name), s, settings, now) for s in settings.sources}


def source_health(conn: Connection, settings: Settings, now: datetime) -> dict[str, SourceHealth]:
    """The health of every configured source, by name, in configuration order."""
    rows = conn.execute(select(STATES)).mappings().all()
    return health_from_rows(rows, settings, now)


def unread_since(health: Mapping[str, SourceHealth], moment: datetime) -> list[SourceHealth]:
    """The enabled sources with no successful poll begun at or after `moment`."""
    return [h for h in health.values() if h.enabled and not h.read_since(moment)]
