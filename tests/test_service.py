"""`support-monitor run` as a user starts it: a real process, real HTTP, real signals."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port
from tests.test_cli import write_chat_config

STARTUP_SECONDS = 60  # generous: a loaded 2-core CI machine imports slowly


class Service:
    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "run"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def read_available(self, timeout: float) -> bool:
        """Wait up to `timeout` for a log line, then take every line queued; False if none."""
        try:
            self.log.append(self.lines.get(timeout=timeout))
        except queue.Empty:
            return False
        self.read_all()
        return True

    def read_all(self) -> None:
        while True:
            try:
                self.log.append(self.lines.get_nowait())
            except queue.Empty:
                return

    def wait_for(self, text: str) -> str:
        """Block until a log line contains `text` (event-driven: no sleeping, no polling)."""
        while True:
            try:
                line = self.lines.get(timeout=STARTUP_SECONDS)
            except queue.Empty:
                got = "".join(self.log)
                raise AssertionError(f"no log line with {text!r}; got:\n{got}") from None
            self.log.append(line)
            if text in line:
                return line


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Service, int]]:
    port = free_port()
    config = write_chat_config(tmp_path, metrics={"listen": f"127.0.0.1:{port}"})
    running = Service(config)
    try:
        yield running, port
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


def get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, response.read().decode()


def test_run_serves_metrics_and_health_and_stops_on_sigterm(
    service: tuple[Service, int],
) -> None:
    running, port = service
    running.wait_for("poll website-chat: ")  # the first poll has been stored
    status, body = get(port, "/metrics")
    assert status == 200
    assert 'support_monitor_build_info{version="' in body
    totals = [
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("support_inquiries_total{")
    ]
    assert totals and sum(totals) > 0
    # The live instrument of this process: the first poll was timed.
    assert 'support_source_poll_duration_seconds_count{source="website-chat"} 1.0' in body
    status, health = get(port, "/healthz")
    assert status == 200 and '"ok"' in health
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=15) == 0
    running.wait_for("stopped")


def test_run_stops_on_sigint_too(service: tuple[Service, int]) -> None:
    running, _ = service
    running.wait_for("polling sources")
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=15) == 0


def test_healthz_says_a_source_not_read_since_the_start_is_not_read_yet(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from monitor.config_file import load_settings
    from monitor.publish.server import health
    from monitor.store.database import make_engine, prepare
    from monitor.store.ingest import poll_source

    settings = load_settings(write_chat_config(tmp_path))
    engine = make_engine(settings.file.database, tmp_path)
    prepare(engine)
    before = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    poll_source(engine, settings, settings.sources[0], now=before, clock=lambda: before)
    started = before + timedelta(hours=1)
    healthy, body = health(engine, started + timedelta(seconds=5), settings, started)
    assert healthy and body["sources"]["website-chat"]["status"] == "not read yet"
    poll_source(engine, settings, settings.sources[0], now=started, clock=lambda: started)
    _, body = health(engine, started + timedelta(seconds=5), settings, started)
    assert body["sources"]["website-chat"]["status"] == "read"
