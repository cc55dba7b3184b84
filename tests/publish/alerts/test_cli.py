"""`support-monitor alerts` as a user runs it, and the alert job `run` schedules."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import delete, select

from monitor.cli import main
from monitor.config_file import load_settings
from monitor.measure.events import CallEvent, CallOutcome
from monitor.publish.alerts.run import run_once
from monitor.service import build_scheduler
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import measuring, poll_source, store_batch
from monitor.store.tables import ALERT_STATES, CALLS, DELIVERIES
from tests.servers import free_port
from tests.sinks import HttpSink

# Years ago: over hold_max whatever the clock says when the command runs.
ENTERED = datetime(2020, 1, 6, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def write_config(tmp_path: Path, url: str, email: bool = False) -> Path:
    (tmp_path / "queue_log").touch()
    notify: list[dict[str, Any]] = [{"kind": "webhook", "url": url}]
    config: dict[str, Any] = {
        "database": "sqlite:///monitor.db",
        "sources": [{"name": "phones", "kind": "asterisk_queue_log", "path": "queue_log"}],
        "alerts": {"every": "2m", "notify": notify},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},  # `check` tries to listen there
    }
    if email:  # never reached in a dry run
        notify.append({"kind": "email", "to": ["oncall@example.com"]})
        config["smtp"] = {"host": "127.0.0.1", "port": 9, "security": "none", "sender": "m@x.org"}
    path = tmp_path / "support-monitor.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path)
    engine = make_engine(settings.file.database, tmp_path)
    prepare(engine)
    with engine.begin() as conn:
        event = CallEvent("old", "sales", ENTERED, CallOutcome.WAITING, caller="+44 1632 960000")
        store_batch(conn, measuring(settings, settings.sources[0]), [event])
    return path


def test_alerts_dry_run_prints_what_would_be_sent_and_stores_nothing(
    tmp_path: Path, http_sink: HttpSink, capsys: pytest.CaptureFixture[str]
) -> None:
    """What people would read, notifier by notifier: the e-mail's subject and text (naming
    the caller, for the support team), the webhook's text (naming nobody); what changed is
    said in words, not as an internal id such as `phones/old`."""
    config = write_config(tmp_path, http_sink.url, email=True)
    assert main(["--config", str(config), "alerts", "--once", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    waited = "Caller +44 1632 960000 has waited "
    assert lines[0].startswith(f"firing    hold_max critical: {waited}")
    assert lines[0].endswith(" in phones/sales (hold_max 13m 00s)")
    assert lines[1].startswith(f"firing    hold_warn warning: {waited}")
    assert lines[2] == f"would send to webhook {http_sink.url[:-5]}:"
    assert lines[3].startswith("    [CRITICAL] A caller has waited ")
    assert lines[3].endswith(" in phones/sales (hold_max 13m 00s)")
    assert lines[4] == "would send to email to oncall@example.com:"
    assert lines[5].startswith(f"    Subject: [CRITICAL] {waited}")
    assert any(said.startswith(f"    CRITICAL: {waited}") for said in lines[6:])
    assert "    Caller:         +44 1632 960000" in lines
    assert lines[-1] == "alerts: 2 firing; dry run, nothing stored or sent"
    assert "phones/old" not in "".join(lines[:4]) and "1632 960000" not in lines[3]
    assert http_sink.answered == []
    with make_engine("sqlite:///monitor.db", tmp_path).connect() as conn:
        assert conn.execute(select(ALERT_STATES)).all() == []
        assert conn.execute(select(DELIVERIES)).all() == []


def test_alerts_shows_a_refused_webhook_and_exits_1_and_check_warns(
    tmp_path: Path, http_sink: HttpSink, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, http_sink.url))
    http_sink.refuse(5, 404)
    assert main(["--config", config, "alerts"]) == 1
    out = capsys.readouterr().out.splitlines()
    (error,) = [line for line in out if line.startswith("error")]
    assert error.endswith("HTTP 404 Not Found (failed for good)")
    assert out[-1] == "alerts: 2 firing; notifications 0 sent, 0 to retry, 1 failed"
    assert main(["--config", config, "alerts"]) == 0  # nothing new to send, nothing retried
    assert capsys.readouterr().out.splitlines() == [
        "alerts: 2 firing; notifications 0 sent, 0 to retry, 0 failed"
    ]
    assert http_sink.answered == [404]
    assert main(["--config", config, "check"]) == 0
    assert "warn  deliveries failed (alert by webhook: 1); latest alert:hold_max:" in (
        capsys.readouterr().out
    )


def test_run_evaluates_alerts_every_alerts_every(tmp_path: Path, http_sink: HttpSink) -> None:
    settings = load_settings(write_config(tmp_path, http_sink.url))
    engine = make_engine(settings.file.database, tmp_path)
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    scheduler = build_scheduler(engine, settings, threading.Event(), start_at=start)
    job = scheduler.get_job("alerts")
    assert job.trigger.interval == timedelta(minutes=2)
    assert job.next_run_time == start + timedelta(minutes=2)
    assert job.max_instances == 1 and job.coalesce
    job.func()  # one evaluation, as the scheduler would run it
    # The source has not been read since the start: what is stored of it may be hours old.
    assert http_sink.requests == []
    poll_source(engine, settings, settings.sources[0], now=start + timedelta(seconds=1))
    job.func()
    assert [r.json()["rule"] for r in http_sink.requests] == ["hold_max"]


def test_a_source_not_read_since_the_start_keeps_its_alerts_as_they_were(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    """A caller stored as waiting before a restart: after the restart, until the source is
    read again, the hold alert neither fires anew nor resolves ("not read yet")."""
    settings = load_settings(write_config(tmp_path, http_sink.url))
    engine = make_engine(settings.file.database, tmp_path)
    before = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    run_once(engine, settings, before)  # the previous process: hold_max fires and is told
    assert [r.json()["status"] for r in http_sink.requests] == ["firing"]
    with engine.begin() as conn:  # the caller left while the monitor was down
        conn.execute(delete(CALLS))
    started = before + timedelta(hours=3)
    for minute in (1, 2):  # evaluations after the restart, before the first poll ends
        outcome = run_once(engine, settings, started + minute * MINUTE, started_at=started)
        assert outcome.changes == [] and outcome.firing == 2
    assert len(http_sink.requests) == 1  # no "resolved" on rows not read since the start
    poll_source(engine, settings, settings.sources[0], now=started + 2 * MINUTE)
    outcome = run_once(engine, settings, started + 3 * MINUTE, started_at=started)
    assert {c.kind for c in outcome.changes} == {"resolve"}
    assert [r.json()["status"] for r in http_sink.requests] == ["firing", "resolved"]


def test_alerts_dry_run_shows_a_backlog_as_one_notification(
    tmp_path: Path, http_sink: HttpSink, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, http_sink.url)
    settings = load_settings(config)
    with make_engine(settings.file.database, tmp_path).begin() as conn:
        events = [CallEvent(f"c{n}", "sales", ENTERED, CallOutcome.WAITING) for n in range(4)]
        store_batch(conn, measuring(settings, settings.sources[0]), events)
    assert main(["--config", str(config), "alerts", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (would,) = [n for n, line in enumerate(lines) if line.startswith("would send")]
    assert lines[would] == f"would send to webhook {http_sink.url[:-5]}:"
    assert lines[would + 1] == "    [CRITICAL] 5 callers are waiting longer than hold_max"
    assert lines[would + 2].startswith("    • A caller has waited ")  # no number: a webhook
    assert lines[-1] == "alerts: 10 firing; dry run, nothing stored or sent"
