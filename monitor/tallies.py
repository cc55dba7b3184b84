"""What each stored inquiry and call adds to the monotonic metrics of SPEC §6.

Prometheus counters and histograms must never go down and must survive restarts, and a scrape
must cost the same whatever the history's size. So the store keeps them as `Tally` rows, and
ingest applies, in the same transaction as the rows themselves, the difference between what the
rows it replaces contributed and what the new rows contribute. The tallies therefore always equal
a recount of the store (a test checks exactly that), without ever recounting at scrape time.

Bucket bounds are fixed per metric from defaults plus every configured target, so that
"answered within target" is an exact bucket in PromQL. When the configured targets change, the
layout changes and the tallies are rebuilt once from the store (`rebuild`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select

from monitor.config import ResolvedTargets, Settings
from monitor.models import CALLS, INQUIRIES, TALLIES
from monitor.store import insert_add

RESPONSE_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
HOLD_BUCKETS = (10, 20, 30, 60, 120, 180, 300, 600, 780, 900, 1800, 3600)

RESPONSE = "support_response_seconds"
RESPONSE_BUSINESS = "support_response_business_seconds"
INQUIRIES_TOTAL = "support_inquiries_total"
RESPONSE_BREACHES = "support_response_breaches_total"
CHATS_MISSED = "support_chats_missed_total"
CALLS_TOTAL = "support_calls_total"
HOLD = "support_hold_seconds"
HOLD_BREACHES = "support_hold_breaches_total"
HISTOGRAMS = (RESPONSE, RESPONSE_BUSINESS, HOLD)

Key = tuple[str, str, str, str]  # metric, source, labels, le
TallyCounter = Counter[Key]  # values are floats (sums) as well as counts


@dataclass(frozen=True)
class Layout:
    """Histogram bucket bounds per metric, in seconds."""

    buckets: Mapping[str, tuple[float, ...]]

    def signature(self, settings: Settings) -> str:
        """Changes whenever stored measurements must be redone: other buckets, targets or
        calendars change breaches, business seconds and the bucket each value falls in."""
        payload = {
            "buckets": {k: list(v) for k, v in sorted(self.buckets.items())},
            "sources": {
                s.name: [repr(settings.targets_for(s)), s.calendar] for s in settings.sources
            },
            "calendars": {
                k: v.model_dump_json() for k, v in sorted(settings.file.calendars.items())
            },
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def layout_for(settings: Settings) -> Layout:
    reply: set[float] = set(RESPONSE_BUCKETS)
    hold: set[float] = set(HOLD_BUCKETS)
    for source in settings.sources:
        targets = settings.targets_for(source)
        reply.add(targets.reply_within.total_seconds())
        hold.update(
            t.total_seconds() for t in (targets.hold_warn, targets.hold_max, targets.answer_within)
        )
    response = tuple(sorted(float(b) for b in reply))
    return Layout({RESPONSE: response, RESPONSE_BUSINESS: response, HOLD: tuple(sorted(hold))})


def fmt_le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else f"{bound:g}"


def labels_text(**labels: str) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def parse_labels(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",")) if text else {}


def _observe(
    out: Counter[Key], metric: str, source: str, labels: str, value: float, layout: Layout
) -> None:
    for bound in layout.buckets[metric]:
        if value <= bound:
            out[(metric, source, labels, fmt_le(bound))] += 1
            break
    else:
        out[(metric, source, labels, "+Inf")] += 1
    out[(metric, source, labels, "_sum")] += value  # type: ignore[assignment]


def inquiry_tallies(rows: Iterable[Mapping[Any, Any]], layout: Layout) -> Counter[Key]:
    """What these inquiry rows contribute (non-cumulative bucket counts)."""
    out: Counter[Key] = Counter()
    for row in rows:
        source, channel = row["source"], row["channel"]
        by_channel = labels_text(channel=channel)
        out[(INQUIRIES_TOTAL, source, by_channel, "")] += 1
        if row["status"] == "answered":
            labels = labels_text(channel=channel, kind=row["kind"])
            _observe(out, RESPONSE, source, labels, row["response_seconds"], layout)
            if row["business_seconds"] is not None:
                _observe(out, RESPONSE_BUSINESS, source, labels, row["business_seconds"], layout)
            if row["breached"]:
                out[(RESPONSE_BREACHES, source, by_channel, "")] += 1
        elif row["status"] == "missed" and channel == "chat" and row["kind"] == "first":
            out[(CHATS_MISSED, source, "", "")] += 1
    return out


def call_tallies(
    rows: Iterable[Mapping[Any, Any]], layout: Layout, targets: Mapping[str, ResolvedTargets]
) -> Counter[Key]:
    """What these finished calls contribute; waiting calls contribute nothing yet."""
    out: Counter[Key] = Counter()
    for row in rows:
        if row["outcome"] == "waiting":
            continue
        source, queue = row["source"], row["queue"]
        out[(CALLS_TOTAL, source, labels_text(queue=queue, outcome=row["outcome"]), "")] += 1
        wait = row["wait_seconds"] or 0.0
        _observe(out, HOLD, source, labels_text(queue=queue), wait, layout)
        target = targets.get(source)
        if target is not None:
            for name, limit in (("warn", target.hold_warn), ("max", target.hold_max)):
                if wait > limit.total_seconds():
                    out[(HOLD_BREACHES, source, labels_text(queue=queue, threshold=name), "")] += 1
    return out


def apply(conn: Connection, delta: Counter[Key]) -> None:
    """Add `delta` to the stored tallies (one upsert per changed key)."""
    rows = [
        {"metric": m, "source": s, "labels": lab, "le": le, "value": v}
        for (m, s, lab, le), v in sorted(delta.items())
        if v != 0
    ]
    if rows:
        conn.execute(insert_add(conn, TALLIES, ["metric", "source", "labels", "le"], "value"), rows)


def difference(new: Counter[Key], old: Counter[Key]) -> Counter[Key]:
    """new - old, keeping negative entries (Counter's own subtraction drops them)."""
    delta: Counter[Key] = Counter(new)
    for key, value in old.items():
        delta[key] -= value
    return delta


def recount(conn: Connection, settings: Settings, layout: Layout) -> None:
    """Replace every tally by a recount of the stored inquiries and calls."""
    targets = {s.name: settings.targets_for(s) for s in settings.sources}
    conn.execute(delete(TALLIES))
    inquiries = conn.execute(select(INQUIRIES)).mappings()
    apply(conn, inquiry_tallies(inquiries, layout))
    calls = conn.execute(select(CALLS)).mappings()
    apply(conn, call_tallies(calls, layout, targets))
