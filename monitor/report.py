"""`support-monitor report`: a period's figures per source as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from monitor.figures import SourceFigures


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


def flat_rows(figures: Sequence[SourceFigures]) -> list[dict[str, Any]]:
    """One flat dict per source with every figure, units in the key names."""
    rows = []
    for fig in figures:
        row: dict[str, Any] = {
            "source": fig.source,
            "kind": fig.kind,
            "channel": fig.channel,
            "stage": fig.stage,
            "since": fig.since.isoformat(),
            "until": fig.until.isoformat(),
        }
        if fig.inquiries is not None:
            inquiries = asdict(fig.inquiries)
            inquiries["within_target_ratio"] = fig.inquiries.within_target_ratio
            row.update({f"inquiries_{k}": v for k, v in inquiries.items()})
        if fig.calls is not None:
            calls = asdict(fig.calls)
            calls["abandoned_ratio"] = fig.calls.abandoned_ratio
            row.update({f"calls_{k}": v for k, v in calls.items()})
        rows.append(row)
    return rows


def render_json(figures: Sequence[SourceFigures]) -> str:
    return json.dumps({"sources": flat_rows(figures)}, indent=2)


def render_csv(figures: Sequence[SourceFigures]) -> str:
    rows = flat_rows(figures)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


INQUIRY_COLUMNS = (
    "source",
    "channel",
    "received",
    "answered",
    "in target",
    "late",
    "median",
    "p90",
    "median (bus.)",
    "open now",
    "open late",
    "oldest open",
)
CALL_COLUMNS = (
    "source",
    "queue calls",
    "answered",
    "abandoned",
    "service lvl",
    "median wait",
    "p90 wait",
    "> warn",
    "> max",
    "longest",
    "waiting",
)


def is_empty(figures: Sequence[SourceFigures]) -> bool:
    """No inquiry opened and no call entered in the period."""
    return all(
        (f.inquiries is None or f.inquiries.received == 0)
        and (f.calls is None or f.calls.total == 0)
        for f in figures
    )


def render_table(figures: Sequence[SourceFigures]) -> str:
    """Two aligned plain-text tables: inquiries, then calls (only those with data).

    The inquiry columns up to `median (bus.)` are about inquiries opened in the period (`late`:
    answered or missed after the target, or still open past it); `open now`, `open late` and
    `oldest open` are about every inquiry open at the moment, whenever it opened."""
    inquiry_rows = [
        (
            f.source,
            f.channel,
            str(i.received),
            str(i.answered),
            percent_text(i.within_target_ratio),
            str(i.breached),
            duration_text(i.median_seconds),
            duration_text(i.p90_seconds),
            duration_text(i.median_business_seconds),
            str(i.open_now),
            str(i.open_breached_now),
            duration_text(i.oldest_open_age_seconds),
        )
        for f in figures
        if (i := f.inquiries) is not None
    ]
    call_rows = [
        (
            f.source,
            str(c.total),
            str(c.answered),
            percent_text(c.abandoned_ratio),
            percent_text(c.service_level),
            duration_text(c.median_wait_seconds),
            duration_text(c.p90_wait_seconds),
            str(c.over_warn),
            str(c.over_max),
            duration_text(c.longest_wait_seconds),
            str(c.waiting_now),
        )
        for f in figures
        if (c := f.calls) is not None
    ]
    parts = []
    if figures:
        parts.append(
            f"Period {figures[0].since:%Y-%m-%d %H:%M %Z} – {figures[0].until:%Y-%m-%d %H:%M %Z}"
        )
    if inquiry_rows:
        parts.append("Inquiries\n" + _table(INQUIRY_COLUMNS, inquiry_rows))
    if call_rows:
        parts.append("Calls\n" + _table(CALL_COLUMNS, call_rows))
    if not inquiry_rows and not call_rows:
        parts.append("No sources configured.")
    return "\n\n".join(parts) + "\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
