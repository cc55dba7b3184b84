"""`support-monitor check`: the config is valid; try the database, every source and SMTP.

One line each, never a secret: a source line shows its name, kind and what was found or why it
failed. Exit status 1 if anything failed.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable

from sqlalchemy import Engine, inspect

from connectors.base import ConnectorError
from monitor.config import Settings, SmtpSettings
from monitor.publish import deliveries
from monitor.publish.mailer import connect
from monitor.store.database import StoreError, make_engine, transaction, verify
from monitor.store.ingest import build_connector


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


def report_deliveries(engine: Engine, say: Callable[[str], None]) -> None:
    """Digests and alert notifications that failed for good: a warning, not a failed check
    (the SMTP line below says whether the server works now)."""
    if not inspect(engine).has_table("delivery"):  # `check` creates nothing: a new database
        return
    with transaction(engine) as conn:
        failed = deliveries.failures(conn)
        latest = deliveries.latest_failure(conn) if failed else None
    if latest is not None:
        counts = ", ".join(f"{p} by {n}: {c}" for (p, n), c in sorted(failed.items()))
        say(f"warn  deliveries failed ({counts}); latest {latest[0]}: {latest[1]}")


def run_checks(settings: Settings, say: Callable[[str], None]) -> int:
    failures = 0
    count = len(settings.sources)
    say(f"ok    config: {count} source{'' if count == 1 else 's'}")
    try:
        engine = make_engine(settings.file.database, settings.base_dir)
        say(f"ok    database: {verify(engine)}")
        report_deliveries(engine, say)
    except StoreError as exc:
        failures += 1
        say(f"FAIL  database: {exc}")
    for source in settings.sources:
        label = f"source {source.name} ({source.kind})"
        if not source.enabled:
            say(f"skip  {label}: disabled")
            continue
        try:
            found = build_connector(settings, source).check()
            say(f"ok    {label}: {found}")
        except ConnectorError as exc:
            failures += 1
            say(f"FAIL  {label}: {exc}")
    smtp_users = smtp_used_by(settings)
    if settings.file.smtp is not None and not smtp_users:
        say("skip  smtp: not used (no digest recipients, no e-mail notifier)")
    elif settings.file.smtp is None and smtp_users:
        failures += 1
        say(f"FAIL  smtp: {' and '.join(smtp_users)} need an `smtp:` section")
    elif settings.file.smtp is not None:
        try:
            say(f"ok    smtp: {check_smtp(settings.file.smtp, settings)}")
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            failures += 1
            say(f"FAIL  smtp: {settings.file.smtp.host}:{settings.file.smtp.port}: {exc}")
    return 1 if failures else 0
