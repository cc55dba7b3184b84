"""What the digest and `report` say of a source that was not read: one printable line each.

The facts are monitor.store.health's (one notion for every surface); this module only words
them for people: what is wrong, since when, and the last error, cut to one line (an error can
quote a server's answer or a file's bytes, which must not forge lines or reach a terminal as
escape sequences: monitor.publish.printable).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from monitor.publish.printable import line
from monitor.publish.words import duration_text
from monitor.store.figures import SourceFigures
from monitor.store.health import SourceHealth

ERROR_LIMIT = 200  # characters of a last error in a digest or a report


@dataclass(frozen=True)
class Unread:
    """A source to name before any figure: what is wrong with its reading, in words."""

    source: str
    channel: str
    what: str  # "never read: 4 failed polls since Thu 19 Nov 08:02"
    last_error: str  # one printable line, "" when none
    complete: bool  # its figures hold all it had for the period anyway
    status: str  # monitor.store.health's status, or "behind" (read, not since the period)


def when(at: datetime | None, zone: tzinfo) -> str:
    if at is None:
        return "-"
    local = at.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def what(health: SourceHealth, zone: tzinfo) -> str:
    """The source's reading state in a few words ("ok" when it is read as configured)."""
    n = health.consecutive_failures
    polls = f"{n} failed poll{'s' * (n != 1)}"
    since = f" since {when(health.failing_since, zone)}" if health.failing_since else ""
    status = health.status
    if status == "disabled":
        return "disabled (`enabled: false`): not read"
    if status == "never_read":
        return f"never read: {polls}{since}" if n else "not read yet: no poll has finished"
    if status == "failing":
        return f"failing{since or ''} ({polls}); last read {when(health.last_success_at, zone)}"
    if status == "stale":
        return (
            f"not read since {when(health.last_success_at, zone)}: its polls are not running, "
            f"stale after {duration_text(health.stale_after.total_seconds())}"
        )
    return "ok"


def unread(
    figures: SourceFigures,
    zone: tzinfo,
    read_after: datetime | None = None,
    read_after_words: str | None = None,
) -> Unread | None:
    """How `figures`' source was not read, or None when it was read as it should be.

    A source that was read but not since `read_after` (by default the period's end; in words,
    `read_after_words`, e.g. "the monitor started") is named too: its figures lack what came
    after its last read."""
    health = figures.health
    if health is None or (health.ok and figures.complete):
        return None
    if health.ok:
        after = read_after_words or when(read_after or figures.until, zone)
        words = f"not read since {after} yet (last read from {when(health.read_from, zone)})"
        status = "behind"
    else:
        words, status = what(health, zone), health.status
    error = health.last_error if status in ("never_read", "failing") else None
    return Unread(
        source=figures.source,
        channel=figures.channel.replace("_", " "),
        what=line(words),
        last_error=line(error, ERROR_LIMIT) if error else "",
        complete=figures.complete,
        status=status,
    )


def not_read(
    figures: list[SourceFigures],
    zone: tzinfo,
    read_after: datetime | None = None,
    read_after_words: str | None = None,
) -> tuple[Unread, ...]:
    """The sources to name first: those whose figures are incomplete before the others."""
    found = [u for f in figures if (u := unread(f, zone, read_after, read_after_words)) is not None]
    return tuple(sorted(found, key=lambda u: u.complete))
