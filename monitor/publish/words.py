"""How figures are written for people: durations and shares, the same in every output."""

from __future__ import annotations


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
