"""`support-monitor check`: what `run` would reject, found before it runs.

The file itself was validated when it was loaded (unknown keys, holiday countries, thresholds
out of order, addresses...). Here come the things only trying finds: whether there is anything
to monitor, whether `metrics.listen` can be had, whether the database can be used and written,
whether every source can be read (and, for files, whether their first records parse with the
source's settings), and whether the SMTP server takes a login.

One line each, never a secret: `ok`, `warn`, `skip` or `FAIL`, what was checked, what was found.
The exit status is 2 when a failure is the configuration's (nothing to monitor, a listen
address that cannot be had, a SQLite folder that cannot be created or written), else 1 when a
source, the database or SMTP failed, else 0.
"""

from __future__ import annotations

import http.client
import json
import smtplib
import ssl
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, inspect

from connectors import build_connector, connector_class
from connectors.base import ConnectorError
from monitor.config import NOTHING_TO_MONITOR, Settings, SmtpSettings, is_loopback
from monitor.publish import deliveries
from monitor.publish.digest.due import waiting_line
from monitor.publish.mailer import connect
from monitor.publish.server import ListenError, open_server, split_listen
from monitor.publish.status_access import StatusAccessError, load_users
from monitor.store.database import (
    StoreError,
    describe,
    make_engine,
    sqlite_access,
    transaction,
    verify,
)
from monitor.store.ingest import utcnow


class Report:
    """The lines of a check as they are said, and the exit status they add up to."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.status = 0

    def ok(self, subject: str, text: str) -> None:
        self._line("ok", subject, text)

    def warn(self, subject: str, text: str) -> None:
        """Worth reading, and no failure."""
        self._line("warn", subject, text)

    def skip(self, subject: str, text: str) -> None:
        self._line("skip", subject, text)

    def fail(self, subject: str, text: str, *, config: bool = False) -> None:
        """A failure; `config` when the configuration must change (exit status 2)."""
        self.status = max(self.status, 2 if config else 1)
        self._line("FAIL", subject, text)

    def _line(self, word: str, subject: str, text: str) -> None:
        self.say(f"{word:<6}{subject}: {text}")


def run_checks(settings: Settings, say: Callable[[str], None]) -> int:
    report = Report(say)
    check_config(settings, report)
    check_listen(settings, report)
    check_status_page(settings, report)
    check_database(settings, report)
    check_sources(settings, report, utcnow())
    check_mail(settings, report)
    return report.status


def check_config(settings: Settings, report: Report) -> None:
    count = len(settings.sources)
    if not count:
        report.fail("config", NOTHING_TO_MONITOR, config=True)
        return
    off = sum(not s.enabled for s in settings.sources)
    report.ok(
        "config",
        f"{count} source{'' if count == 1 else 's'}" + (f" ({off} disabled)" if off else ""),
    )
    if off == count:
        report.warn("config", "every source is disabled (`enabled: false`): `run` polls none")


def check_listen(settings: Settings, report: Report) -> None:
    """Open `metrics.listen` as `run` would and close it again. In use by a running
    support-monitor (this config's own service, most likely) is no failure: `run` is already
    there."""
    listen = settings.file.metrics.listen
    try:
        open_server(listen, _nothing).server_close()
    except ListenError as exc:
        version = exc.in_use and running_monitor(listen)
        if version:
            report.ok(
                "metrics.listen", f"{listen} is served by a running support-monitor {version}"
            )
        else:
            report.fail("metrics.listen", exc.problem, config=True)
        return
    report.ok("metrics.listen", f"{listen} is free")


def check_status_page(settings: Settings, report: Report) -> None:
    """Beyond loopback, whether the status page at `/` asks for a login or is off; and that
    every user's hash is usable (`run` refuses to start otherwise); never a hash."""
    listen = settings.file.metrics.listen
    try:
        users = load_users(settings)
    except StatusAccessError as exc:
        report.fail("status", exc.problem, config=True)
        return
    if is_loopback(split_listen(listen)[0]):
        return  # open to this machine, as /metrics is: nothing to say
    if users:
        names = ", ".join(sorted(users))
        report.ok("status", f"the page at / asks for a login ({len(users)} users: {names})")
    else:
        report.warn(
            "status",
            f"the page at / is off: {listen} is not loopback and status.users is empty "
            "(/metrics and /healthz are served)",
        )


def _nothing(_environ: object, _start_response: object) -> list[bytes]:
    return []


def running_monitor(listen: str) -> str | None:
    """The version of the support-monitor answering `/healthz` on `listen`; None when what
    listens there is something else (or does not answer within a second)."""
    host, port = split_listen(listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    conn = http.client.HTTPConnection(host, port, timeout=1)
    try:
        conn.request("GET", "/healthz")
        answer = conn.getresponse()
        body = json.loads(answer.read(64 * 1024))
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
    version = body.get("version") if isinstance(body, dict) else None
    return version if isinstance(version, str) and "status" in body else None


def check_database(settings: Settings, report: Report) -> None:
    """The database as every other command needs it. A SQLite folder that cannot be created
    or written is the configuration's failure (exit status 2): the `database` key names a
    place this user cannot store in, and no retry changes that."""
    try:
        # `check` changes nothing: a SQLite file's missing folder is not created here.
        engine = make_engine(settings.file.database, settings.base_dir, create_folder=False)
        problem = sqlite_access(engine)
        if problem is not None:
            report.fail("database", f"{describe(engine)}: {problem}", config=True)
            return
        report.ok("database", verify(engine))
        report_deliveries(engine, report.say)
        report_digest_wait(engine, settings, report.say)
    except StoreError as exc:
        report.fail("database", str(exc).removeprefix("database: ").removeprefix("database "))


def has_deliveries(engine: Engine) -> bool:
    """The database holds deliveries to read (`check` creates nothing: connecting to a
    SQLite file that is not there would create it)."""
    if engine.dialect.name == "sqlite" and not Path(engine.url.database or "").exists():
        return False
    return inspect(engine).has_table("delivery")


def report_deliveries(engine: Engine, say: Callable[[str], None]) -> None:
    """Digests and alert notifications that failed for good: a warning, not a failed check
    (the SMTP line below says whether the server works now)."""
    if not has_deliveries(engine):
        return
    with transaction(engine) as conn:
        failed = deliveries.failures(conn)
        latest = deliveries.latest_failure(conn) if failed else None
    if latest is not None:
        counts = ", ".join(f"{p} by {n}: {c}" for (p, n), c in sorted(failed.items()))
        say(f"warn  deliveries failed ({counts}); latest {latest[0]}: {latest[1]}")


def report_digest_wait(engine: Engine, settings: Settings, say: Callable[[str], None]) -> None:
    """The digest due now that waits for sources not read after its day ended, and which (or
    that it is overdue): no failure, `run` sends it."""
    if has_deliveries(engine) and (waiting := waiting_line(engine, settings, utcnow())):
        say(f"wait  {waiting}")


def check_sources(settings: Settings, report: Report, now: datetime) -> None:
    """Try every enabled source; of a source of files, also read its first records with its
    own settings: one whose every record is rejected fails here, not at its first poll."""
    for source in settings.sources:
        label = f"source {source.name} ({source.kind})"
        if not source.enabled:
            report.skip(label, "disabled")
            continue
        try:
            connector = build_connector(settings, source)
            found = connector.check()
            if connector_class(source.kind).imports_files:
                sample = connector.sample(now)
                if sample.unreadable:
                    report.fail(label, f"{found}; {sample.refusal()}")
                    continue
                found = f"{found}; {sample.describe()}"
            report.ok(label, found)
        except (ConnectorError, OSError) as exc:
            report.fail(label, str(exc))


def check_smtp(smtp: SmtpSettings, settings: Settings) -> str:
    """Connect, secure the connection as configured, log in; say where."""
    with connect(smtp, settings.base_dir):
        return f"{smtp.host}:{smtp.port} ({smtp.security})"


def smtp_used_by(settings: Settings) -> list[str]:
    users = []
    if settings.file.digest is not None and settings.file.digest.to:
        users.append("the digest")
    if any(n.needs_smtp for n in settings.file.alerts.notify):
        users.append("e-mail alerts")
    return users


def check_mail(settings: Settings, report: Report) -> None:
    smtp = settings.file.smtp
    users = smtp_used_by(settings)
    if smtp is not None and not users:
        report.skip("smtp", "not used (no digest recipients, no e-mail notifier)")
    elif smtp is None and users:
        report.fail("smtp", f"{' and '.join(users)} need an `smtp:` section")
    elif smtp is not None:
        try:
            report.ok("smtp", check_smtp(smtp, settings))
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            report.fail("smtp", f"{smtp.host}:{smtp.port}: {exc}")
