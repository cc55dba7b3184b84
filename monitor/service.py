"""`support-monitor run`: the long-running service.

APScheduler 3.x is only the local ticker: one interval job per source asks the database every few
seconds whether the source is due and free, and polls it if this instance wins its lease
(monitor.leases); so several instances on PostgreSQL share the sources and one alone polls each
source every `every`. Our own state (cursors, health, leases) lives in our tables, so the
scheduler keeps its jobs in memory. Each job has `max_instances=1` (a slow poll is never
overlapped by the next), `coalesce=True` (after a pause, one catch-up run rather than a burst)
and a misfire grace of the job's own interval (the 1 s default silently skips runs on a busy
machine).

The alert rules are evaluated every `alerts.every` by one more interval job (`alert_job`), first
one interval after start, when the first polls have refreshed what the rules read (a monitor that
was stopped for an hour would otherwise call every source stale for a minute). Every instance
evaluates: transitions and notices are claimed in the database (monitor.alerts), so several
instances notify once, and one that stops leaves the others alerting.

SIGINT/SIGTERM set a stop flag: a poll in progress finishes its current batch (whose cursor is
then saved) and returns, the HTTP server closes, and the process exits.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from monitor import leases
from monitor.alerts import run_once
from monitor.config import Settings, SourceSettings
from monitor.exporter import ProcessMetrics, registry_for
from monitor.ingest import poll_source, utcnow
from monitor.leases import owner_id
from monitor.server import make_app, serve
from monitor.store import StoreError

logger = logging.getLogger(__name__)


class Poller:
    """Polls the sources this instance wins the lease of (monitor.leases)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        stop: threading.Event,
        process: ProcessMetrics | None = None,
    ) -> None:
        self.engine = engine
        self.process = process
        self.settings = settings
        self.stop = stop
        self.owner = owner_id()
        self.lease = settings.file.cluster.lease
        self._polling: set[str] = set()
        self._lock = threading.Lock()

    def job(self, source: SourceSettings) -> Callable[[], None]:
        def poll() -> None:
            if self.stop.is_set():
                return
            try:
                self.poll_if_due(source)
            except StoreError as exc:  # the database is down: say so, retry next tick
                logger.error("poll %s: %s", source.name, exc)

        return poll

    def poll_if_due(self, source: SourceSettings) -> None:
        if not leases.claim(self.engine, source.name, self.owner, utcnow(), self.lease):
            return
        started = time.monotonic()
        with self._lock:
            self._polling.add(source.name)
        try:
            result = poll_source(self.engine, self.settings, source, now=utcnow(), stop=self.stop)
            took = time.monotonic() - started
            if self.process is not None:
                self.process.poll_seconds.labels(source.name).observe(took)
            if result.ok:
                logger.info("poll %s (%.3f s)", result.summary(), took)
            else:
                logger.error("poll %s (%.3f s)", result.summary(), took)
        finally:
            with self._lock:
                self._polling.discard(source.name)
            leases.release(self.engine, source.name, self.owner, utcnow() + source.every)

    def renew(self) -> None:
        """Keep the leases of polls in progress alive (a long IMAP backfill, a big file)."""
        with self._lock:
            polling = sorted(self._polling)
        for name in polling:
            try:
                if not leases.renew(self.engine, name, self.owner, utcnow(), self.lease):
                    logger.warning("lost the lease of %s; it stops after this batch", name)
            except StoreError as exc:
                logger.error("renewing the lease of %s: %s", name, exc)


def alert_job(engine: Engine, settings: Settings, stop: threading.Event) -> Callable[[], None]:
    def evaluate() -> None:
        if stop.is_set():
            return
        try:
            run_once(engine, settings, utcnow())
        except StoreError as exc:  # the database is down: say so, evaluate again next time
            logger.error("alerts: %s", exc)

    return evaluate


def build_scheduler(
    engine: Engine,
    settings: Settings,
    stop: threading.Event,
    *,
    start_at: datetime,
    process: ProcessMetrics | None = None,
) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=settings.timezone)
    poller = Poller(engine, settings, stop, process)
    leases.sync(engine, settings, start_at)
    for source in settings.sources:
        if not source.enabled:
            continue
        # Ask often, so a crashed instance's sources are taken over soon after its lease ends.
        seconds = max(1, int(min(source.every, settings.file.cluster.tick).total_seconds()))
        scheduler.add_job(
            poller.job(source),
            "interval",
            seconds=seconds,
            id=f"poll:{source.name}",
            name=f"poll {source.name}",
            next_run_time=start_at,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=seconds,
            replace_existing=True,
        )
    every = max(1.0, settings.file.alerts.every.total_seconds())
    scheduler.add_job(
        alert_job(engine, settings, stop),
        "interval",
        seconds=every,
        id="alerts",
        name="alerts",
        next_run_time=start_at + timedelta(seconds=every),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=int(every),
    )
    renew_every = max(1, int(settings.file.cluster.lease.total_seconds() // 3))
    scheduler.add_job(
        poller.renew,
        "interval",
        seconds=renew_every,
        id="renew-leases",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=renew_every,
    )
    return scheduler


def run(engine: Engine, settings: Settings, stop: threading.Event | None = None) -> int:
    """Serve until SIGINT/SIGTERM (or `stop` is set). Returns the exit status."""
    stop = stop or threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

    with leases.instance_lock(engine):
        return _serve(engine, settings, stop)


def _serve(engine: Engine, settings: Settings, stop: threading.Event) -> int:
    process = ProcessMetrics()
    registry = registry_for(engine, settings, utcnow, process)
    server, _thread = serve(settings.file.metrics.listen, make_app(registry, engine, utcnow))
    logger.info("serving /metrics and /healthz on http://%s", settings.file.metrics.listen)
    scheduler = build_scheduler(engine, settings, stop, start_at=utcnow(), process=process)
    scheduler.start()
    names = ", ".join(s.name for s in settings.sources if s.enabled) or "none"
    logger.info("polling sources: %s", names)
    try:
        while not stop.wait(1.0):  # a timed wait keeps the main thread responsive to signals
            pass
    finally:
        scheduler.shutdown(wait=True)
        server.shutdown()
        server.server_close()
        logger.info("stopped")
    return 0
