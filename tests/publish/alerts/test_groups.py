"""Grouped alert notifications: a backlog is one notification per (rule, event) and notifier,
against a real database, a real SMTP server and a real HTTP receiver, time pinned."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from monitor.config import Settings
from monitor.measure.events import CallEvent, CallOutcome, MessageEvent, Side
from monitor.publish.alerts.groups import CARRIED, LISTED, group_key
from monitor.publish.alerts.run import apply_changes, claim_notices, load_states, observe, run_once
from monitor.publish.alerts.state import Plan, notices
from monitor.publish.deliveries import claim
from monitor.store.database import make_engine
from monitor.store.tables import ALERT_STATES, DELIVERIES, STATES
from tests.publish.alerts.test_run import HOSTILE, MIN, caller, seen, setup, store
from tests.sinks import HttpSink, SmtpSink

HOUR = timedelta(hours=1)


def backlog(engine: Engine, settings: Settings, now: datetime, count: int, **kw: str) -> None:
    """`count` chat inquiries opened a minute apart before `now`: conv-0 is the oldest."""
    store(
        engine,
        settings,
        "chat",
        *(
            MessageEvent(f"m{i}", f"conv-{i}", now - (count - i) * MIN, Side.CUSTOMER, **kw)
            for i in range(count)
        ),
    )


def answer_all(engine: Engine, settings: Settings, at: datetime, count: int) -> None:
    replies = (MessageEvent(f"r{i}", f"conv-{i}", at, Side.AGENT) for i in range(count))
    store(engine, settings, "chat", *replies)


def subjects(sink: HttpSink) -> Counter[tuple[str, str]]:
    """(subject, status) of every alert in every accepted webhook post."""
    return Counter(
        (alert["subject"], alert["status"])
        for body in (r.json() for r in sink.requests)
        for alert in body["alerts"]
    )


def test_a_backlog_at_the_first_evaluation_is_one_notification_per_notifier(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, database_url, smtp=smtp_sink, http=http_sink)
    backlog(engine, settings, now, 25)
    outcome = run_once(engine, settings, now + 2 * HOUR)
    assert outcome.deliveries == {"pending": 0, "sent": 2, "failed": 0}
    assert [len(t.notices) for t in outcome.told] == [25]
    assert run_once(engine, settings, now + 2 * HOUR + MIN).deliveries["sent"] == 0

    (hook,) = [r.json() for r in http_sink.requests]
    assert (hook["rule"], hook["severity"], hook["status"], hook["count"]) == (
        "reply_overdue",
        "critical",
        "firing",
        25,
    )
    assert hook["summary"] == "25 inquiries are past their reply target"
    assert (hook["source"], hook["subject"], hook["value"]) == ("chat", None, None)
    assert hook["threshold"] == 3600 and hook["started_at"] == "2026-11-20T14:00:00Z"
    # Worst first: the longest open; every alert carried (25 < CARRIED) with its own figures.
    assert [a["subject"] for a in hook["alerts"]] == [f"chat/conv-{i}" for i in range(25)]
    assert hook["alerts"][0]["value"] == 2 * 3600 + 25 * 60 and hook["alerts"][0]["threshold"]
    lines = hook["text"].splitlines()
    assert lines[0] == "[CRITICAL] 25 inquiries are past their reply target"
    assert len(lines) == 1 + LISTED + 1 and lines[-1] == "… and 5 more"
    assert (
        lines[1] == "• Chat inquiry in chat is past its reply target: open 2h 25m (target 1h 00m)"
    )

    (mail,) = smtp_sink.messages
    assert mail.message["Subject"].strip() == "[CRITICAL] 25 inquiries are past their reply target"
    text = mail.message.get_body(("plain",)).get_content()
    assert "Alerts:         25 (the 20 worst are listed)" in text
    assert "chat/conv-19, started 2026-11-20 14:00:00 GMT" in text
    assert "chat/conv-20" not in text and "... and 5 more." in text
    html = mail.message.get_body(("html",)).get_content()
    assert html.count("chat/conv-") == LISTED and "… and 5 more." in html
    with engine.connect() as conn:
        assert len(conn.execute(select(DELIVERIES)).all()) == 2
        told = conn.execute(select(ALERT_STATES.c.last_notified_at)).scalars().all()
    assert len(told) == 25 and all(at is not None for at in told)


def test_a_single_notice_reads_as_before_with_count_and_alerts_added(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink)
    backlog(engine, settings, now, 1, subject="Order?")
    run_once(engine, settings, now + 2 * HOUR)
    (hook,) = [r.json() for r in http_sink.requests]
    assert hook["subject"] == "chat/conv-0" and hook["value"] == 2 * 3600 + 60
    assert hook["text"] == (
        '[CRITICAL] Chat inquiry "Order?" in chat is past its reply target: open 2h 01m '
        "(target 1h 00m)"
    )
    (alert,) = hook["alerts"]
    assert hook["count"] == 1 and alert == {
        name: hook[name] for name in alert
    }  # the same alert, twice: once flat (as before grouping), once in the list
    assert set(hook) - set(alert) == {"repeat", "notified_at", "text", "count", "alerts"}


def test_mixed_rules_at_once_give_one_notification_per_rule_and_event(
    tmp_path: Path, database_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, database_url, http=http_sink)
    store(
        engine,
        settings,
        "phones",
        *(
            CallEvent(f"c{i}", "sales", now - (6 + 4 * i) * MIN, CallOutcome.WAITING)
            for i in range(3)
        ),
    )
    backlog(engine, settings, now, 2)
    with engine.begin() as conn:
        conn.execute(STATES.insert(), {"source": "phones", "last_success_at": now - 10 * MIN})
    run_once(engine, settings, now + 4 * MIN)  # callers waiting 10, 14 and 18 minutes
    assert [(r.json()["rule"], r.json()["count"]) for r in http_sink.requests] == [
        ("hold_max", 2),
        ("hold_warn", 1),
        ("source_stale", 1),
    ]
    answered = now + 5 * MIN
    store(
        engine,
        settings,
        "phones",
        *(
            CallEvent(
                f"c{i}",
                "sales",
                now - (6 + 4 * i) * MIN,
                CallOutcome.ANSWERED,
                answered_at=answered,
                left_at=answered,
            )
            for i in range(3)
        ),
    )
    run_once(engine, settings, now + 2 * HOUR)  # the callers answered; the inquiries overdue
    assert [(r.json()["rule"], r.json()["status"], r.json()["count"]) for r in http_sink.requests][
        3:
    ] == [
        ("hold_max", "resolved", 2),
        ("hold_warn", "resolved", 1),
        ("reply_overdue", "firing", 2),
    ]
    grouped = http_sink.requests[3].json()
    assert grouped["summary"] == "2 callers who waited longer than hold_max have left the queue"
    assert grouped["resolved_at"] == "2026-11-20T14:00:00Z"
    assert [a["summary"] for a in grouped["alerts"]] == [
        "A caller in phones/sales was answered after 19m 00s",
        "A caller in phones/sales was answered after 15m 00s",
    ]
    assert sum(subjects(http_sink).values()) == 2 + 1 + 1 + 2 + 1 + 2


def test_two_evaluators_claiming_one_backlog_notify_each_subject_once(
    tmp_path: Path, database_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, database_url, http=http_sink)
    other = make_engine(database_url, tmp_path)
    backlog(engine, settings, now, 12)
    at = now + 2 * HOUR
    # By hand: both make the transitions; one saw only half the backlog, the other all of it.
    plans = [observe(e, settings, at) for e in (engine, other)]
    assert apply_changes(engine, plans[0][1], at) == 12
    assert apply_changes(other, plans[1][1], at) == 0
    with engine.connect() as conn:
        owed = notices(load_states(conn), at, settings)
    half = Plan(owed.send[:6], [], [])
    assert [len(t.notices) for t in claim_notices(engine, settings, half, at)] == [6]
    assert [len(t.notices) for t in claim_notices(other, settings, owed, at)] == [6]
    assert claim_notices(engine, settings, owed, at) == []
    # Truly concurrently, through to delivery: every inquiry answered, both evaluate at once.
    answer_all(engine, settings, at + MIN, 12)
    start = threading.Barrier(2)

    def evaluate(e: Engine, when: datetime) -> None:
        start.wait(timeout=30)
        run_once(e, settings, when)

    threads = [
        threading.Thread(target=evaluate, args=(e, at + 2 * MIN + n * MIN / 600))
        for n, e in enumerate((engine, other))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    run_once(other, settings, at + 3 * MIN)  # sends whatever the other claimed but left
    told = subjects(http_sink)
    expected = {(f"chat/conv-{i}", s) for i in range(12) for s in ("firing", "resolved")}
    assert set(told) == expected and set(told.values()) == {1}
    with engine.connect() as conn:
        keys = conn.execute(select(DELIVERIES.c.key)).scalars().all()
    assert len(keys) == len(http_sink.requests) and len(set(keys)) == len(keys)
    other.dispose()


def test_a_retried_group_sends_exactly_what_was_claimed(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink)
    backlog(engine, settings, now, 3)
    http_sink.refuse(1, 503)
    assert run_once(engine, settings, now + 2 * HOUR).deliveries["pending"] == 1
    answer_all(engine, settings, now + 2 * HOUR + MIN, 1)  # conv-0 is answered meanwhile
    run_once(engine, settings, now + 2 * HOUR + 2 * MIN)
    assert http_sink.answered == [503, 200, 200]
    with engine.connect() as conn:
        stored = json.loads(conn.execute(select(DELIVERIES.c.payload)).scalars().first() or "")
    assert http_sink.requests[0].json() == stored["notice"]
    assert stored["notice"]["count"] == 3
    assert seen(http_sink) == [
        ("reply_overdue", "critical", "firing"),
        ("reply_overdue", "critical", "resolved"),
    ]


def test_a_group_carries_at_most_carried_alerts_and_counts_them_all(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink)
    backlog(engine, settings, now, CARRIED + 20)
    run_once(engine, settings, now + 3 * HOUR)
    (hook,) = [r.json() for r in http_sink.requests]
    assert hook["count"] == CARRIED + 20 and len(hook["alerts"]) == CARRIED
    assert hook["alerts"][-1]["subject"] == f"chat/conv-{CARRIED - 1}"
    assert hook["text"].endswith(f"… and {CARRIED + 20 - LISTED} more")


def test_repeats_and_quiet_hours_notify_groups(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    quiet = {"calendar": "office", "severities": ["warning"]}
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink, quiet_hours=quiet, repeat="4h")
    evening = now.replace(hour=20)  # a Friday; the office closes at 17:00
    with engine.begin() as conn:
        conn.execute(
            STATES.insert(),
            [{"source": s, "last_success_at": evening - HOUR} for s in ("phones", "chat")],
        )
    waiting = CallEvent("2", "sales", evening - 30 * MIN, CallOutcome.WAITING)
    store(engine, settings, "phones", caller(evening - 20 * MIN), waiting)
    run_once(engine, settings, evening)  # two stale sources held; two callers over hold_max sent
    opening = evening + timedelta(days=7, hours=-11)  # next Friday 09:00
    run_once(engine, settings, opening)
    texts = [r.json()["text"].splitlines()[0] for r in http_sink.requests]
    assert texts == [
        "[CRITICAL] 2 callers are waiting longer than hold_max",
        "[CRITICAL, still firing] 2 callers are waiting longer than hold_max",
        "[WARNING] 2 sources have not been read successfully",
    ]
    assert http_sink.requests[2].json()["started_at"] == "2026-11-20T20:00:00Z"


def test_hostile_subjects_are_escaped_in_the_grouped_email_and_slack_text(
    tmp_path: Path, sqlite_url: str, smtp_sink: SmtpSink, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, smtp=smtp_sink, http=http_sink)
    backlog(engine, settings, now, 3, subject=HOSTILE)
    run_once(engine, settings, now + 2 * HOUR)
    (mail,) = smtp_sink.messages
    assert mail.message["Bcc"] is None and "\n" not in mail.message["Subject"]
    html = mail.message.get_body(("html",)).get_content()
    assert "<script>" not in html and "<!channel>" not in html
    assert html.count("&lt;script&gt;") == 3 and "&amp; co" in html
    text = mail.message.get_body(("plain",)).get_content()
    assert "None" not in text and "{{" not in text and text.count("chat/conv-") == 3
    (hook,) = http_sink.requests
    assert "<" not in hook.json()["text"] and hook.json()["text"].count("&lt;!channel&gt;") == 3
    # Every string of a notice is one printable line: the CR LF is shown, not obeyed.
    shown = HOSTILE.replace("\r\n", "\u240d\u240a")
    assert {a["details"]["inquiry_subject"] for a in hook.json()["alerts"]} == {shown}


def test_a_group_whose_key_is_taken_stays_owed_and_goes_out_next_time(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink)
    backlog(engine, settings, now, 2)
    at = now + 2 * HOUR
    apply_changes(engine, observe(engine, settings, at)[1], at)
    with engine.connect() as conn:
        owed = notices(load_states(conn), at, settings)
    with engine.begin() as conn:  # whatever put it there, it is not ours to overwrite
        claim(conn, key=group_key(owed.send, at, 0), purpose="x", notifier="x", payload={}, now=at)
    assert claim_notices(engine, settings, owed, at) == []
    with engine.connect() as conn:
        assert conn.execute(select(ALERT_STATES.c.last_notified_at)).scalars().all() == [None] * 2
    run_once(engine, settings, at + MIN)
    assert [r.json()["count"] for r in http_sink.requests] == [2]
