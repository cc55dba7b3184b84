"""Built-in alerts end to end: a real database, a real SMTP server and a real HTTP receiver,
time pinned and advanced explicitly."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from monitor.checks import report_deliveries
from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.measure.events import CallEvent, CallOutcome, MessageEvent, Side
from monitor.publish.alerts.run import apply_changes, claim_notices, load_states, observe, run_once
from monitor.publish.alerts.state import notices
from monitor.publish.deliveries import backoff
from monitor.publish.exporter import exposition
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import measuring, store_batch
from monitor.store.tables import ALERT_STATES, ATTEMPTS, DELIVERIES, STATES
from tests.sinks import HttpSink, SmtpSink

MIN = timedelta(minutes=1)
CALLER = "+44 20 7946 0000"


def setup(
    tmp_path: Path,
    url: str,
    *,
    smtp: SmtpSink | None = None,
    http: HttpSink | None = None,
    include_customer: bool = True,
    **alerts: Any,
) -> tuple[Settings, Engine]:
    """Two sources, and an e-mail and a webhook notifier when given their sinks. The webhook
    names customers (`include_customer`) unless told not to, so these tests read what a
    support team reads; the tests of private webhooks turn it off, as it is by default."""
    notify: list[dict[str, Any]] = []
    raw: dict[str, Any] = {
        "timezone": "Europe/London",
        "calendars": {"office": {"timezone": "Europe/London", "hours": {"fri": ["09:00-17:00"]}}},
        "sources": [
            {"name": "phones", "kind": "asterisk_queue_log", "path": "queue_log", "every": "1m"},
            {"name": "chat", "kind": "chat_jsonl", "path": "c", "targets": {"reply_within": "1h"}},
        ],
    }
    if smtp is not None:
        raw["smtp"] = {
            "host": smtp.host,
            "port": smtp.port,
            "security": "none",
            "sender": "Support Monitor <monitor@example.com>",
        }
        notify.append({"kind": "email", "to": ["oncall@example.com"]})
    if http is not None:
        notify.append(
            {
                "kind": "webhook",
                "url": http.url,
                "timeout": "5s",
                "include_customer": include_customer,
            }
        )
    raw["alerts"] = {"notify": notify, **alerts}
    settings = settings_from_mapping(raw, tmp_path)
    engine = make_engine(url, tmp_path)
    prepare(engine)
    return settings, engine


def store(engine: Engine, settings: Settings, source: str, *events: object) -> None:
    with engine.begin() as conn:
        store_batch(conn, measuring(settings, settings.source(source)), list(events))


def caller(entered: datetime, outcome: CallOutcome = CallOutcome.WAITING, **end: Any) -> CallEvent:
    return CallEvent("1700.1", "sales", entered, outcome, caller=CALLER, **end)


def seen(sink: HttpSink) -> list[tuple[str, str, str]]:
    return [(b["rule"], b["severity"], b["status"]) for b in (r.json() for r in sink.requests)]


def test_a_caller_waiting_4_6_14_minutes_then_answered_notifies_warning_critical_resolved(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, database_url, smtp=smtp_sink, http=http_sink)
    store(engine, settings, "phones", caller(now))
    for minute in (4, 6, 14):
        run_once(engine, settings, now + minute * MIN)
        if minute == 14:
            metrics = exposition(engine, settings, lambda: now + 14 * MIN).decode()
            assert 'support_alerts_firing{rule="hold_warn"} 1.0' in metrics
            assert 'support_alerts_firing{rule="hold_max"} 1.0' in metrics
    answered = now + timedelta(minutes=14, seconds=30)
    store(
        engine,
        settings,
        "phones",
        caller(now, CallOutcome.ANSWERED, answered_at=answered, left_at=answered),
    )
    run_once(engine, settings, now + 15 * MIN)
    run_once(engine, settings, now + 16 * MIN)  # re-evaluation: nothing new
    run_once(engine, settings, now + 60 * MIN)

    assert seen(http_sink) == [
        ("hold_warn", "warning", "firing"),
        ("hold_max", "critical", "firing"),
        ("hold_max", "critical", "resolved"),
    ]
    # (stripped: the stdlib folds a long Subject right after the colon, which readers unfold)
    assert [m.message["Subject"].strip() for m in smtp_sink.messages] == [
        f"[WARNING] Caller {CALLER} has waited 6m 00s in phones/sales (hold_warn 5m 00s)",
        f"[CRITICAL] Caller {CALLER} has waited 14m 00s in phones/sales (hold_max 13m 00s)",
        f"[RESOLVED] Caller {CALLER} in phones/sales was answered after 14m 30s",
    ]
    first = http_sink.requests[0].json()
    assert first["value"] == 360 and first["threshold"] == 300 and first["unit"] == "seconds"
    assert (first["source"], first["subject"]) == ("phones", "phones/1700.1")
    assert first["started_at"] == "2026-11-20T12:06:00Z" and first["resolved_at"] is None
    assert first["text"].startswith("[WARNING] Caller")
    assert first["details"]["caller"] == CALLER and first["details"]["queue"] == "sales"
    last = http_sink.requests[2].json()
    assert last["resolved_at"] == "2026-11-20T12:15:00Z" and last["value"] == 870
    metrics = exposition(engine, settings, lambda: now + 60 * MIN).decode()
    assert 'support_alerts_firing{rule="hold_max"} 0.0' in metrics
    assert CALLER not in metrics


def test_a_webhook_answering_500_then_200_delivers_once(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink)
    store(engine, settings, "phones", caller(now))
    http_sink.refuse(1, 500)
    first = run_once(engine, settings, now + 6 * MIN)
    assert first.deliveries["pending"] == 1 and "HTTP 500" in first.errors[0]
    assert run_once(engine, settings, now + 6 * MIN + 10 * MIN / 60).deliveries["sent"] == 0
    assert run_once(engine, settings, now + 6 * MIN + backoff(1)).deliveries["sent"] == 1
    run_once(engine, settings, now + 10 * MIN)
    assert http_sink.answered == [500, 200]
    assert seen(http_sink) == [("hold_warn", "warning", "firing")]
    with engine.connect() as conn:
        errors = [row.error for row in conn.execute(select(ATTEMPTS).order_by(ATTEMPTS.c.id))]
    assert len(errors) == 2 and errors[1] is None


def test_a_4xx_is_recorded_as_permanent_and_shown(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink)
    store(engine, settings, "phones", caller(now))
    http_sink.refuse(5, 404)
    outcome = run_once(engine, settings, now + 6 * MIN)
    assert outcome.deliveries == {"pending": 0, "sent": 0, "failed": 1}
    assert "HTTP 404" in outcome.errors[0] and "failed for good" in outcome.errors[0]
    assert "/hook" not in outcome.errors[0]  # a webhook's path may be its secret
    run_once(engine, settings, now + 12 * MIN)  # long after every backoff, before hold_max
    assert http_sink.answered == [404]  # not retried
    with engine.connect() as conn:
        (attempt,) = conn.execute(select(ATTEMPTS)).all()
    assert attempt.permanent
    lines: list[str] = []
    report_deliveries(engine, lines.append)
    assert lines and lines[0].startswith("warn  deliveries failed (alert by webhook: 1)")
    metrics = exposition(engine, settings, lambda: now).decode()
    assert 'support_deliveries_failed{notifier="webhook",purpose="alert"} 1.0' in metrics


HOSTILE = '<script>alert("x")</script> <!channel> & co\r\nBcc: victim@example.com'


def test_hostile_inquiry_subjects_are_escaped_in_emails_and_slack_text(
    tmp_path: Path, sqlite_url: str, smtp_sink: SmtpSink, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, smtp=smtp_sink, http=http_sink)
    question = MessageEvent("m1", "conv-1", now, Side.CUSTOMER, subject=HOSTILE)
    store(engine, settings, "chat", question)
    run_once(engine, settings, now + 61 * MIN)
    (mail,) = smtp_sink.messages
    assert mail.message["Bcc"] is None and "\n" not in mail.message["Subject"]
    assert mail.message["Subject"].strip().startswith("[CRITICAL] Chat inquiry")
    html = mail.message.get_body(("html",)).get_content()
    assert "<script>" not in html and "<!channel>" not in html
    assert "&lt;script&gt;" in html and "&amp; co" in html
    text = mail.message.get_body(("plain",)).get_content()
    assert "None" not in text and "{{" not in text
    (hook,) = http_sink.requests
    assert "<" not in hook.json()["text"] and "&lt;!channel&gt;" in hook.json()["text"]
    # Every string of a notice is one printable line: the CR LF is shown, not obeyed.
    assert hook.json()["details"]["inquiry_subject"] == HOSTILE.replace("\r\n", "\u240d\u240a")


CONTROLS = "\x1b[2J\x1b]0;pwned\x07\rRESOLVED \x9b1m\u202e"


def test_control_characters_in_a_subject_reach_no_text_mail_or_webhook_raw(
    tmp_path: Path, sqlite_url: str, smtp_sink: SmtpSink, http_sink: HttpSink, now: datetime
) -> None:
    """A subject and a conversation id written to clear a terminal, retitle a window and forge
    lines: every value printed in the plain-text mail and the webhook is one printable line."""
    settings, engine = setup(tmp_path, sqlite_url, smtp=smtp_sink, http=http_sink)
    conversation = f"c1{CONTROLS}\nRule:           nothing to see"
    question = MessageEvent("m1", conversation, now, Side.CUSTOMER, subject=CONTROLS + "\nBcc: x")
    store(engine, settings, "chat", question)
    run_once(engine, settings, now + 61 * MIN)
    (mail,) = smtp_sink.messages
    text = mail.message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # SMTP's
    (hook,) = http_sink.requests
    for sent in (text, hook.body.decode(), hook.json()["text"]):
        assert not [c for c in "\x1b\x07\r\x9b\u202e" if c in sent], sent
    lines = text.splitlines()
    assert [line for line in lines if line.startswith(("Bcc:", "Rule:"))] == [
        "Rule:           reply_overdue (critical)"  # the real one, not the forged one
    ]
    assert "\u241b[2J\u241b]0;pwned\u2407\u240dRESOLVED" in text
    assert "\n" not in hook.json()["text"]


def test_an_inquiry_due_soon_then_overdue_then_answered(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink)
    store(engine, settings, "chat", MessageEvent("m1", "c9", now, Side.CUSTOMER, subject="Order?"))
    for minute in (44, 46, 50, 61, 65):
        run_once(engine, settings, now + minute * MIN)
    store(engine, settings, "chat", MessageEvent("m2", "c9", now + 70 * MIN, Side.AGENT))
    run_once(engine, settings, now + 71 * MIN)
    assert seen(http_sink) == [
        ("reply_due_soon", "warning", "firing"),
        ("reply_overdue", "critical", "firing"),
        ("reply_overdue", "critical", "resolved"),
    ]
    summaries = [r.json()["summary"] for r in http_sink.requests]
    assert summaries == [
        'Chat inquiry "Order?" in chat breaches its reply target in 14m 00s (2026-11-20 13:00 GMT)',
        'Chat inquiry "Order?" in chat is past its reply target: open 1h 01m (target 1h 00m)',
        'Chat inquiry "Order?" in chat was answered after 1h 10m',
    ]


def test_a_stale_source_fires_and_resolves_when_read_again(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink)
    with engine.begin() as conn:
        conn.execute(STATES.insert(), {"source": "phones", "last_success_at": now - 10 * MIN})
    run_once(engine, settings, now)
    with engine.begin() as conn:
        conn.execute(update(STATES).values(last_success_at=now + MIN))
    run_once(engine, settings, now + 2 * MIN)
    summaries = [r.json()["summary"] for r in http_sink.requests]
    assert summaries == [
        "Source phones has not been read for 10m 00s (stale after 5m 00s)",
        "Source phones is read again (2026-11-20 12:01 GMT)",
    ]
    with engine.begin() as conn:
        conn.execute(update(STATES).values(last_success_at=now + timedelta(days=8)))
    run_once(engine, settings, now + timedelta(days=8))
    with engine.connect() as conn:  # resolved a week ago: forgotten
        assert conn.execute(select(ALERT_STATES)).all() == []


def test_repeat_renotifies_a_firing_alert(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink, repeat="1h")
    store(
        engine, settings, "phones", CallEvent("old", "sales", now - 20 * MIN, CallOutcome.WAITING)
    )
    for minute in (0, 30, 60, 61, 120):
        run_once(engine, settings, now + minute * MIN)
    bodies = [r.json() for r in http_sink.requests]
    assert [(b["rule"], b["repeat"]) for b in bodies] == [
        ("hold_max", False),
        ("hold_max", True),
        ("hold_max", True),
    ]
    assert bodies[1]["text"].startswith("[CRITICAL, still firing] A caller has waited 1h 20m")


def test_alerts_that_keep_firing_as_they_were_are_not_written_again(
    tmp_path: Path, sqlite_url: str, now: datetime
) -> None:
    """Three chats overdue: the first evaluation writes their states; the next ones, a minute
    and an hour later, find them firing as they were and write nothing (a backlog of tens of
    thousands would otherwise be rewritten every minute), while the counts stay right."""
    settings, engine = setup(tmp_path, sqlite_url)
    for n in range(3):
        store(engine, settings, "chat", MessageEvent(f"m{n}", f"c{n}", now, Side.CUSTOMER))
    assert run_once(engine, settings, now + 2 * timedelta(hours=1)).firing == 3
    with engine.connect() as conn:
        first = conn.execute(select(ALERT_STATES).order_by(ALERT_STATES.c.id)).all()
    for later in (MIN, timedelta(hours=1)):
        outcome = run_once(engine, settings, now + 2 * timedelta(hours=1) + later)
        assert outcome.firing == 3 and {c.kind for c in outcome.changes} == {"keep"}
    with engine.connect() as conn:
        assert conn.execute(select(ALERT_STATES).order_by(ALERT_STATES.c.id)).all() == first


def test_quiet_hours_hold_warnings_and_send_the_still_firing_ones_at_opening(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    quiet = {"calendar": "office", "severities": ["warning"]}
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink, quiet_hours=quiet)
    evening = now.replace(hour=20)  # a Friday; the office closes at 17:00
    store(engine, settings, "phones", caller(evening))
    with engine.begin() as conn:
        conn.execute(STATES.insert(), {"source": "phones", "last_success_at": evening})
    held = run_once(engine, settings, evening + 6 * MIN)  # a caller over hold_warn, a stale source
    assert [n.state.rule for n in held.held] == ["hold_warn", "source_stale"]
    gone = evening + 7 * MIN
    store(engine, settings, "phones", caller(evening, CallOutcome.ABANDONED, left_at=gone))
    run_once(engine, settings, evening + 8 * MIN)
    assert http_sink.requests == []
    opening = evening + timedelta(days=7, hours=-11)  # next Friday 09:00
    run_once(engine, settings, opening)
    run_once(engine, settings, opening + MIN)
    (notice,) = [r.json() for r in http_sink.requests]
    assert (notice["rule"], notice["started_at"]) == ("source_stale", "2026-11-20T20:06:00Z")


def test_two_instances_evaluating_together_notify_once(
    tmp_path: Path, database_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, database_url, http=http_sink)
    other = make_engine(database_url, tmp_path)
    store(engine, settings, "phones", caller(now))
    # Interleaved by hand: both see the same states and plan the same transition and notice.
    plans = [observe(e, settings, now + 6 * MIN) for e in (engine, other)]
    assert apply_changes(engine, plans[0][1], now + 6 * MIN) == 1
    assert apply_changes(other, plans[1][1], now + 6 * MIN) == 0
    owed = []
    for e in (engine, other):
        with e.connect() as conn:
            owed.append(notices(load_states(conn), now + 6 * MIN, settings))
    assert len(claim_notices(engine, settings, owed[0], now + 6 * MIN)) == 1
    assert claim_notices(other, settings, owed[1], now + 6 * MIN) == []
    # And truly concurrently, at slightly different moments, through to delivery.
    start = threading.Barrier(2)

    def evaluate(e: Engine, at: datetime) -> None:
        start.wait(timeout=30)
        run_once(e, settings, at)

    threads = [
        threading.Thread(target=evaluate, args=(e, now + 14 * MIN + n * MIN / 600))
        for n, e in enumerate((engine, other))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    run_once(other, settings, now + 15 * MIN)
    # Each once; the order is the two senders' race (the warning waited since the hand-made part).
    assert sorted(seen(http_sink)) == [
        ("hold_max", "critical", "firing"),
        ("hold_warn", "warning", "firing"),
    ]
    with engine.connect() as conn:
        assert len(conn.execute(select(DELIVERIES)).all()) == 2
        assert len(conn.execute(select(ALERT_STATES)).all()) == 2
    other.dispose()


def test_a_notice_told_by_an_instance_whose_clock_is_behind_is_not_sent_again(
    tmp_path: Path, database_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, database_url, http=http_sink)
    store(engine, settings, "phones", caller(now))
    ahead, behind = now + 6 * MIN + timedelta(milliseconds=100), now + 6 * MIN
    # One instance's clock is 0.1 s ahead: it starts the alert; the other one tells of it.
    _states, changes = observe(engine, settings, ahead)
    assert apply_changes(engine, changes, ahead) == 1
    with engine.connect() as conn:
        plan = notices(load_states(conn), behind, settings)
    assert len(claim_notices(engine, settings, plan, behind)) == 1
    run_once(engine, settings, now + 7 * MIN)
    assert seen(http_sink) == [("hold_warn", "warning", "firing")]


def test_a_dry_run_stores_and_sends_nothing(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink)
    store(engine, settings, "phones", caller(now))
    outcome = run_once(engine, settings, now + 6 * MIN, dry_run=True)
    assert [t.body["rule"] for t in outcome.told] == ["hold_warn"]
    assert outcome.told[0].to == [f"webhook http://127.0.0.1:{http_sink.url.split(':')[2][:-5]}"]
    with engine.connect() as conn:
        assert conn.execute(select(ALERT_STATES)).all() == []
        assert conn.execute(select(DELIVERIES)).all() == []
    assert http_sink.answered == []


@pytest.mark.parametrize("rule", ["hold_warn", "hold_max", "source_stale"])
def test_every_rule_is_exported_even_when_quiet(
    tmp_path: Path, sqlite_url: str, now: datetime, rule: str
) -> None:
    settings, engine = setup(tmp_path, sqlite_url)
    assert (
        f'support_alerts_firing{{rule="{rule}"}} 0.0'
        in exposition(engine, settings, lambda: now).decode()
    )
