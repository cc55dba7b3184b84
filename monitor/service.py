"""`support-monitor run`: the long-running service.

APScheduler 3.x is only the local ticker: one interval job per source asks the database every few
seconds whether the source is due and free, and polls it if this instance wins its lease
(monitor.store.leases); so several instances on PostgreSQL share the sources and one alone polls
each source every `every`. Our own state (cursors, health, leases) lives in our tables, so the
scheduler keeps its jobs in memory. Each job has `max_instances=1` (a slow poll is never
overlapped by the next), `coalesce=True` (after a pause, one catch-up run rather than a burst)
and a misfire grace of the job's own interval (the 1 s default silently skips runs on a busy
machine).

The alert rules are evaluated every `alerts.every` by one more interval job (`alert_job`), first
one interval after start, when the first polls have refreshed what the rules read (a monitor that
was stopped for an hour would otherwise call every source stale for a minute). Every instance
evaluates: transitions and notices are claimed in the database (monitor.publish.alerts.run), so
several instances notify once, and one that stops leaves the others alerting.

The digest (when `digest.to` names someone) is a cron job on `digest.schedule` in the configured
timezone; it builds and *claims* the digest of the day before the fire time, then sends it (see
monitor.publish.digest.mail: one send per day even with several instances), but only once every
enabled source has been read after that day ended and after this process started
(monitor.publish.digest.due): until then the job returns at once and a job at every
`cluster.tick` looks again, so the scheduler is never blocked; after `digest.wait_for_sources`
it goes out anyway, naming the sources still unread. The same tick retries digests whose send
failed, after their backoff, and a run at start-up catches up a digest whose fire time passed
in the last day while no instance was running.

With `retention` set, a job deletes what is older (monitor.store.retention) five minutes after start
and then daily; on PostgreSQL every instance runs it, in turns, the later ones finding nothing.

SIGINT/SIGTERM set a stop flag: a poll in progress finishes its current batch (whose cursor is
then saved) and returns, the HTTP server closes, and the process exits.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from monitor.config import Settings, SourceSettings
from monitor.publish.alerts.run import run_once
from monitor.publish.digest.due import Due, due_digest, reasons, trigger_of, unread
from monitor.publish.exporter import ProcessMetrics, registry_for
from monitor.publish.server import make_app, serve
from monitor.publish.status_access import Gate
from monitor.publish.status_routes import StatusApp
from monitor.publish.unread import when
from monitor.publish.words import duration_text
from monitor.store import leases
from monitor.store.database import StoreError
from monitor.store.ingest import poll_source, utcnow
from monitor.store.leases import owner_id
from monitor.store.retention import purge

logger = logging.getLogger(__name__)


class Poller:
    """Polls the sources this instance wins the lease of (monitor.store.leases)."""

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


def alert_job(
    engine: Engine, settings: Settings, stop: threading.Event, started_at: datetime
) -> Callable[[], None]:
    def evaluate() -> None:
        if stop.is_set():
            return
        try:
            # A source not read since this start keeps its alerts as they were: no caller
            # "resolved" or newly "waiting" on rows from before the restart.
            run_once(engine, settings, utcnow(), started_at=started_at)
        except StoreError as exc:  # the database is down: say so, evaluate again next time
            logger.error("alerts: %s", exc)

    return evaluate


class DigestJob:
    """Claims and sends the digest that the schedule says is due, once its sources are read;
    retries failed sends.

    `run` is cheap and never blocks: when the due digest's sources have not all been read
    since its day ended (and since this service started), it logs which and returns; the
    service calls it again at every tick (`cluster.tick`), and it claims the digest as soon as
    they are read, or once `digest.wait_for_sources` has passed (naming them first)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
        started_at: datetime | None = None,
    ) -> None:
        assert settings.file.digest is not None
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.started_at = started_at if started_at is not None else clock()
        self.wait = settings.file.digest.wait_for_sources
        trigger = trigger_of(settings)
        assert trigger is not None
        self.trigger = trigger
        self._said: tuple[date, tuple[str, ...]] | None = None  # the wait last logged

    def run(self) -> None:
        """Claim the digest of the day before the latest fire time once its sources are read
        (or the wait is over), then send what is due."""
        from monitor.publish.digest.mail import deliver_digests, is_claimed

        now = self.clock()
        due = due_digest(self.settings, self.trigger, now)
        try:
            if due is not None and not is_claimed(self.engine, due.day):
                self._claim_when_read(due, now)
            deliver_digests(self.engine, self.settings, now)
        except StoreError as exc:  # the database is down: the next tick tries again
            logger.error("digest: %s", exc)

    def _claim_when_read(self, due: Due, now: datetime) -> None:
        from monitor.publish.digest.mail import claim_digest

        read_after = due.read_after(self.started_at)
        missing = unread(self.engine, self.settings, read_after, now)
        deadline = due.deadline(self.wait, self.started_at)
        why = reasons(missing, read_after, self.settings)
        if missing and now < deadline:
            names = tuple(h.source for h in missing)
            if self._said != (due.day, names):  # once per change, not at every tick
                self._said = (due.day, names)
                logger.info(
                    "digest %s waits for sources not read since %s: %s; sent by %s at the latest",
                    due.day,
                    when(read_after, self.settings.timezone),
                    why,
                    when(deadline, self.settings.timezone),
                )
            return
        if missing:
            logger.warning(
                "digest %s goes out after waiting %s without these sources read: %s",
                due.day,
                duration_text(self.wait.total_seconds()),
                why,
            )
        started = read_after > due.day_end
        claim_digest(
            self.engine,
            self.settings,
            due.day,
            now,
            read_after=read_after,
            read_after_words=(
                f"the monitor started ({when(read_after, self.settings.timezone)})"
                if started
                else None
            ),
        )


def schedule_digest(
    scheduler: BackgroundScheduler, engine: Engine, settings: Settings, start_at: datetime
) -> None:
    digest = settings.file.digest
    if digest is None or not digest.to:
        logger.info("digest: not scheduled (no recipients in digest.to)")
        return
    job = DigestJob(engine, settings, started_at=start_at)
    scheduler.add_job(
        job.run,
        job.trigger,
        id="digest",
        name="digest",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,  # a busy or suspended machine still sends it, late
    )
    scheduler.add_job(job.run, "date", run_date=start_at, id="digest-catch-up")
    # Each tick: a digest waiting for its sources is claimed once they are read (or the wait
    # is over), and a failed send is retried after its backoff. Two small queries when idle.
    tick = max(1, int(settings.file.cluster.tick.total_seconds()))
    scheduler.add_job(
        job.run,
        "interval",
        seconds=tick,
        id="digest-tick",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=tick,
    )
    following = job.trigger.get_next_fire_time(None, start_at)
    logger.info(
        "digest: scheduled %r in %s, next %s",
        digest.schedule,
        settings.file.timezone,
        f"{following:%Y-%m-%d %H:%M %Z}" if following else "never",
    )


PURGE_EVERY = timedelta(days=1)
PURGE_AFTER_START = timedelta(minutes=5)  # after the first polls, not competing with them


def schedule_purge(
    scheduler: BackgroundScheduler,
    engine: Engine,
    settings: Settings,
    stop: threading.Event,
    start_at: datetime,
) -> None:
    """Retention (monitor.store.retention): a purge shortly after start, then daily; only when
    set."""
    if settings.file.retention is None:
        return

    def purge_job() -> None:
        if stop.is_set():
            return
        try:
            purge(engine, settings, utcnow())
        except StoreError as exc:  # the database is down: tomorrow's run deletes it
            logger.error("purge: %s", exc)

    scheduler.add_job(
        purge_job,
        "interval",
        seconds=PURGE_EVERY.total_seconds(),
        id="purge",
        name="purge",
        next_run_time=start_at + PURGE_AFTER_START,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,
    )


# alerts, lease renewal, the digest (scheduled, catch-up, retry) and retention.
FIXED_JOBS = 6


def build_scheduler(
    engine: Engine,
    settings: Settings,
    stop: threading.Event,
    *,
    start_at: datetime,
    process: ProcessMetrics | None = None,
) -> BackgroundScheduler:
    # A thread for every job: each runs alone (max_instances=1), so no job ever waits for a
    # free worker while others wait on their peers (APScheduler's default pool has 10, and
    # a slow IMAP server behind ten sources would have stalled every other poll, the alerts
    # and the lease renewals). Each job's own network exchanges end by their deadlines.
    enabled = sum(1 for source in settings.sources if source.enabled)
    workers = enabled + FIXED_JOBS
    scheduler = BackgroundScheduler(
        timezone=settings.timezone, executors={"default": ThreadPoolExecutor(workers)}
    )
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
        alert_job(engine, settings, stop, start_at),
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
    schedule_digest(scheduler, engine, settings, start_at)
    schedule_purge(scheduler, engine, settings, stop, start_at)
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
    started = utcnow()
    gate = Gate.from_settings(settings, utcnow)
    status = StatusApp(engine, settings, gate, utcnow, started)
    app = make_app(registry, engine, utcnow, settings, started, status_app=status)
    server, _thread = serve(settings.file.metrics.listen, app)
    logger.info(
        "serving the status page at / (%s), /metrics and /healthz on http://%s",
        "off: no status.users" if gate.closed else "login required" if gate.required else "open",
        settings.file.metrics.listen,
    )
    scheduler = build_scheduler(engine, settings, stop, start_at=started, process=process)
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
