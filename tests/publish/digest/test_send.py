"""Sending the digest: a real SMTP server receives it once, whatever fails or repeats."""

from __future__ import annotations

import re
import signal
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.cli import main
from monitor.publish import deliveries
from monitor.publish.deliveries import backoff
from monitor.publish.digest.mail import claim_digest, deliver_digests, status
from monitor.service import DigestJob
from monitor.store.ingest import poll_source
from monitor.store.tables import ATTEMPTS
from tests.digest_day import DAY, NOW, build_day, empty_store, mail_settings, write_config
from tests.servers import free_port
from tests.sinks import SmtpSink
from tests.test_cli import write_chat_config
from tests.test_service import Service


def parts(message: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}


def test_the_digest_arrives_by_smtp_as_text_and_html_and_only_once(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings, engine = build_day(
        tmp_path, database_url, **mail_settings("127.0.0.1", smtp_sink.port)
    )
    assert claim_digest(engine, settings, DAY, NOW) is True
    assert deliver_digests(engine, settings, NOW)[deliveries.SENT] == 1
    # A second instance, a re-run, the next tick: nothing more goes out.
    assert claim_digest(engine, settings, DAY, NOW + timedelta(minutes=5)) is False
    assert deliver_digests(engine, settings, NOW + timedelta(hours=1))[deliveries.SENT] == 0
    (received,) = smtp_sink.messages
    message = received.message
    assert sorted(received.recipients) == ["lead@example.com", "ops@example.com"]
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "Support digest Thu 19 Nov: 3 of 3 touchpoints need attention"
    assert message["From"] == "Support Monitor <monitor@example.com>"
    assert message["To"] == "lead@example.com, ops@example.com"
    assert re.fullmatch(
        r"<digest\.2026-11-19\.[0-9a-f]{20}@example\.com>", message["Message-ID"].strip()
    )
    assert parsedate_to_datetime(message["Date"]) == NOW
    assert message["Auto-Submitted"] == "auto-generated"  # never counted as an inquiry
    body = parts(message)
    assert list(body) == ["text/plain", "text/html"]
    assert re.search(r"Within 2m\s+60%\s+▼ 40 pts worse", body["text/plain"])
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in body["text/html"]
    for text in body.values():
        assert not re.search(r"\b(None|nan)\b", text)


def test_smtp_down_then_up_sends_the_digest_once(
    tmp_path: Path, sqlite_url: str, smtp_sink: SmtpSink
) -> None:
    settings, engine = build_day(tmp_path, sqlite_url, **mail_settings("127.0.0.1", smtp_sink.port))
    smtp_sink.stop()
    claim_digest(engine, settings, DAY, NOW)
    assert deliver_digests(engine, settings, NOW)[deliveries.PENDING] == 1
    pending = status(engine, DAY)
    assert pending is not None and pending.status == "pending" and pending.last_error
    assert f"127.0.0.1:{smtp_sink.port}" in pending.last_error
    smtp_sink.restart()
    assert deliver_digests(engine, settings, NOW + timedelta(seconds=1))[deliveries.SENT] == 0
    later = NOW + backoff(1)
    assert deliver_digests(engine, settings, later)[deliveries.SENT] == 1
    assert deliver_digests(engine, settings, later + timedelta(hours=1))[deliveries.SENT] == 0
    (received,) = smtp_sink.messages
    assert parsedate_to_datetime(received.message["Date"]) == NOW  # the message first built
    with engine.connect() as conn:
        errors = [row.error for row in conn.execute(select(ATTEMPTS).order_by(ATTEMPTS.c.id))]
    assert len(errors) == 2 and errors[0] and errors[1] is None


def test_a_mail_server_that_refuses_for_good_is_recorded_as_failed(
    tmp_path: Path, sqlite_url: str, smtp_sink: SmtpSink
) -> None:
    settings, engine = empty_store(
        tmp_path, sqlite_url, **mail_settings("127.0.0.1", smtp_sink.port)
    )
    smtp_sink.refuse(1, "554 5.7.1 rejected as spam")
    claim_digest(engine, settings, DAY, NOW)
    assert deliver_digests(engine, settings, NOW)[deliveries.FAILED] == 1
    failed = status(engine, DAY)
    assert failed is not None and failed.last_error is not None and "554" in failed.last_error


def test_the_scheduled_job_sends_the_digest_of_the_day_before_its_fire_time(
    tmp_path: Path, sqlite_url: str, smtp_sink: SmtpSink
) -> None:
    settings, engine = build_day(tmp_path, sqlite_url, **mail_settings("127.0.0.1", smtp_sink.port))
    clock = [datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)]  # the default schedule, 0 8 * * *
    job = DigestJob(engine, settings, clock=lambda: clock[0])
    job.run()
    clock[0] += timedelta(minutes=1)
    job.run()  # a second instance firing too, a catch-up at start-up, the next tick
    subjects = [m.message["Subject"] for m in smtp_sink.messages]
    assert subjects == ["Support digest Thu 19 Nov: 3 of 3 touchpoints need attention"]
    # Before the next fire time the due digest is still the one of the 19th: nothing new.
    clock[0] = datetime(2026, 11, 21, 7, 59, tzinfo=UTC)
    job.run()
    assert len(smtp_sink.messages) == 1
    # At the next fire time the sources were last read on the 20th at 08:00: the digest of
    # the 20th waits for them to be read after the 20th ended.
    clock[0] = datetime(2026, 11, 21, 8, 0, 5, tzinfo=UTC)
    job.run()
    assert len(smtp_sink.messages) == 1
    for source in settings.sources:
        poll_source(engine, settings, source, now=clock[0], clock=lambda: clock[0])
    clock[0] += timedelta(seconds=5)
    job.run()  # the next tick
    assert [m.message["Subject"][:26] for m in smtp_sink.messages][-1] == (
        "Support digest Fri 20 Nov:"
    )
    assert "NOT READ" not in parts(smtp_sink.messages[-1].message)["text/plain"]


def test_digest_prints_the_text_and_writes_the_html_preview(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_day(tmp_path, f"sqlite:///{tmp_path}/monitor.db")
    config = str(write_config(tmp_path, "sqlite:///monitor.db"))
    assert main(["--config", config, "digest", "--date", "2026-11-19"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("SUPPORT DIGEST - Thursday 19 November 2026 (Europe/London)")
    assert re.search(r"Within 2m\s+60%", text)
    preview = tmp_path / "digest.html"
    assert (
        main(["--config", config, "digest", "--date", "2026-11-19", "--preview", str(preview)]) == 0
    )
    assert capsys.readouterr().out == f"digest 2026-11-19: HTML written to {preview}\n"
    assert preview.read_text().startswith("<!DOCTYPE html>")


def test_digest_send_sends_once_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], smtp_sink: SmtpSink
) -> None:
    config = str(
        write_config(tmp_path, "sqlite:///monitor.db", **mail_settings("127.0.0.1", smtp_sink.port))
    )
    (tmp_path / "chat.jsonl").touch()
    argv = ["--config", config, "digest", "--date", "2020-03-02", "--send"]
    assert main(argv) == 0
    assert (
        capsys.readouterr().out == "digest 2020-03-02: sent to lead@example.com, ops@example.com\n"
    )
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("digest 2020-03-02: already sent at ")
    (received,) = smtp_sink.messages
    # Sent by hand before any poll: it says its sources were not read, not "no calls".
    assert received.message["Subject"] == "Support digest Mon 2 Mar: 3 of 3 sources not read"


def test_digest_send_while_the_mail_server_is_down_exits_1_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], smtp_sink: SmtpSink
) -> None:
    smtp_sink.stop()
    config = str(
        write_config(tmp_path, "sqlite:///monitor.db", **mail_settings("127.0.0.1", smtp_sink.port))
    )
    argv = ["--config", config, "digest", "--date", "2020-03-02", "--send"]
    assert main(argv) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("digest 2020-03-02: not sent: smtp 127.0.0.1:")
    assert line.endswith("kept for a retry (by `run`, or `digest --send` again)")
    assert main(argv) == 1  # still in its backoff: says when it is next tried
    assert "not sent yet; next attempt after" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "date", "error"),
    [
        ({}, "2020-03-02", "--send: no recipients; set digest.to (and the smtp section)"),
        (mail_settings("127.0.0.1", 9), "2999-01-01", "--send: 2999-01-01 is not over yet"),
        ({}, "yesterday", "--date: expected a date like 2026-11-19, got 'yesterday'"),
    ],
)
def test_digest_usage_errors_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: dict[str, object],
    date: str,
    error: str,
) -> None:
    config = str(write_config(tmp_path, "sqlite:///monitor.db", **extra))
    assert main(["--config", config, "digest", "--date", date, "--send"]) == 2
    assert error in capsys.readouterr().err


def test_run_schedules_the_digest_and_sends_the_one_due_at_start(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """A real `run` process: its start-up catch-up sends the digest due at the last fire time of
    the schedule (every minute here), once, then keeps running."""
    port = free_port()
    mail = mail_settings("127.0.0.1", smtp_sink.port)
    mail["digest"] |= {"schedule": "* * * * *"}
    config = write_chat_config(tmp_path, metrics={"listen": f"127.0.0.1:{port}"}, **mail)
    running = Service(config)
    try:
        running.wait_for("digest: scheduled '* * * * *' in Europe/London")
        line = running.wait_for("sent to lead@example.com, ops@example.com")
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=30) == 0
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()
    day = re.search(r"digest (\d{4}-\d\d-\d\d) sent", line)
    assert day is not None
    (received,) = smtp_sink.messages
    assert received.message["Subject"].startswith("Support digest ")


def test_check_says_which_sources_the_due_digest_waits_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], smtp_sink: SmtpSink
) -> None:
    """A digest due at every minute, waiting up to 12 h: the sources were last read in
    November, so the digest due now (of yesterday, by the clock `check` reads) waits for them
    to be read after that day ended."""
    build_day(tmp_path, f"sqlite:///{tmp_path}/monitor.db")
    mail = mail_settings("127.0.0.1", smtp_sink.port)
    mail["digest"] |= {"schedule": "* * * * *", "wait_for_sources": "12h"}
    config = str(write_config(tmp_path, "sqlite:///monitor.db", **mail))
    main(["--config", config, "check"])
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("wait ")]
    stale = r"not read since Fri 20 Nov 08:00: its polls are not running, stale after 15m 00s"
    assert re.fullmatch(
        rf"wait  digest \d{{4}}-\d\d-\d\d: waiting for web-chat \({stale}\), phones \({stale}\),"
        rf" answering \({stale}\); sent by \w{{3}} \d+ \w{{3}} \d\d:\d\d at the latest,"
        r" naming them",
        line,
    ), line
