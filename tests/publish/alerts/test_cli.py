"""`support-monitor alerts` as a user runs it, and the alert job `run` schedules."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from monitor.cli import main
from monitor.config_file import load_settings
from monitor.measure.events import CallEvent, CallOutcome
from monitor.service import build_scheduler
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import measuring, store_batch
from monitor.store.tables import ALERT_STATES, DELIVERIES
from tests.servers import free_port
from tests.sinks import HttpSink

# Years ago: over hold_max whatever the clock says when the command runs.
ENTERED = datetime(2020, 1, 6, 9, 0, tzinfo=UTC)


def write_config(tmp_path: Path, url: str) -> Path:
    (tmp_path / "queue_log").touch()
    config = {
        "database": "sqlite:///monitor.db",
        "sources": [{"name": "phones", "kind": "asterisk_queue_log", "path": "queue_log"}],
        "alerts": {"every": "2m", "notify": [{"kind": "webhook", "url": url}]},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},  # `check` tries to listen there
    }
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
    config = write_config(tmp_path, http_sink.url)
    assert main(["--config", str(config), "alerts", "--once", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        "firing    hold_max critical phones/old",
        "firing    hold_warn warning phones/old",
    ]
    assert lines[2].startswith("would send [critical firing] Caller +44 1632 960000 has waited ")
    assert lines[2].endswith(f"in phones/sales (hold_max 13m 00s) -> webhook {http_sink.url[:-5]}")
    assert lines[3] == "alerts: 2 firing; dry run, nothing stored or sent"
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
    assert [r.json()["rule"] for r in http_sink.requests] == ["hold_max"]


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
    (would,) = [line for line in lines if line.startswith("would send")]
    assert would == (
        "would send [critical firing] 5 callers are waiting longer than hold_max"
        f" -> webhook {http_sink.url[:-5]}"
    )
    assert lines[-1] == "alerts: 10 firing; dry run, nothing stored or sent"
