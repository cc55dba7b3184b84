"""How figures are written for people: durations and shares, the same in every output."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.measure.summaries import NOT_RECORDED, OTHER, EndedAt


def duration_text(seconds: float | None) -> str:
    """`42s`, `7m 05s`, `3h 12m`, `2d 4h`: short enough for a table cell; `-` for none."""
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def percent_text(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.0f}%"


def ended_at_text(entries: Sequence[EndedAt]) -> str:
    """Where the phone system ended calls, as counted (most first): `5 at 3CX EndCall 899,
    2 at ivr-closed, 1 elsewhere`; a destination stored before they were kept is `not
    recorded`."""
    words = {OTHER: "elsewhere", NOT_RECORDED: "where not recorded"}
    return ", ".join(
        f"{e.calls} {words[e.destination]}"
        if e.destination in words
        else f"{e.calls} at {e.destination}"
        for e in entries
    )
