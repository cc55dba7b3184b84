"""The Prometheus exporter: the product's metrics read from the store at scrape time.

Counters and histograms come from the `tally` table (kept by ingest), so they are monotonic,
survive restarts, agree between instances and cost a few rows per scrape. Gauges ("open now",
"waiting now") are indexed aggregates over open inquiries and waiting calls only; they read 0
when there is nothing, never vanish, so a dashboard tells "nobody is waiting" from "no data":
every inquiry source exports its open-inquiry gauges for the channels of its inquiries, every
phone source its waiting gauges for each queue it has seen or lists in `queues:` (from the
calls counted; before the first, one series for the source as a whole, with an empty `queue`).
Labels come only from configuration (source, channel, stage, kind, threshold, outcome, calendar)
or a fixed set (verdict), or are bounded where calls are stored (queue: monitor.store.queue_labels;
a queue stored before labels were bounded is folded into `other` here, the zero gauges
included); sources no longer in the configuration are not exported. Beside the product's
metrics, each source's configured targets and poll interval are exported as gauges, so the
shipped Prometheus rules honour per-source overrides instead of repeating the defaults.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, func, select

from monitor import __version__
from monitor.config import Settings, channel_of, inquiry_channel_of
from monitor.measure.calendars import BusinessCalendar
from monitor.publish.alerts.rules import RULES
from monitor.publish.deliveries import failures
from monitor.store.backlog import open_counts
from monitor.store.database import get_meta, transaction
from monitor.store.health import DIGESTS_INCOMPLETE, health_from_rows
from monitor.store.queue_labels import OTHER, exported, listed
from monitor.store.schema import ALERT_STATES, CALLS, FIRING_ALERT, STATES, TALLIES, WAITING_CALL
from monitor.store.tallies import (
    CALL_VERDICTS,
    CALLS_TOTAL,
    HISTOGRAMS,
    INQUIRIES_TOTAL,
    LATE,
    VERDICTS,
    WITHIN,
    fmt_le,
    labels_text,
    layout_for,
    parse_labels,
)
from monitor.store.verdicts import settle

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Family:
    """A metric family the collector exports: its type, help text and label names (in order)."""

    type: Literal["counter", "gauge", "histogram"]
    help: str
    labels: tuple[str, ...]

    def empty(self, name: str) -> Metric:
        """The family with no samples yet."""
        kind = {"counter": counter, "gauge": gauge, "histogram": histogram}[self.type]
        return kind(name)


INQUIRY = ("source", "channel", "stage")
# Every family of the collector, in the order of the exposition: `collect` fills them and
# `describe` names them without reading the store. Counters are named in full: prometheus_client
# drops the `_total` and writes it back.
FAMILIES: dict[str, Family] = {
    # counters and histograms from the tally table (monitor.store.tallies)
    "support_inquiries_total": Family("counter", "Inquiries opened.", INQUIRY),
    "support_response_breaches_total": Family(
        "counter", "Inquiries answered later than the reply target.", INQUIRY
    ),
    "support_calls_total": Family(
        "counter", "Calls that left the queue.", ("source", "queue", "outcome")
    ),
    "support_hold_breaches_total": Family(
        "counter",
        "Calls whose wait exceeded hold_warn (threshold=warn) or hold_max (threshold=max).",
        ("source", "queue", "threshold"),
    ),
    "support_chats_missed_total": Family(
        "counter", "Chats that ended with no human agent reply.", ("source",)
    ),
    "support_responses_clamped_total": Family(
        "counter",
        "Replies dated before the message they answer (a sender's clock is off), measured "
        "from that message.",
        ("source", "channel"),
    ),
    # the SLIs of `support-monitor slo` (docs/slo.md)
    VERDICTS: Family(
        "counter",
        "Inquiries by verdict, counted once it is known: within (answered within the reply "
        "target) or late (answered late, missed, or still open when the target passed).",
        ("source", "channel", "verdict", "stage"),
    ),
    CALL_VERDICTS: Family(
        "counter",
        "Calls that left the queue by verdict: within (a person answered within hold_warn) "
        "or late (waited longer, or never answered; short abandons and unknown ends excluded).",
        ("source", "queue", "verdict"),
    ),
    "support_response_seconds": Family(
        "histogram", "Response time of closed inquiries, calendar seconds.", (*INQUIRY, "kind")
    ),
    "support_response_business_seconds": Family(
        "histogram", "Response time of closed inquiries, business seconds.", (*INQUIRY, "kind")
    ),
    "support_hold_seconds": Family(
        "histogram", "Wait in the queue of every call that left it.", ("source", "queue")
    ),
    # open inquiries now
    "support_open_inquiries": Family("gauge", "Inquiries open now.", INQUIRY),
    "support_open_inquiries_breached": Family(
        "gauge", "Open inquiries already past the reply target.", INQUIRY
    ),
    "support_oldest_open_inquiry_age_seconds": Family(
        "gauge", "Age of the oldest open inquiry (0 when none).", INQUIRY
    ),
    "support_open_inquiry_next_breach_seconds": Family(
        "gauge",
        "Seconds until the next open inquiry not yet past the reply target breaches it "
        "(absent when none will).",
        INQUIRY,
    ),
    # callers waiting now
    "support_calls_waiting": Family("gauge", "Callers in the queue now.", ("source", "queue")),
    "support_longest_wait_seconds": Family(
        "gauge", "Current wait of the longest-waiting caller (0 when none).", ("source", "queue")
    ),
    # the sources' health
    "support_source_last_success_timestamp_seconds": Family(
        "gauge", "End of the last successful poll.", ("source",)
    ),
    "support_source_poll_errors_total": Family("counter", "Failed polls.", ("source",)),
    "support_source_records_rejected_total": Family("counter", "Bad records skipped.", ("source",)),
    "support_source_not_read": Family(
        "gauge",
        "1 while the source is not being read (last poll failed, never read, stale or "
        "disabled): its figures are incomplete; 0 while it is read.",
        ("source",),
    ),
    # the configured targets
    "support_reply_target_seconds": Family(
        "gauge", "Reply target of the source (reply_within, on its reply_clock).", INQUIRY
    ),
    "support_hold_threshold_seconds": Family(
        "gauge",
        "Hold thresholds of the source: hold_warn (threshold=warn), hold_max (threshold=max).",
        ("source", "threshold"),
    ),
    "support_source_poll_interval_seconds": Family(
        "gauge", "How often an enabled source is polled (`every`).", ("source",)
    ),
    # what goes out
    "support_alerts_firing": Family(
        "gauge",
        "1 while an alert rule fires (for any subject; see the alert's own notice for which).",
        ("rule",),
    ),
    "support_deliveries_failed": Family(
        "gauge",
        "Digests and alert notifications that could not be delivered (a permanent error, "
        "or every retry spent).",
        ("purpose", "notifier"),
    ),
    "support_digests_incomplete_total": Family(
        "counter",
        "Digests sent while a source was still unread or failing (after waiting "
        "digest.wait_for_sources).",
        (),
    ),
    # opening hours, to gate rules to them (`... and on() support_calendar_open == 1`)
    "support_calendar_open": Family(
        "gauge",
        "1 while the business-hours calendar is open, 0 while it is closed.",
        ("calendar",),
    ),
    "support_monitor_build_info": Family("gauge", "Support Monitor version.", ("version",)),
}
# The families read from tally rows: the counters, then the histograms.
TALLIED = tuple(FAMILIES)[: tuple(FAMILIES).index("support_hold_seconds") + 1]


def counter(name: str) -> CounterMetricFamily:
    """The counter `name` of FAMILIES, empty, to fill."""
    spec = FAMILIES[name]
    assert spec.type == "counter", name
    return CounterMetricFamily(name, spec.help, labels=list(spec.labels))


def gauge(name: str) -> GaugeMetricFamily:
    """The gauge `name` of FAMILIES, empty, to fill."""
    spec = FAMILIES[name]
    assert spec.type == "gauge", name
    return GaugeMetricFamily(name, spec.help, labels=list(spec.labels))


def histogram(name: str) -> HistogramMetricFamily:
    """The histogram `name` of FAMILIES, empty, to fill."""
    spec = FAMILIES[name]
    assert spec.type == "histogram", name
    return HistogramMetricFamily(name, spec.help, labels=list(spec.labels))


class OneAtATime:
    """Runs `work` for one caller at a time: callers that come while it runs wait for that run
    and get its result (figures of a moment ago, as a scrape a moment earlier would have)."""

    def __init__(self, work: Callable[[], list[Metric]]) -> None:
        self.work = work
        self.lock = threading.Lock()
        self.running: _Run | None = None

    def __call__(self) -> list[Metric]:
        with self.lock:
            run, leader = self.running, self.running is None
            if run is None:
                run = self.running = _Run()
        if not leader:
            run.done.wait()
            if run.error is not None:
                raise run.error
            return run.result
        try:
            run.result = self.work()
        except BaseException as exc:
            run.error = exc
            raise
        finally:
            with self.lock:
                self.running = None
            run.done.set()
        return run.result


class _Run:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: list[Metric] = []
        self.error: BaseException | None = None


class SupportCollector(Collector):
    """Reads the store on every scrape; `now` is a callable so tests can pin it."""

    def __init__(self, engine: Engine, settings: Settings, now: Callable[[], datetime]) -> None:
        self.engine = engine
        self.settings = settings
        self.now = now
        # The phone sources with a `queues:` list: their labels are known before any call.
        self.listing = {s.name for s in settings.sources if listed(s) is not None}
        # However many scrapers come at once, one collection runs at a time (one database
        # connection), and the scrapes that arrive meanwhile share its result.
        self.shared = OneAtATime(lambda: list(self.collect_now()))
        self.phones = {s.name for s in settings.sources if channel_of(s).value == "phone"}
        # Made once: a calendar loads its holidays.
        self.calendars = {
            name: BusinessCalendar.from_settings(calendar)
            for name, calendar in sorted(settings.file.calendars.items())
        }

    def describe(self) -> list[Metric]:
        """Every family, empty: what the registry checks for clashes when the collector is
        registered, without reading the store (as collect() would)."""
        return [spec.empty(name) for name, spec in FAMILIES.items()]

    def collect(self) -> Iterator[Metric]:
        return iter(self.shared())

    def collect_now(self) -> Iterator[Metric]:
        now = self.now()
        stages = {s.name: s.stage.value for s in self.settings.sources}
        channels = {s.name: channel_of(s).value for s in self.settings.sources}
        asked = {s.name: inquiry_channel_of(s).value for s in self.settings.sources}
        # Open inquiries whose due time has passed get their `late` verdict before the
        # counters are read (monitor.store.verdicts).
        settle(self.engine, now)
        with transaction(self.engine) as conn:
            tallies = conn.execute(select(TALLIES)).all()
            # By aggregate and index, whatever the backlog (monitor.store.backlog).
            open_rows = [
                (o.source, o.channel, o.count, o.breached, o.oldest_opened_at, o.next_due_at)
                for o in open_counts(conn, now, stages).values()
            ]
            calls = CALLS
            waiting_rows = conn.execute(
                select(calls.c.source, calls.c.queue, func.count(), func.min(calls.c.entered_at))
                .where(WAITING_CALL)
                .group_by(calls.c.source, calls.c.queue)
            ).all()
            states = conn.execute(select(STATES)).all()
            firing = firing_rules(conn)
            failed = failures(conn)
            labels = exported(conn, self.settings)
            incomplete_digests = int(get_meta(conn, DIGESTS_INCOMPLETE) or 0)

        # Queues no longer exported are folded into `other` first: the zero gauges below are of
        # the labels the counters show, never of a name stored before labels were bounded.
        folded = _folded_tallies(tallies, labels)
        seen = _seen_labels(folded)
        yield from self._tallies(folded, stages, asked, seen, labels)
        yield from self._open_inquiries(open_rows, stages, asked, seen, now)
        waiting = _folded_waiting(waiting_rows, labels)
        yield from self._waiting(waiting, stages, channels, seen, labels, now)
        yield from self._sources(states, stages)
        yield from self._not_read(states, now)
        yield from self._targets(stages, channels)
        yield from self._outgoing(firing, failed)
        yield from self._digests(incomplete_digests)
        yield self._calendars(now)
        info = gauge("support_monitor_build_info")
        info.add_metric([__version__], 1)
        yield info

    def _tallies(
        self,
        rows: Sequence[Any],
        stages: dict[str, str],
        asked: dict[str, str],
        seen: dict[tuple[str, str], set[str]],
        queues: dict[str, set[str]],
    ) -> Iterator[Metric]:
        counters = {name: counter(name) for name in TALLIED if FAMILIES[name].type == "counter"}
        hist: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
        shown: set[tuple[str, str, str]] = set()  # (metric, source, labels) of the counters
        for metric, source, labels, le, value in (tuple(r)[1:] for r in rows):
            if source not in stages:
                continue
            if metric in HISTOGRAMS:
                hist[(metric, source, labels)][le] = value
            elif metric in counters:
                values = {"source": source, "stage": stages[source], **parse_labels(labels)}
                names = FAMILIES[metric].labels
                counters[metric].add_metric([values[k] for k in names], value)
                shown.add((metric, source, labels))
        for metric, source, text in self._verdict_series(stages, asked, seen, queues):
            if (metric, source, text) not in shown:
                values = {"source": source, "stage": stages[source], **parse_labels(text)}
                names = FAMILIES[metric].labels
                counters[metric].add_metric([values[k] for k in names], 0)
        yield from counters.values()
        yield from self._histograms(hist, stages)

    def _verdict_series(
        self,
        stages: dict[str, str],
        asked: dict[str, str],
        seen: dict[tuple[str, str], set[str]],
        queues: dict[str, set[str]],
    ) -> Iterator[tuple[str, str, str]]:
        """Both verdicts of every source's inquiry channels, and of every queue of a phone
        source (the source as a whole before its first call), so that an SLO's error ratio is
        0 rather than "no data" before the first late one: they read 0 until counted."""
        for source in stages:
            channels = {asked[source]} | seen.get((INQUIRIES_TOTAL, source), set())
            for channel in sorted(channels):
                for verdict in (WITHIN, LATE):
                    yield VERDICTS, source, labels_text(channel=channel, verdict=verdict)
            if source not in self.phones:
                continue
            counted = seen.get((CALLS_TOTAL, source), set())
            if source in self.listing:
                counted |= queues.get(source, set()) - {OTHER}
            for queue in sorted(counted or {""}):
                for verdict in (WITHIN, LATE):
                    yield CALL_VERDICTS, source, labels_text(queue=queue, verdict=verdict)

    def _calendars(self, now: datetime) -> Metric:
        open_now = gauge("support_calendar_open")
        for name, calendar in self.calendars.items():
            open_now.add_metric([name], 1 if calendar.is_open(now) else 0)
        return open_now

    def _histograms(
        self, hist: dict[tuple[str, str, str], dict[str, float]], stages: dict[str, str]
    ) -> Iterator[Metric]:
        families = {name: histogram(name) for name in TALLIED if FAMILIES[name].type == "histogram"}
        layout = layout_for(self.settings).buckets
        for (metric, source, labels), counts in sorted(hist.items()):
            values = {"source": source, "stage": stages[source], **parse_labels(labels)}
            cumulative, buckets = 0.0, []
            for bound in layout[metric]:
                cumulative += counts.get(fmt_le(bound), 0.0)
                buckets.append((fmt_le(bound), cumulative))
            cumulative += counts.get("+Inf", 0.0)
            # Counts under bounds that are no longer configured still belong in +Inf and _count.
            cumulative += sum(
                v
                for k, v in counts.items()
                if k not in ("_sum", "+Inf") and float(k) not in layout[metric]
            )
            buckets.append(("+Inf", cumulative))
            names = FAMILIES[metric].labels
            families[metric].add_metric(
                [values[k] for k in names], buckets, counts.get("_sum", 0.0)
            )
        yield from families.values()

    def _open_inquiries(
        self,
        rows: Sequence[Any],
        stages: dict[str, str],
        asked: dict[str, str],
        seen: dict[tuple[str, str], set[str]],
        now: datetime,
    ) -> Iterator[Metric]:
        open_ = gauge("support_open_inquiries")
        breached = gauge("support_open_inquiries_breached")
        oldest = gauge("support_oldest_open_inquiry_age_seconds")
        next_breach = gauge("support_open_inquiry_next_breach_seconds")
        open_seen = set()
        for source, channel, count, late, first, next_due in rows:
            if source not in stages:
                continue
            key = [source, channel, stages[source]]
            open_seen.add((source, channel))
            open_.add_metric(key, count)
            breached.add_metric(key, late or 0)
            age = 0.0 if first is None else (now - first).total_seconds()
            oldest.add_metric(key, max(0.0, age))
            if next_due is not None:
                next_breach.add_metric(key, max(0.0, (next_due - now).total_seconds()))
        # Every source shows zeros for the channels its inquiries are on (a phone source's are
        # on voicemail) when nothing is open, so absent() means "no data".
        for source, stage in stages.items():
            channels = {asked[source]} | seen.get((INQUIRIES_TOTAL, source), set())
            for channel in sorted(channels):
                if (source, channel) not in open_seen:
                    for zero in (open_, breached, oldest):
                        zero.add_metric([source, channel, stage], 0)
        yield from (open_, breached, oldest, next_breach)

    def _waiting(
        self,
        rows: Sequence[Any],
        stages: dict[str, str],
        channels: dict[str, str],
        seen: dict[tuple[str, str], set[str]],
        labels: dict[str, set[str]],
        now: datetime,
    ) -> Iterator[Metric]:
        waiting = gauge("support_calls_waiting")
        longest = gauge("support_longest_wait_seconds")
        shown: set[tuple[str, str]] = set()
        for source, queue, count, first in rows:
            if source in stages:
                waiting.add_metric([source, queue], count)
                longest.add_metric([source, queue], max(0.0, (now - first).total_seconds()))
                shown.add((source, queue))
        # Nobody waiting is 0, not "no data": every queue a phone source has counted calls in,
        # or lists in `queues:` (or, before its first call, the source as a whole) reads 0 when
        # nobody waits there.
        for source in stages:
            if channels[source] != "phone":
                continue
            queues = seen.get((CALLS_TOTAL, source), set()) | {q for s, q in shown if s == source}
            if source in self.listing:
                queues |= labels.get(source, set()) - {OTHER}
            for queue in sorted(queues or {""}):
                if (source, queue) not in shown:
                    waiting.add_metric([source, queue], 0)
                    longest.add_metric([source, queue], 0)
        yield from (waiting, longest)

    def _sources(self, rows: Sequence[Any], stages: dict[str, str]) -> Iterator[Metric]:
        success = gauge("support_source_last_success_timestamp_seconds")
        errors = counter("support_source_poll_errors_total")
        rejected = counter("support_source_records_rejected_total")
        by_source = {row.source: row for row in rows}
        for source in stages:
            row = by_source.get(source)
            if row is not None and row.last_success_at is not None:
                success.add_metric([source], row.last_success_at.timestamp())
            errors.add_metric([source], row.poll_errors_total if row else 0)
            rejected.add_metric([source], row.records_rejected_total if row else 0)
        yield from (success, errors, rejected)

    def _not_read(self, rows: Sequence[Any], now: datetime) -> Iterator[Metric]:
        """1 while a source's figures are incomplete because it is not being read (its last
        poll failed, it was never read, it is stale or disabled: monitor.store.health), so a
        dashboard marks them instead of showing a quiet source."""
        family = gauge("support_source_not_read")
        health = health_from_rows((row._mapping for row in rows), self.settings, now)
        for name, state in health.items():
            family.add_metric([name], 0 if state.ok else 1)
        yield family

    def _digests(self, incomplete: int) -> Iterator[Metric]:
        family = counter("support_digests_incomplete_total")
        family.add_metric([], incomplete)
        yield family

    def _outgoing(self, firing: set[str], failed: dict[tuple[str, str], int]) -> Iterator[Metric]:
        alerts = gauge("support_alerts_firing")
        # Every built-in rule is exported, 0 when quiet, so a dashboard tells "nothing fires"
        # from "no data"; a rule fires while any of its subjects (a caller, an inquiry) does.
        for rule in sorted(set(RULES) | firing):
            alerts.add_metric([rule], 1 if rule in firing else 0)
        deliveries = gauge("support_deliveries_failed")
        # Every way this configuration delivers reads 0 until something fails for good there.
        expected = {("alert", n.kind): 0 for n in self.settings.file.alerts.notify}
        digest = self.settings.file.digest
        if digest is not None and digest.to:
            expected[("digest", "email")] = 0
        for (purpose, notifier), count in sorted((expected | failed).items()):
            deliveries.add_metric([purpose, notifier], count)
        yield from (alerts, deliveries)

    def _targets(self, stages: dict[str, str], channels: dict[str, str]) -> Iterator[Metric]:
        """The configured targets, so that Prometheus rules compare against each source's own
        `reply_within`, `hold_warn`/`hold_max` and poll interval instead of copies of them."""
        reply = gauge("support_reply_target_seconds")
        hold = gauge("support_hold_threshold_seconds")
        interval = gauge("support_source_poll_interval_seconds")
        for source in self.settings.sources:
            targets = self.settings.targets_for(source)
            name = source.name
            reply.add_metric(
                [name, channels[name], stages[name]], targets.reply_within.total_seconds()
            )
            if channels[name] == "phone":  # only phone sources have queues
                hold.add_metric([name, "warn"], targets.hold_warn.total_seconds())
                hold.add_metric([name, "max"], targets.hold_max.total_seconds())
            if source.enabled:
                interval.add_metric([name], source.every.total_seconds())
        yield from (reply, hold, interval)


def firing_rules(conn: Connection) -> set[str]:
    """The rules with any subject firing: one seek per such rule on ix_alert_firing (a skip
    from rule to rule), however many subjects fire (a backlog keeps tens of thousands of
    `reply_overdue` inquiries firing)."""
    found: set[str] = set()
    after = ""
    while True:
        rule = conn.execute(
            select(func.min(ALERT_STATES.c.rule)).where(FIRING_ALERT, ALERT_STATES.c.rule > after)
        ).scalar()
        if rule is None:
            return found
        found.add(rule)
        after = rule


def _folded_tallies(rows: Sequence[Any], labels: dict[str, set[str]]) -> list[tuple[Any, ...]]:
    """Tally rows with a `queue` that its source no longer exports (stored before labels were
    bounded, or since dropped from `queues:`) counted under `other`, summed: the series of a
    source never outnumber its labels, whatever was stored."""
    folded: dict[tuple[Any, ...], float] = {}
    for row in rows:
        _, metric, source, text, le, value = tuple(row)
        allowed = labels.get(source)
        if allowed is not None and "queue=" in text:
            parts = parse_labels(text)
            if parts.get("queue") not in allowed:
                text = labels_text(**(parts | {"queue": OTHER}))
        key = (None, metric, source, text, le)
        folded[key] = folded.get(key, 0.0) + value
    return [(*key, value) for key, value in folded.items()]


def _folded_waiting(rows: Sequence[Any], labels: dict[str, set[str]]) -> list[tuple[Any, ...]]:
    """Waiting callers by (source, queue) with the queues not exported counted as `other`."""
    folded: dict[tuple[str, str], tuple[int, datetime]] = {}
    for source, queue, count, first in rows:
        allowed = labels.get(source)
        if allowed is not None and queue not in allowed:
            queue = OTHER
        before = folded.get((source, queue))
        if before is not None:
            count, first = count + before[0], min(first, before[1])
        folded[(source, queue)] = (count, first)
    return [(source, queue, count, first) for (source, queue), (count, first) in folded.items()]


def _seen_labels(tallies: Sequence[Any]) -> dict[tuple[str, str], set[str]]:
    """For (metric, source): the channels (inquiries) or queues (calls) its tallies hold."""
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in tallies:
        metric, source, labels = tuple(row)[1:4]
        if metric == INQUIRIES_TOTAL:
            seen[(metric, source)].add(parse_labels(labels).get("channel", ""))
        elif metric == CALLS_TOTAL:
            seen[(metric, source)].add(parse_labels(labels).get("queue", ""))
    return seen


class ProcessMetrics:
    """Live instruments of this process, beside the store's business numbers: how long polls
    take is about this instance's work, not about customers, so it need not survive restarts
    or agree between instances (each instance's /metrics shows its own)."""

    def __init__(self) -> None:
        self.poll_seconds = Histogram(
            "support_source_poll_duration_seconds",
            "How long polls of a source took in this process (failed polls included).",
            ["source"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=None,
        )


def registry_for(
    engine: Engine,
    settings: Settings,
    now: Callable[[], datetime],
    process: ProcessMetrics | None = None,
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SupportCollector(engine, settings, now))
    if process is not None:
        registry.register(process.poll_seconds)
    return registry


def exposition(engine: Engine, settings: Settings, now: Callable[[], datetime]) -> bytes:
    """The text exposition, as `support-monitor metrics` prints it."""
    return generate_latest(registry_for(engine, settings, now))
