"""`support-monitor run`: the long-running service.

APScheduler 3.x is only the local ticker: one interval job per source, polling at start-up and
then every `every`. Our own state (cursors, health) lives in our tables, so the scheduler keeps
its jobs in memory. Each job has `max_instances=1` (a slow poll is never overlapped by the next),
`coalesce=True` (after a pause, one catch-up run rather than a burst) and a misfire grace of the
job's own interval (the 1 s default silently skips runs on a busy machine).

SIGINT/SIGTERM set a stop flag: a poll in progress finishes its current batch (whose cursor is
then saved) and returns, the HTTP server closes, and the process exits.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from monitor.config import Settings, SourceSettings
from monitor.exporter import registry_for
from monitor.ingest import poll_source, utcnow
from monitor.server import make_app, serve
from monitor.store import StoreError

logger = logging.getLogger(__name__)


def poll_job(
    engine: Engine, settings: Settings, source: SourceSettings, stop: threading.Event
) -> Callable[[], None]:
    def job() -> None:
        if stop.is_set():
            return
        try:
            result = poll_source(engine, settings, source, now=utcnow(), stop=stop)
        except StoreError as exc:
            logger.error("poll %s: %s", source.name, exc)
            return
        if result.ok:
            logger.info("poll %s", result.summary())
        else:
            logger.error("poll %s", result.summary())

    return job


def build_scheduler(
    engine: Engine, settings: Settings, stop: threading.Event, *, start_at: datetime
) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=settings.timezone)
    for source in settings.sources:
        if not source.enabled:
            continue
        seconds = max(1, int(source.every.total_seconds()))
        scheduler.add_job(
            poll_job(engine, settings, source, stop),
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

    registry = registry_for(engine, settings, utcnow)
    server, _thread = serve(settings.file.metrics.listen, make_app(registry, engine, utcnow))
    logger.info("serving /metrics and /healthz on http://%s", settings.file.metrics.listen)
    scheduler = build_scheduler(engine, settings, stop, start_at=utcnow())
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
