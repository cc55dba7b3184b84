"""`support-monitor report`: a period's figures per source as a table, JSON or CSV.

A source that was not read (monitor.store.health) is named before the tables, with what is
wrong and its last error, and its rows are marked `*`; JSON and CSV carry `complete` and the
source's reading state on every row, so a 0 is never taken for a quiet period."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from monitor.measure.summaries import CallFigures
from monitor.publish.printable import cell, line
from monitor.publish.unread import ERROR_LIMIT, Unread, not_read
from monitor.publish.words import duration_text, ended_at_text, percent_text
from monitor.store.figures import QueueFigures, SourceFigures


def flat_rows(figures: Sequence[SourceFigures]) -> list[dict[str, Any]]:
    """One flat dict per source with every figure, units in the key names; durations (keys in
    `_seconds`) in whole seconds, as the table shows them."""
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
            row["inquiries_channel"] = fig.inquiry_channel or fig.channel
            row.update({f"inquiries_{k}": _rounded(k, v) for k, v in inquiries.items()})
        if fig.calls is not None:
            row.update({f"calls_{k}": v for k, v in _call_values(fig.calls).items()})
        row.update(_health_values(fig))
        rows.append(row)
    return rows


def _health_values(fig: SourceFigures) -> dict[str, Any]:
    """Whether the figures hold all the source had for the period (`complete`: it was read
    after the period ended, or is read fine while the period runs), and its reading state."""
    health = fig.health
    if health is None:
        return {"complete": fig.complete}

    def iso(at: datetime | None) -> str | None:
        return None if at is None else at.isoformat()

    return {
        "complete": fig.complete,
        "health": health.status,
        "read_from": iso(health.read_from),
        "last_success_at": iso(health.last_success_at),
        "failing_since": iso(health.failing_since),
        "failed_polls": health.consecutive_failures,
        "last_error": line(health.last_error, ERROR_LIMIT) if health.last_error else None,
    }


def _call_values(calls: CallFigures) -> dict[str, Any]:
    values = asdict(calls)
    values["abandoned_ratio"] = calls.abandoned_ratio
    return {k: _rounded(k, v) for k, v in values.items()}


def _rounded(key: str, value: Any) -> Any:
    """A duration in whole seconds (times are exact to the microsecond, and a difference of
    two can print as 1500.000001); every other value as it is."""
    if key.endswith("_seconds") and isinstance(value, float):
        return round(value)
    return value


def render_json(figures: Sequence[SourceFigures]) -> str:
    rows = flat_rows(figures)
    for row, fig in zip(rows, figures, strict=True):
        if fig.queues:
            row["queues"] = [{"queue": q.queue, **_call_values(q.calls)} for q in fig.queues]
    return json.dumps({"sources": rows}, indent=2)


def render_csv(figures: Sequence[SourceFigures]) -> str:
    rows = flat_rows(figures)
    for row in rows:
        # One cell: `3CX EndCall 899=5; ivr-closed=2` (JSON keeps the list of objects).
        if places := row.get("calls_system_ended_at"):
            row["calls_system_ended_at"] = "; ".join(
                f"{p['destination']}={p['calls']}" for p in places
            )
    return csv_text(rows)


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = ()) -> str:
    """Rows as CSV under a header of `columns` and then every other key met, in the order
    met; each cell made safe for a spreadsheet (`printable.cell`: no formula, one line)."""
    names = list(columns)
    for row in rows:
        names.extend(k for k in row if k not in names)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: cell(v) for k, v in row.items()} for row in rows])
    return out.getvalue()


# Column groups: a title over the columns it spans. Counts, shares and times are never mixed
# in one group, so a reader never takes a percentage for a count.
INQUIRY_GROUPS = (
    ("", ("source", "channel")),
    ("opened in the period", ("received", "answered", "late", "clamped")),
    ("share", ("in target",)),
    ("response time", ("median", "p90", "median (bus.)")),
    ("open now", ("open", "late", "oldest")),
)
CALL_GROUPS = (
    ("", ("source", "queue")),
    ("calls in the period", ("calls", "answered", "abandoned", "unknown", "> warn", "> max")),
    ("share", ("abandoned", "service lvl")),
    ("wait", ("median", "p90", "longest")),
    ("now", ("waiting", "longest")),
)
INQUIRY_COLUMNS = tuple(c for _, columns in INQUIRY_GROUPS for c in columns)
CALL_COLUMNS = tuple(c for _, columns in CALL_GROUPS for c in columns)


def is_empty(figures: Sequence[SourceFigures]) -> bool:
    """No inquiry opened and no call entered in the period."""
    return all(
        (f.inquiries is None or f.inquiries.received == 0)
        and (f.calls is None or f.calls.total == 0)
        for f in figures
    )


def render_table(figures: Sequence[SourceFigures]) -> str:
    """Two aligned plain-text tables: inquiries (a row per source, its channel named as the
    metrics name it), then calls (a row per queue), with notes on what the figures leave out.

    The inquiry columns under "opened in the period" and the shares and times are about
    inquiries opened in the period (`late`: answered or missed after the target, or still open
    past it); "open now" is about every inquiry open at the moment, whenever it opened."""
    inquiry_rows = [
        (
            _marked(f),
            f.inquiry_channel or f.channel,
            str(i.received),
            str(i.answered),
            str(i.breached),
            str(i.clamped),
            percent_text(i.within_target_ratio),
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
        _call_row(_marked(f), q.queue, q.calls)
        for f in figures
        if f.calls is not None
        for q in (f.queues or (QueueFigures("-", f.calls),))
    ]
    parts = []
    if figures:
        parts.append(
            f"Period {figures[0].since:%Y-%m-%d %H:%M %Z} – {figures[0].until:%Y-%m-%d %H:%M %Z}"
        )
        unread = not_read(list(figures), figures[0].since.tzinfo or UTC)
        if unread:
            parts.append(_unread_block(unread))
    if inquiry_rows:
        parts.append("Inquiries\n" + _table(INQUIRY_GROUPS, inquiry_rows))
    if call_rows:
        parts.append("Calls\n" + _table(CALL_GROUPS, call_rows))
    if not inquiry_rows and not call_rows:
        parts.append("No sources configured.")
    notes = _notes(figures)
    if notes:
        parts.append("\n".join(notes))
    return "\n\n".join(parts) + "\n"


def _marked(figures: SourceFigures) -> str:
    """A source's name in a table, with `*` when its figures are incomplete."""
    return figures.source if figures.complete else f"{figures.source}*"


def _unread_block(unread: Sequence[Unread]) -> str:
    """The sources not read, before any table: a 0 of theirs is not a quiet period."""
    title = (
        "Not read: the figures of the sources marked * are incomplete"
        if any(not u.complete for u in unread)
        else "Source problems (the period's figures are complete)"
    )
    lines = [title]
    for u in unread:
        lines.append(f"  {u.source}: {u.what}")
        if u.last_error:
            lines.append(f"    last error: {u.last_error}")
    return "\n".join(lines)


def _call_row(source: str, queue: str, c: CallFigures) -> tuple[str, ...]:
    return (
        source,
        queue,
        str(c.total),
        str(c.answered),
        str(c.abandoned),
        str(c.unknown),
        str(c.over_warn),
        str(c.over_max),
        percent_text(c.abandoned_ratio),
        percent_text(c.service_level),
        duration_text(c.median_wait_seconds),
        duration_text(c.p90_wait_seconds),
        duration_text(c.longest_wait_seconds),
        str(c.waiting_now),
        duration_text(c.longest_waiting_now_seconds),
    )


def _notes(figures: Sequence[SourceFigures]) -> list[str]:
    """What a reader should know to trust the tables: replies whose clock was behind, calls
    whose wait is unknown, short abandons left out of the service level."""
    notes = []
    for f in figures:
        i = f.inquiries
        if i is not None and i.clamped:
            replies = "reply" if i.clamped == 1 else "replies"
            notes.append(
                f"{f.source}: {i.clamped} {replies} dated before its question (the sender's "
                "clock is off), measured from the question"
            )
        for q in f.queues:
            c, where = q.calls, f"{f.source}/{q.queue}"
            if c.unknown:
                at_least = c.unknown_wait_at_least_seconds
                seen = f", one waited at least {duration_text(at_least)}" if at_least else ""
                notes.append(
                    f"{where}: {c.unknown} call{'s' * (c.unknown != 1)} never seen to end: "
                    f"counted, but left out of the waits and the service level{seen}"
                )
            if c.system_ended:
                notes.append(
                    f"{where}: {c.system_ended} call{'s' * (c.system_ended != 1)} ended by the "
                    f"phone system with no person ({ended_at_text(c.system_ended_at)}): "
                    "missed, not answered"
                )
            if c.missed_without_number:
                notes.append(
                    f"{where}: {c.missed_without_number} missed call"
                    f"{'s' * (c.missed_without_number != 1)} with no number to call back "
                    "(withheld)"
                )
            if c.short_abandoned:
                notes.append(
                    f"{where}: {c.short_abandoned} short abandon"
                    f"{'s' * (c.short_abandoned != 1)}: abandoned, but no callback is owed and "
                    "the service level leaves them out"
                )
    return notes


def _table(groups: Sequence[tuple[str, Sequence[str]]], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned (the untitled first group's to the left: names; the rest to the right:
    figures) under a header, with each group's title centred over its columns."""
    header = [c for _, columns in groups for c in columns]
    names = len(groups[0][1]) if not groups[0][0] else 0
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    # A title wider than its columns widens the group's last column.
    first = 0
    for title, columns in groups:
        last = first + len(columns) - 1
        span = sum(widths[first : last + 1]) + 2 * (len(columns) - 1)
        if len(title) > span:
            widths[last] += len(title) - span
        first = last + 1
    titles, first = [], 0
    for title, columns in groups:
        last = first + len(columns) - 1
        span = sum(widths[first : last + 1]) + 2 * (len(columns) - 1)
        titles.append(title.center(span) if title else " " * span)
        first = last + 1
    lines = [
        "  ".join(
            cell.ljust(w) if i < names else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(0, "  ".join(titles))
    return "\n".join(line.rstrip() for line in lines)


# The aligned table with titled column groups, for the other reports (`--by`, `--items`).
table = _table
