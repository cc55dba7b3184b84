"""Claim before you act: deliveries go out once, retry transient errors, record every attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import Engine, select

from monitor.config import SmtpSettings
from monitor.publish.deliveries import (
    FAILED,
    PENDING,
    SENT,
    DeliveryError,
    Pending,
    backoff,
    claim,
    deliver_due,
    failures,
)
from monitor.publish.mailer import send
from monitor.store.database import make_engine, prepare
from monitor.store.tables import ATTEMPTS, DELIVERIES
from tests.sinks import SmtpSink

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def store(url: str, tmp_path: Path) -> Engine:
    engine = make_engine(url, tmp_path)
    prepare(engine)
    return engine


def claim_digest(engine: Engine, key: str = "digest:2026-11-19") -> bool:
    with engine.begin() as conn:
        return claim(
            conn, key=key, purpose="digest", notifier="email", payload={"day": "x"}, now=NOW
        )


def mailer(sink: SmtpSink) -> tuple[SmtpSettings, object]:
    settings = SmtpSettings(
        host=sink.host, port=sink.port, security="none", sender="monitor@example.com"
    )

    def deliver(delivery: Pending) -> None:
        message = EmailMessage()
        message["From"], message["To"] = settings.sender, "lead@example.com"
        message["Subject"] = delivery.key
        message.set_content("figures")
        send(settings, Path("."), message)

    return settings, deliver


def test_a_key_is_claimed_once_and_sent_once(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    engine = store(database_url, tmp_path)
    assert claim_digest(engine) is True
    assert claim_digest(engine) is False  # a second instance or a re-run
    _, deliver = mailer(smtp_sink)
    assert deliver_due(engine, NOW, deliver) == {PENDING: 0, SENT: 1, FAILED: 0}
    assert deliver_due(engine, NOW + timedelta(hours=1), deliver)[SENT] == 0
    assert [m.message["Subject"] for m in smtp_sink.messages] == ["digest:2026-11-19"]


def test_a_server_that_says_try_later_gets_the_message_on_a_later_attempt(
    tmp_path: Path, sqlite_url: str, smtp_sink: SmtpSink
) -> None:
    engine = store(sqlite_url, tmp_path)
    claim_digest(engine)
    smtp_sink.refuse(2)
    _, deliver = mailer(smtp_sink)
    moments = [NOW, NOW + backoff(1), NOW + backoff(1) + backoff(2)]
    outcomes = [deliver_due(engine, at, deliver) for at in moments]
    assert [o[SENT] for o in outcomes] == [0, 0, 1]
    assert deliver_due(engine, NOW, deliver)[PENDING] == 0  # not due before its backoff
    assert len(smtp_sink.messages) == 1
    with engine.connect() as conn:
        errors = [r.error for r in conn.execute(select(ATTEMPTS).order_by(ATTEMPTS.c.id))]
        (row,) = conn.execute(select(DELIVERIES)).all()
    assert [e is None for e in errors] == [False, False, True]
    assert errors[0] is not None and "451" in errors[0]
    assert (row.status, row.attempts) == ("sent", 3)


def test_a_retry_is_not_attempted_before_its_backoff(tmp_path: Path, sqlite_url: str) -> None:
    engine = store(sqlite_url, tmp_path)
    claim_digest(engine)

    def down(_: Pending) -> None:
        raise DeliveryError("connection refused")

    assert deliver_due(engine, NOW, down)[PENDING] == 1
    assert deliver_due(engine, NOW + backoff(1) - timedelta(seconds=1), down)[PENDING] == 0


def test_a_permanent_error_is_recorded_and_not_retried(
    tmp_path: Path, sqlite_url: str, smtp_sink: SmtpSink
) -> None:
    engine = store(sqlite_url, tmp_path)
    claim_digest(engine)
    smtp_sink.refuse(5, "550 5.1.1 mailbox unavailable")
    _, deliver = mailer(smtp_sink)
    assert deliver_due(engine, NOW, deliver)[FAILED] == 1
    assert deliver_due(engine, NOW + timedelta(days=1), deliver) == {
        PENDING: 0,
        SENT: 0,
        FAILED: 0,
    }
    with engine.connect() as conn:
        assert failures(conn) == {("digest", "email"): 1}
        (row,) = conn.execute(select(DELIVERIES)).all()
    assert row.last_error is not None and "550" in row.last_error


def test_smtp_down_is_a_transient_one_line_error(tmp_path: Path) -> None:
    settings = SmtpSettings(host="127.0.0.1", port=9, security="none", sender="m@example.com")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "m@example.com", "x@example.com", "s"
    try:
        send(settings, tmp_path, message)
    except DeliveryError as exc:
        assert not exc.permanent and "\n" not in str(exc) and "127.0.0.1:9" in str(exc)
    else:
        raise AssertionError("sending to a closed port succeeded")
