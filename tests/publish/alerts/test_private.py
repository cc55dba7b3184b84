"""Webhooks carry no customer identifier: a real HTTP receiver and a real SMTP server.

A webhook (a chat channel, a ticket system, anyone's endpoint) gets no caller number, name,
address or inquiry subject, and subjects as opaque ids: stable across instances and restarts
(a keyed hash under the installation's own random key, kept in the database), so a receiver
can match a resolve to its alert, yet not reversible by hashing every phone number.
`include_customer: true` puts them back; e-mail notices, for the support team, name them.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, select

from monitor.config import Settings
from monitor.measure.events import CallOutcome, MessageEvent, Side
from monitor.publish.alerts.notices import opaque_subject
from monitor.publish.alerts.run import run_once
from monitor.store.database import make_engine, prepare
from monitor.store.installation import installation_key
from monitor.store.tables import DELIVERIES
from tests.publish.alerts.test_run import CALLER, MIN, caller, setup, store
from tests.sinks import HttpSink, SmtpSink

ADDRESS = "ben.h@example.org"
SUBJECT = "Refund for order 4417"


def backlog(settings: Settings, engine: Engine, now: datetime) -> None:
    store(engine, settings, "phones", caller(now))
    store(
        engine,
        settings,
        "chat",
        MessageEvent(
            "m1", f"visitor:{ADDRESS}", now, Side.CUSTOMER, customer=ADDRESS, subject=SUBJECT
        ),
    )


def test_a_webhook_names_no_customer_and_its_subjects_are_opaque_and_stable(
    tmp_path: Path,
    database_url: str,
    smtp_sink: SmtpSink,
    http_sink: HttpSink,
    now: datetime,
) -> None:
    settings, engine = setup(
        tmp_path, database_url, smtp=smtp_sink, http=http_sink, include_customer=False
    )
    backlog(settings, engine, now)
    run_once(engine, settings, now + 70 * MIN)  # hold_max and reply_overdue fire
    answered = now + 71 * MIN
    store(
        engine,
        settings,
        "phones",
        caller(now, CallOutcome.ANSWERED, answered_at=answered, left_at=answered),
    )
    # Another instance on the same database (or this one after a restart) tells the resolve.
    other = make_engine(database_url, tmp_path)
    run_once(other, settings, now + 72 * MIN)

    bodies = [r.body.decode() for r in http_sink.requests]
    assert len(bodies) == 3
    digits = re.sub(r"\D", "", CALLER)
    for body in bodies:
        assert ADDRESS not in body and "ben.h" not in body and SUBJECT not in body
        assert digits[-9:] not in re.sub(r"\D", "", body.replace("2026", ""))
        assert '"caller"' not in body and '"inquiry_subject"' not in body
    posts = [r.json() for r in http_sink.requests]
    subjects = {(p["rule"], p["status"]): p["subject"] for p in posts}
    fired, resolved = subjects[("hold_max", "firing")], subjects[("hold_max", "resolved")]
    assert re.fullmatch(r"phones/[0-9a-f]{16}", fired) and fired == resolved
    assert re.fullmatch(r"chat/[0-9a-f]{16}", subjects[("reply_overdue", "firing")])
    with engine.connect() as conn:
        key = installation_key(conn)
    assert fired == opaque_subject("phones/1700.1", key)
    hold = next(p for p in posts if p["rule"] == "hold_max" and p["status"] == "firing")
    assert hold["text"].startswith("[CRITICAL] A caller has waited 1h 10m in phones/sales")
    overdue = next(p for p in posts if p["rule"] == "reply_overdue")
    assert overdue["summary"].startswith("Chat inquiry in chat is past its reply target")

    # The e-mail notices, for the support team, name the caller and the inquiry.
    mails = "\n".join(m.message.get_body(("plain",)).get_content() for m in smtp_sink.messages)
    assert CALLER in mails and SUBJECT in mails


def test_include_customer_puts_names_numbers_and_subjects_back(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink, include_customer=True)
    backlog(settings, engine, now)
    run_once(engine, settings, now + 70 * MIN)
    posts = {p["rule"]: p for p in (r.json() for r in http_sink.requests)}
    assert posts["hold_max"]["subject"] == "phones/1700.1"
    assert posts["hold_max"]["details"]["caller"] == CALLER
    assert posts["reply_overdue"]["subject"] == f"chat/visitor:{ADDRESS}"
    assert posts["reply_overdue"]["details"]["inquiry_subject"] == SUBJECT


def test_another_installation_cannot_match_the_ids(tmp_path: Path, sqlite_url: str) -> None:
    """Each database makes its own random key on first use: the same subject gets another id
    elsewhere, so an id cannot be looked up by hashing candidate numbers."""
    ids = []
    for name in ("a", "b"):
        engine = make_engine(f"sqlite:///{tmp_path}/{name}.db", tmp_path)
        prepare(engine)
        with engine.begin() as conn:
            first = installation_key(conn)
        with engine.begin() as conn:
            assert installation_key(conn) == first  # kept
        ids.append(opaque_subject("phones/1700.1", first))
    assert ids[0] != ids[1]


def test_an_email_notice_carries_a_message_id_made_from_its_delivery(
    tmp_path: Path, sqlite_url: str, smtp_sink: SmtpSink, now: datetime
) -> None:
    """Retried after a refusal, the notice keeps the Message-ID stored with its claim."""
    settings, engine = setup(tmp_path, sqlite_url, smtp=smtp_sink)
    store(engine, settings, "phones", caller(now))
    smtp_sink.refuse(1, "451 4.3.0 try again later")
    assert run_once(engine, settings, now + 6 * MIN).deliveries["pending"] == 1
    assert run_once(engine, settings, now + 7 * MIN).deliveries["sent"] == 1
    (mail,) = smtp_sink.messages
    with engine.connect() as conn:
        (key, payload) = conn.execute(select(DELIVERIES.c.key, DELIVERIES.c.payload)).one()
    assert key.startswith("alert:hold_warn:firing:")
    assert f'"message_id": "{mail.message["Message-ID"]}"' in payload
    assert re.fullmatch(
        r"<alert\.hold.warn\.firing\.[\w.-]+\.[0-9a-f]{20}@example\.com>",
        mail.message["Message-ID"],
    )
