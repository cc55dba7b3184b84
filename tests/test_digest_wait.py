"""The digest speaks only for data it has read: `run` as a user starts it, real SMTP.

The service is started after the digest's time (the schedule is midnight, UTC), so its
start-up catch-up is due at once, while its first polls run. It must wait for every enabled
source to be read after the day ended and after the service started, up to
`digest.wait_for_sources`, then name what is still unread first. Real processes and the real
clock: the day is yesterday's date; limits are seconds, so nothing waits long.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers import PostgresServer, free_port, unreachable_mailbox
from tests.sinks import SmtpSink
from tests.test_service import Service, get

WAIT_SECONDS = 120  # a loaded 2-core CI machine; normally a few seconds
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
CALLS_A_DAY = 20_000  # two days of them: the first poll takes a few seconds


def days() -> tuple[date, date]:
    """Yesterday (the digest's day) and today, by the clock `run` will read."""
    today = datetime.now(UTC).date()
    return today - timedelta(days=1), today


def queue_log(path: Path) -> None:
    """CALLS_A_DAY answered calls yesterday and as many today, 08:00 to 18:00 UTC. Today's too:
    should the test start a moment before midnight, the digest's day is today's date."""
    lines = []
    for day in days():
        start = int(datetime(day.year, day.month, day.day, 8, tzinfo=UTC).timestamp())
        for n in range(CALLS_A_DAY):
            at, call = start + n * 36_000 // CALLS_A_DAY, f"{day:%m%d}.{n}"
            lines += [
                f"{at}|{call}|support|NONE|ENTERQUEUE||0207946{n % 10_000:04d}|1",
                f"{at + 4}|{call}|support|PJSIP/201|CONNECT|4|{call}|2",
                f"{at + 64}|{call}|support|PJSIP/201|COMPLETECALLER|4|60|1",
            ]
    path.write_text("\n".join(lines) + "\n")


def chat_log(path: Path) -> None:
    lines = []
    for day in days():
        for n, (hour, role) in enumerate([(9, "customer"), (10, "agent")]):
            at = datetime(day.year, day.month, day.day, hour, tzinfo=UTC).isoformat()
            lines.append(
                f'{{"id": "{day}-{n}", "conversation": "c-{day}", "at": "{at}",'
                f' "author_role": "{role}"}}'
            )
    path.write_text("\n".join(lines) + "\n")


def config(
    folder: Path,
    database: str,
    smtp: SmtpSink,
    sources: list[dict[str, Any]],
    *,
    wait: str,
    smtp_timeout: str = "10s",
    name: str = "support-monitor.yaml",
) -> Path:
    raw = {
        "timezone": "UTC",
        "database": database,
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "cluster": {"lease": "3s", "tick": "1s"},
        "sources": sources,
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "sender": "Support Monitor <monitor@example.com>",
            "timeout": smtp_timeout,
        },
        "digest": {"schedule": "0 0 * * *", "to": ["lead@example.com"], "wait_for_sources": wait},
    }
    path = folder / name
    path.write_text(yaml.safe_dump(raw))
    return path


PHONES = {"name": "phones", "kind": "asterisk_queue_log", "path": "queue_log", "every": "1s"}
CHAT = {"name": "web-chat", "kind": "chat_jsonl", "path": "chat.jsonl", "every": "1s"}


@pytest.fixture
def running() -> Iterator[list[Service]]:
    """The services a test starts; killed at the end if still running."""
    started: list[Service] = []
    try:
        yield started
    finally:
        for service in started:
            if service.process.poll() is None:
                service.process.kill()
                service.process.wait()


def start(running: list[Service], path: Path) -> Service:
    service = Service(path, env={"TZ": "UTC"})
    running.append(service)
    return service


def stop(service: Service) -> None:
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=30) == 0


def at(line: str) -> datetime:
    """When a log line was written."""
    match = STAMP.match(line)
    assert match, line
    return datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)


def text_of(message: EmailMessage) -> str:
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    return str(parts["text/plain"]).replace("\r\n", "\n")


def metrics_port(path: Path) -> int:
    return int(yaml.safe_load(path.read_text())["metrics"]["listen"].rsplit(":", 1)[1])


def read_until(services: list[Service], found: Any) -> None:
    """Read the logs of every service (none may block the others) until `found()`."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not found():
        assert time.monotonic() < deadline, [s.log for s in services]
        for service in services:
            service.read_available(timeout=0.2)


def test_run_after_the_digest_time_sends_one_digest_holding_the_days_calls(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, running: list[Service]
) -> None:
    """The issue's case: a fresh database, the day's log on disk, a first poll that takes
    seconds. The old service built the catch-up digest beside that poll and sent "no inquiries
    or calls" (or part of the day); the digest now waits for the poll."""
    queue_log(tmp_path / "queue_log")
    service = start(running, config(tmp_path, database_url, smtp_sink, [PHONES], wait="10m"))
    waiting = service.wait_for("waits for sources not read since")
    assert "phones (not read yet: no poll has finished)" in waiting
    polled = service.wait_for("poll phones: ")
    sent = service.wait_for("sent to lead@example.com")
    assert at(polled) <= at(sent)
    stop(service)
    (received,) = smtp_sink.messages
    subject = received.message["Subject"]
    assert "no inquiries or calls" not in subject and "not read" not in subject
    text = text_of(received.message)
    assert re.search(rf"^  Calls\s+{CALLS_A_DAY}\s+{CALLS_A_DAY} answered$", text, re.M), text
    assert "NOT READ" not in text


def test_a_source_that_cannot_be_read_delays_the_digest_by_the_limit_and_comes_first(
    tmp_path: Path, sqlite_url: str, smtp_sink: SmtpSink, running: list[Service]
) -> None:
    chat_log(tmp_path / "chat.jsonl")
    sources = [CHAT, unreachable_mailbox(every="1s")]
    path = config(tmp_path, "sqlite:///monitor.db", smtp_sink, sources, wait="4s")
    service = start(running, path)
    first = service.wait_for("digest: scheduled")
    service.wait_for("waits for sources not read since")
    late = service.wait_for("goes out after waiting 4s without these sources read")
    assert "helpdesk-mail (never read: " in late
    sent = service.wait_for("sent to lead@example.com")
    assert at(sent) - at(first) >= timedelta(seconds=4)
    metrics = get(metrics_port(path), "/metrics")[1]
    assert "support_digests_incomplete_total 1.0" in metrics
    stop(service)
    (received,) = smtp_sink.messages
    assert received.message["Subject"].startswith(
        f"Support digest {days()[0]:%a} {days()[0].day} {days()[0]:%b}: 1 of 2 sources not read"
    )
    text = text_of(received.message)
    top = text.split("\n\n")[1]
    assert top.startswith("NOT READ - THESE FIGURES ARE INCOMPLETE\n  helpdesk-mail (email): ")
    assert "FIGURES INCOMPLETE; last error: 127.0.0.1:" in top
    assert re.search(r"^  Inquiries\s+1\s+1 answered$", text, re.M)  # the chat was read


def test_a_poll_that_fails_once_then_succeeds_within_the_limit_gives_a_complete_digest(
    tmp_path: Path, sqlite_url: str, smtp_sink: SmtpSink, running: list[Service]
) -> None:
    path = config(tmp_path, "sqlite:///monitor.db", smtp_sink, [CHAT], wait="5m")
    service = start(running, path)
    service.wait_for("poll web-chat: FAILED")  # its file is not there yet
    chat_log(tmp_path / "chat.jsonl")
    service.wait_for("sent to lead@example.com")
    stop(service)
    (received,) = smtp_sink.messages
    text = text_of(received.message)
    assert "NOT READ" not in text and "not read" not in received.message["Subject"]
    assert re.search(r"^  Inquiries\s+1\s+1 answered$", text, re.M)
    assert not any("goes out after waiting" in line for line in service.log)


def test_two_instances_started_together_send_one_digest(
    tmp_path: Path,
    postgres_server: PostgresServer,
    smtp_sink: SmtpSink,
    running: list[Service],
) -> None:
    database = postgres_server.create_database(f"t_two_{free_port()}")
    chat_log(tmp_path / "chat.jsonl")
    services = [
        start(running, config(tmp_path, database, smtp_sink, [CHAT], wait="5m", name=f"{n}.yaml"))
        for n in range(2)
    ]

    def sent() -> bool:
        return any("sent to lead@example.com" in line for s in services for line in s.log)

    read_until(services, sent)
    sent_at = datetime.now(UTC)

    def ticked_since() -> bool:  # both are past their start-up, polling, after the send
        return all(
            any("poll web-chat" in line and at(line) > sent_at for line in s.log) for s in services
        )

    read_until(services, ticked_since)
    for service in services:
        stop(service)
    assert len(smtp_sink.messages) == 1
    senders = [s for s in services if any("sent to lead@example.com" in x for x in s.log)]
    assert len(senders) == 1


def test_a_process_killed_between_sending_and_recording_resends_once_with_the_same_id(
    tmp_path: Path, sqlite_url: str, smtp_sink: SmtpSink, running: list[Service]
) -> None:
    chat_log(tmp_path / "chat.jsonl")
    path = config(tmp_path, "sqlite:///monitor.db", smtp_sink, [CHAT], wait="5m", smtp_timeout="2s")
    hold = smtp_sink.hold_next()
    first = start(running, path)
    assert hold.arrived.wait(WAIT_SECONDS), first.log  # sent, not yet acknowledged
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    hold.release()
    second = start(running, path)
    resent = second.wait_for("sent to lead@example.com")
    # The attempt of the killed process held the delivery for twice the SMTP timeout.
    assert "digest " in resent
    for _ in range(3):  # a few more ticks: nothing more goes out
        second.wait_for("poll web-chat: ")
    stop(second)
    ids = [m.message["Message-ID"] for m in smtp_sink.messages]
    assert len(ids) == 2 and ids[0] == ids[1]
    assert re.fullmatch(r"<digest\.\d{4}-\d\d-\d\d\.[0-9a-f]{20}@example\.com>", ids[0])
