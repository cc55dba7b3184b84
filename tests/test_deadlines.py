"""A deadline per exchange, not per read: a peer that answers one byte at a time (a real TCP
server, tests/trickle.py) ends an IMAP command, an SMTP delivery and a webhook POST by their
configured timeout; an IMAP literal past the header limit is refused before it is buffered;
and `run`'s jobs do not wait on each other's peers.

Each call runs in a thread joined with a deadline of its own: on code without these limits the
test fails there instead of hanging the suite (the trickler is stopped at the end of the test,
which ends the stuck call too).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from monitor.config_file import settings_from_mapping
from monitor.publish.deliveries import DeliveryError
from monitor.publish.mailer import compose, send
from monitor.publish.notifiers.webhook import WebhookNotifier
from monitor.service import build_scheduler
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import poll_source, utcnow
from tests import loopback
from tests.limits import cli, run_child
from tests.loopback import LoopbackServer
from tests.trickle import Trickler

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TIMEOUT = 1.0  # the configured timeout of every peer here
LATEST = 6.0  # when the call must have ended (the timeout, plus start-up and slack)
T = TypeVar("T")


def within(seconds: float, call: Callable[[], T]) -> tuple[T | BaseException, float]:
    """`call()`'s result (or exception) and how long it took; fails the test past `seconds`."""
    outcome: list[T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the test as it is
            outcome.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"still waiting for the peer after {seconds} s: no deadline per exchange")
    return outcome[0], time.monotonic() - started


def imap_source(port: int) -> dict[str, Any]:
    return loopback.imap_source(port, f"{TIMEOUT}s")


GREETING = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] trickling\r\n"


def test_an_imap_server_trickling_its_answer_ends_the_poll_at_the_timeout(
    tmp_path: Path,
) -> None:
    with Trickler(greeting=GREETING, answer_start=b"* OK ") as server:
        settings = settings_from_mapping({"sources": [imap_source(server.port)]}, tmp_path)
        engine = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
        prepare(engine)
        result, took = within(
            LATEST, lambda: poll_source(engine, settings, settings.sources[0], now=NOW)
        )
    assert not isinstance(result, BaseException), result
    assert result.error == f"127.0.0.1:{server.port}: timed out: no complete answer within 1 s"
    assert TIMEOUT <= took < LATEST


def test_an_imap_server_trickling_its_greeting_ends_the_poll_at_the_timeout(
    tmp_path: Path,
) -> None:
    with Trickler(answer_start=b"* OK ", after_first_line=False) as server:
        settings = settings_from_mapping({"sources": [imap_source(server.port)]}, tmp_path)
        engine = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
        prepare(engine)
        result, took = within(
            LATEST, lambda: poll_source(engine, settings, settings.sources[0], now=NOW)
        )
    assert not isinstance(result, BaseException), result
    assert result.error is not None and result.error.endswith(
        "timed out: no complete answer within 1 s"
    )


class HugeLiteral(LoopbackServer):
    """An IMAP server that answers LOGIN with a literal announced as {999999999} and sends
    zeros for it (as fast as the client reads) until the client goes away."""

    join_seconds = 10.0

    def serve(self) -> None:
        try:
            connection, _ = self.server.accept()
        except OSError:
            return
        with connection:
            try:
                connection.sendall(GREETING)
                connection.recv(4096)
                connection.sendall(b"* OK {999999999}\r\n")
                block = bytes(1 << 20)
                for _ in range(1000):
                    connection.sendall(block)
            except OSError:
                return


def test_an_imap_literal_past_the_header_limit_is_refused_before_it_is_read(
    tmp_path: Path,
) -> None:
    config = tmp_path / "support-monitor.yaml"
    with HugeLiteral() as server:
        source = imap_source(server.port) | {"timeout": "20s"}
        config.write_text(
            "database: sqlite:///monitor.db\nsources:\n  - " + repr(source).replace("'", '"')
        )
        done = run_child(cli("--config", str(config), "poll"), deadline=30, memory_mb=900)
    assert done.status == 1, done.stdout + done.stderr
    assert done.stdout.startswith(f"inbox: FAILED 127.0.0.1:{server.port}: connection lost")
    assert (
        "the server announced a literal of 999,999,999 bytes, more than the 1,048,577 byte limit"
    ) in done.stdout
    # The interpreter and imports take some 60-70 MB; the literal would be a gigabyte.
    assert done.peak_mb < 160, f"peak {done.peak_mb:.0f} MB"


def test_an_smtp_server_trickling_its_answer_ends_the_delivery_at_the_timeout(
    tmp_path: Path,
) -> None:
    with Trickler(greeting=b"220 slow.example ESMTP\r\n", answer_start=b"250-") as server:
        settings = settings_from_mapping(
            {
                "smtp": {
                    "host": "127.0.0.1",
                    "port": server.port,
                    "security": "none",
                    "sender": "monitor@example.com",
                    "timeout": f"{TIMEOUT}s",
                }
            },
            tmp_path,
        )
        smtp = settings.file.smtp
        assert smtp is not None
        mail = compose(
            sender=smtp.sender, to=["lead@example.com"], subject="s", text="t", html="<p>t</p>"
        )
        result, took = within(LATEST, lambda: send(smtp, tmp_path, mail))
    assert isinstance(result, DeliveryError), result
    assert str(result) == (
        f"smtp 127.0.0.1:{server.port}: timed out: no complete answer within 1 s"
    )
    assert not result.permanent and TIMEOUT <= took < LATEST


def test_a_webhook_receiver_trickling_its_answer_ends_the_post_at_the_timeout(
    tmp_path: Path,
) -> None:
    with Trickler(answer_start=b"HTTP/1.1 200 OK\r\nX-Slow: ") as server:
        url = f"http://127.0.0.1:{server.port}/hooks/SECRET-PATH"
        notify = {"kind": "webhook", "url": url, "timeout": f"{TIMEOUT}s"}
        settings = settings_from_mapping({"alerts": {"notify": [notify]}}, tmp_path)
        notifier = WebhookNotifier(settings.file.alerts.notify[0], settings)
        result, took = within(LATEST, lambda: notifier.send({"text": "test"}))
    assert isinstance(result, DeliveryError), result
    assert str(result) == (
        f"webhook http://127.0.0.1:{server.port}: timed out: no complete answer within 1 s"
    )
    assert not result.permanent and TIMEOUT <= took < LATEST


class _Polled(logging.Handler):
    """Sets `done` when the service logs a finished poll of `source`."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.done = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(f"poll {self.source}:"):
            self.done.set()


def test_runs_jobs_never_wait_for_a_worker_held_by_another_sources_slow_peer(
    tmp_path: Path,
) -> None:
    """Twelve IMAP sources on a trickling server hold a thread each until their deadline; the
    chat source listed after them is polled at once (APScheduler's pool of ten would have
    kept it waiting as long as they wait)."""
    line = '{"conversation": "c1", "at": "2026-11-20T09:00:00+00:00", "author_role": "customer"}'
    (tmp_path / "chat.jsonl").write_text(line + "\n")
    polled = _Polled("website-chat")
    service_log = logging.getLogger("monitor.service")
    level = service_log.level
    service_log.setLevel(logging.INFO)
    service_log.addHandler(polled)
    stop = threading.Event()
    with Trickler(greeting=GREETING, answer_start=b"* OK ") as server:
        slow = [
            imap_source(server.port) | {"name": f"inbox-{n}", "timeout": "4s"} for n in range(12)
        ]
        chat = {"name": "website-chat", "kind": "chat_jsonl", "path": "chat.jsonl"}
        settings = settings_from_mapping({"sources": [*slow, chat]}, tmp_path)
        engine = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
        prepare(engine)
        scheduler = build_scheduler(engine, settings, stop, start_at=utcnow())
        scheduler.start()
        try:
            assert polled.done.wait(3), "the chat source waited for the slow IMAP polls"
        finally:
            stop.set()
            # Not waiting: the IMAP polls end by their 4 s deadline (or, on code without one,
            # when the trickler closes their connections at the end of this block).
            scheduler.shutdown(wait=False)
            service_log.removeHandler(polled)
            service_log.setLevel(level)
