"""What each stored inquiry and call adds to the monotonic metrics (counters and histograms).

Prometheus counters and histograms must never go down and must survive restarts, and a scrape
must cost the same whatever the history's size. So the store keeps them as `Tally` rows, and
ingest applies, in the same transaction as the rows themselves, the difference between what the
rows it replaces contributed and what the new rows contribute. The tallies therefore always equal
a recount of the store (a test checks exactly that), without ever recounting at scrape time.

Bucket bounds are fixed per metric from defaults plus every configured target, so that
"answered within target" is an exact bucket in PromQL. When the configured targets change, the
layout changes and the tallies are rebuilt once from the store (`rebuild`).

One gauge is kept the same way: the inquiries open now per source and channel (`OPEN_NOW`).
An inquiry is open from the rebuild that stores it until the rebuild that stores it answered
or missed, and time alone never closes one, so the same differences keep it exact, and a
report reads the size of a backlog of tens of thousands as one row (monitor.store.backlog).
Unlike the counters it goes down, and retention (which never deletes an open inquiry) keeps
none of it among the purged tallies (`gauges`).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Engine, delete, select

from monitor.config import ResolvedTargets, Settings
from monitor.measure.summaries import is_short_abandon
from monitor.store.database import get_meta, insert_add, transaction
from monitor.store.schema import CALLS, INQUIRIES, PURGED_TALLIES, TALLIES

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
RESPONSES_CLAMPED = "support_responses_clamped_total"
# The gauge kept as a tally: inquiries open now, labelled by channel (see the module's words).
OPEN_NOW = "support_open_inquiries"
# Each inquiry's verdict (within / late) once it is known, and each finished call's: the SLIs of
# `support-monitor slo` (docs/slo.md). An inquiry's is stored with it (`inquiry.verdict`): given
# when it closes, or `late` by the first scrape after its due time (monitor.store.verdicts).
VERDICTS = "support_response_verdicts_total"
CALL_VERDICTS = "support_call_verdicts_total"
WITHIN, LATE = "within", "late"
HISTOGRAMS = (RESPONSE, RESPONSE_BUSINESS, HOLD)
# Bumped whenever a measurement rule changes what the stored rows measure (which call waits
# count, which reply closes what), so that start-up redoes the measurements once (ingest's
# `reconcile`), as it does for a changed target. 2: unknown calls have no wait, clamped
# replies, callbacks closed by the caller getting through, short abandons; 3: an inquiry keeps
# the reply that answered it and who wrote it; 4: the verdict counters (the calls stored before
# have theirs counted at the first start, by hold_warn, which a schema upgrade does not know).
RULES = 4

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
            "rules": RULES,
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


@functools.lru_cache(maxsize=4096)
def labels_text(**labels: str) -> str:
    # Cached: ingest asks for the same few label sets (a queue, an outcome) for every row.
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def parse_labels(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",")) if text else {}


@functools.cache
def _le_texts(bounds: Sequence[float]) -> tuple[str, ...]:
    return (*(fmt_le(b) for b in bounds), "+Inf")


def _observe(
    out: Counter[Key], metric: str, source: str, labels: str, value: float, layout: Layout
) -> None:
    bounds = tuple(layout.buckets[metric])
    _count(out, metric, source, labels, value, bounds, _le_texts(bounds))


def _count(
    out: Counter[Key],
    metric: str,
    source: str,
    labels: str,
    value: float,
    bounds: Sequence[float],
    les: tuple[str, ...],
) -> None:
    """_observe with the metric's bounds and their `le` texts (`_le_texts`) at hand."""
    # The first bound >= value (value <= bound), else +Inf; NaN compares false: +Inf too.
    index = bisect.bisect_left(bounds, value) if value == value else len(bounds)
    out[(metric, source, labels, les[index])] += 1
    out[(metric, source, labels, "_sum")] += value  # type: ignore[assignment]


# What an inquiry row contributes depends on these of its columns (tally_inquiries' order).
INQUIRY_TALLIED = (
    "source",
    "channel",
    "status",
    "kind",
    "response_seconds",
    "business_seconds",
    "breached",
    "clamped",
    "verdict",
)


def inquiry_tallies(rows: Iterable[Mapping[Any, Any]], layout: Layout) -> Counter[Key]:
    """What these inquiry rows contribute (non-cumulative bucket counts)."""
    return tally_inquiries(map(itemgetter(*INQUIRY_TALLIED), rows), layout)


def tally_inquiries(inquiries: Iterable[tuple[Any, ...]], layout: Layout) -> Counter[Key]:
    """inquiry_tallies of tuples of the INQUIRY_TALLIED columns (ingest has its new inquiries
    as tuples: no mapping is made for each).

    Ingest tallies every inquiry it stores (a thousand a batch of e-mail), so the per-row work
    is only grouping: the rows are counted by their shape (what the counters depend on, in C),
    and the answered ones' times listed per label set; each label set's buckets are then
    counted with bisect on its sorted times, as tally_calls does. Each `_sum` adds its times
    in the rows' order, as adding them one by one would (a float sum depends on its order)."""
    rows = inquiries if isinstance(inquiries, list) else list(inquiries)
    out: Counter[Key] = Counter()
    answered: dict[tuple[str, str, str], list[tuple[Any, ...]]] = {}
    for shape, count in Counter(map(_SHAPE, rows)).items():
        source, channel, status, kind, breached, clamped, verdict = shape
        by_channel = _channel_labels(channel)
        out[(INQUIRIES_TOTAL, source, by_channel, "")] += count
        if verdict is not None:  # given at ingest, or by a scrape (monitor.store.verdicts)
            out[(VERDICTS, source, _verdict_labels(channel, verdict), "")] += count
        if status == "answered":
            answered[(source, channel, kind)] = []
            if breached:
                out[(RESPONSE_BREACHES, source, by_channel, "")] += count
            if clamped:
                out[(RESPONSES_CLAMPED, source, by_channel, "")] += count
        elif status == "missed" and channel == "chat" and kind == "first":
            out[(CHATS_MISSED, source, "", "")] += count
        elif status == "open":
            out[(OPEN_NOW, source, by_channel, "")] += count
    if not answered:
        return out
    for row in rows:
        if row[2] == "answered":
            answered[(row[0], row[1], row[3])].append(row)
    for (source, channel, kind), group in answered.items():
        labels = _kind_labels(channel, kind)
        _count_all(out, RESPONSE, source, labels, [r[4] for r in group], layout)
        business = [r[5] for r in group if r[5] is not None]
        if business:
            _count_all(out, RESPONSE_BUSINESS, source, labels, business, layout)
    return out


# The columns of INQUIRY_TALLIED the counters depend on, but the times (the histograms').
_SHAPE = itemgetter(0, 1, 2, 3, 6, 7, 8)


def _count_all(
    out: Counter[Key], metric: str, source: str, labels: str, values: list[float], layout: Layout
) -> None:
    """_count of each of `values`, in one pass per bucket."""
    bounds = layout.buckets[metric]
    les = _le_texts(bounds)
    # A value is in the first bucket whose bound is >= it, else in +Inf; NaN compares false:
    # +Inf too. So a bucket holds the values above the bound before it, up to its own.
    ordered = sorted(v for v in values if v == v)
    below = 0
    for bound, le in zip(bounds, les, strict=False):
        upto = bisect.bisect_right(ordered, bound)
        if upto > below:
            out[(metric, source, labels, le)] += upto - below
        below = upto
    if len(values) > below:
        out[(metric, source, labels, les[-1])] += len(values) - below
    out[(metric, source, labels, "_sum")] += sum(values)  # type: ignore[assignment]


def gauges(counts: Counter[Key]) -> tuple[Counter[Key], Counter[Key]]:
    """`counts` split into what only grows (the counters and histograms: what purged rows
    keep) and the gauges kept as tallies (what purged rows take away)."""
    kept = Counter({k: v for k, v in counts.items() if k[0] != OPEN_NOW})
    gauge = Counter({k: v for k, v in counts.items() if k[0] == OPEN_NOW})
    return kept, gauge


@functools.lru_cache(maxsize=256)
def _verdict_labels(channel: str, verdict: str) -> str:
    return labels_text(channel=channel, verdict=verdict)


@functools.lru_cache(maxsize=256)
def _channel_labels(channel: str) -> str:
    return labels_text(channel=channel)


@functools.lru_cache(maxsize=256)
def _kind_labels(channel: str, kind: str) -> str:
    return labels_text(channel=channel, kind=kind)


def call_tallies(
    rows: Iterable[Mapping[Any, Any]], layout: Layout, targets: Mapping[str, ResolvedTargets]
) -> Counter[Key]:
    """What these finished calls contribute; waiting calls contribute nothing yet."""
    calls = (
        (r["source"], r["queue"], r["outcome"], r["wait_seconds"], r["short_abandon"]) for r in rows
    )
    return tally_calls(calls, layout, targets)


# A person answered: the outcomes that can be `within` (monitor.measure.events.GOT_THROUGH).
_ANSWERED = frozenset({"answered", "transferred"})
# Not answered, and not a call of unknown end: `late` whatever the wait (but a short abandon).
_UNANSWERED = frozenset({"abandoned", "timeout", "exit_key", "exit_empty"})


_BY_QUEUE = itemgetter(0, 1)
_OUTCOME = itemgetter(2)


def tally_calls(
    calls: Iterable[tuple[str, str, str, float | None, bool]],
    layout: Layout,
    targets: Mapping[str, ResolvedTargets],
) -> Counter[Key]:
    """call_tallies of (source, queue, outcome, wait seconds, short abandon flag) tuples.

    Ingest tallies every call it stores, so the per-call work is only grouping; the buckets
    and breaches of each queue are then counted with bisect on its sorted waits. A call whose
    end was never seen (`unknown`) counts among the calls but has no known wait: it is in no
    hold bucket, no breach and no verdict.

    A call's verdict (`support_call_verdicts_total`): `within` when a person answered it within
    the source's `hold_warn`; `late` when it waited longer or was never answered. A short
    abandon (a misdial: monitor.measure.summaries.is_short_abandon) and an answered call of
    unknown wait have none."""
    out: Counter[Key] = Counter()
    waits: dict[tuple[str, str], list[float]] = {}
    answered: dict[tuple[str, str], list[float]] = {}
    unanswered: Counter[tuple[str, str]] = Counter()  # late whatever their wait
    # A batch's calls grouped by (source, queue) in C (a stable sort: each group's waits in the
    # order given, so their sums are those of the calls one by one), then each group's counts
    # by comprehensions: a Python loop with dictionary updates per call cost twice as much.
    finished = sorted((c for c in calls if c[2] != "waiting"), key=_BY_QUEUE)
    for key, group in groupby(finished, _BY_QUEUE):
        rows = list(group)
        source, queue = key
        for outcome, count in Counter(map(_OUTCOME, rows)).items():
            out[(CALLS_TOTAL, source, labels_text(queue=queue, outcome=outcome), "")] += count
        answered[key] = [w for _, _, o, w, _ in rows if o in _ANSWERED and w is not None]
        target = targets.get(source)
        late = sum(
            1
            for _, _, o, w, flagged in rows
            if o in _UNANSWERED and not _short_abandon(o, w, flagged, target)
        )
        if late:
            unanswered[key] = late
        known = [w for _, _, o, w, _ in rows if o != "unknown" and w is not None]
        if known:
            waits[key] = known
    _call_verdicts(out, answered, unanswered, targets)
    for (source, queue), values in waits.items():
        labels = labels_text(queue=queue)
        total = sum(values)
        ordered = total == total  # else a NaN among them: sorting would not order them
        if ordered:
            values.sort()
            _count_sorted(out, (HOLD, source, labels), values, layout.buckets[HOLD])
            out[(HOLD, source, labels, "_sum")] += total  # type: ignore[assignment]
        else:
            for value in values:
                _observe(out, HOLD, source, labels, value, layout)
        target = targets.get(source)
        if target is None:
            continue
        for name, limit in (("warn", target.hold_warn), ("max", target.hold_max)):
            seconds = limit.total_seconds()
            if ordered:
                over = len(values) - bisect.bisect_right(values, seconds)
            else:
                over = sum(1 for v in values if v > seconds)
            if over:
                out[(HOLD_BREACHES, source, labels_text(queue=queue, threshold=name), "")] += over
    return out


def _short_abandon(
    outcome: str, wait: float | None, flagged: bool, target: ResolvedTargets | None
) -> bool:
    return target is not None and is_short_abandon(outcome, wait, flagged, target)


def _call_verdicts(
    out: Counter[Key],
    answered: Mapping[tuple[str, str], list[float]],
    unanswered: Mapping[tuple[str, str], int],
    targets: Mapping[str, ResolvedTargets],
) -> None:
    """Each queue's `within` (answered within hold_warn) and `late` (the rest) calls."""
    for key in answered.keys() | unanswered.keys():
        source, queue = key
        target = targets.get(source)
        if target is None:
            continue  # a source no longer configured: no hold_warn to judge by
        limit = target.hold_warn.total_seconds()
        values = answered.get(key, [])
        within = sum(1 for v in values if v <= limit)  # NaN compares false: late
        late = len(values) - within + unanswered.get(key, 0)
        if within:
            out[(CALL_VERDICTS, source, labels_text(queue=queue, verdict=WITHIN), "")] += within
        if late:
            out[(CALL_VERDICTS, source, labels_text(queue=queue, verdict=LATE), "")] += late


def _count_sorted(
    out: Counter[Key], key: tuple[str, str, str], values: list[float], bounds: tuple[float, ...]
) -> None:
    """Bucket counts (non-cumulative) of sorted `values`, each in the first bound >= it."""
    below = 0
    for bound, le in zip(bounds, _le_texts(tuple(bounds)), strict=False):
        upto = bisect.bisect_right(values, bound)
        if upto > below:
            out[(*key, le)] += upto - below
        below = upto
    if len(values) > below:
        out[(*key, "+Inf")] += len(values) - below


def apply(conn: Connection, delta: Counter[Key], table: Any = TALLIES) -> None:
    """Add `delta` to the stored tallies, or to another table of tallies such as retention's
    purged_tally (one upsert per changed key)."""
    rows = [
        {"metric": m, "source": s, "labels": lab, "le": le, "value": v}
        for (m, s, lab, le), v in sorted(delta.items())
        if v != 0
    ]
    if rows:
        conn.execute(insert_add(conn, table, ["metric", "source", "labels", "le"], "value"), rows)
    if any(key[0] == OPEN_NOW and value < 0 for key, value in delta.items()):
        # A gauge back at zero leaves no row, as a recount would write none.
        conn.execute(delete(table).where(table.c.metric == OPEN_NOW, table.c.value <= 0))


def difference(new: Counter[Key], old: Counter[Key]) -> Counter[Key]:
    """new - old, keeping negative entries (Counter's own subtraction drops them)."""
    delta: Counter[Key] = Counter(new)
    for key, value in old.items():
        delta[key] -= value
    return delta


def recount(conn: Connection, settings: Settings, layout: Layout) -> None:
    """Replace every tally by a recount of the stored inquiries and calls, plus what rows
    deleted by retention had counted (so a recount never makes a counter go down)."""
    targets = {s.name: settings.targets_for(s) for s in settings.sources}
    conn.execute(delete(TALLIES))
    apply(conn, purged(conn, layout))
    inquiries = conn.execute(select(INQUIRIES)).mappings()
    apply(conn, inquiry_tallies(inquiries, layout))
    calls = conn.execute(select(CALLS)).mappings()
    apply(conn, call_tallies(calls, layout, targets))


def purged(conn: Connection, layout: Layout) -> Counter[Key]:
    """The purged tallies (monitor.store.retention) in `layout`'s buckets. A count kept under a
    bound the layout no longer has goes to the next bound above it: every bound of both layouts
    keeps its exact cumulative count; only a new bound can count a purged value too high."""
    out: Counter[Key] = Counter()
    for row in conn.execute(select(PURGED_TALLIES)).mappings():
        metric, le = row["metric"], row["le"]
        if metric in layout.buckets and le not in ("", "_sum", "+Inf"):
            bounds = layout.buckets[metric]
            le = _le_texts(tuple(bounds))[bisect.bisect_left(bounds, float(le))]
        out[(metric, row["source"], row["labels"], le)] += row["value"]
    return out


@dataclass(frozen=True)
class MeasuredWith:
    """What the stored measurements and tallies were made with, against these settings."""

    previous: str | None  # the signature of the settings they were made for (None: never)
    signature: str  # these settings' (their targets, calendars and buckets)
    bounded: bool  # whether the stored calls' queue labels are bounded

    @property
    def current(self) -> bool:
        """Nothing to redo (`ingest.reconcile`)."""
        return self.previous == self.signature and self.bounded


def measured_with(conn: Connection, settings: Settings, layout: Layout) -> MeasuredWith:
    return MeasuredWith(
        previous=get_meta(conn, "measure_signature"),
        signature=layout.signature(settings),
        bounded=get_meta(conn, "queue_labels") is not None,
    )


def measurements_current(engine: Engine, settings: Settings) -> bool:
    """Whether `ingest.reconcile` has nothing to redo: a command need not import the ingest
    to find out."""
    with transaction(engine) as conn:
        return measured_with(conn, settings, layout_for(settings)).current
