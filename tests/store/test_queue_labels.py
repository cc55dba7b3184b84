"""The `queue` label is bounded whatever the log says, and scrapes cannot exhaust the server.

A phone log's queue names are data: an outsider can make thousands of them, or name one after
a caller's address or number. They are bounded where calls are stored, so the exporter, the
report and the digest all show the same few queues, and `other`.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select

from monitor.publish import server as http_server
from monitor.publish.exporter import exposition, registry_for
from monitor.publish.report import render_json
from monitor.publish.server import make_app, serve
from monitor.store.figures import all_figures
from monitor.store.ingest import reconcile
from monitor.store.tables import CALLS, META
from tests.connectors.store import NOW, open_store, poll

T0 = int(datetime(2026, 11, 20, 9, 0, tzinfo=UTC).timestamp())
ADDRESS = "dana.whitfield@acme.example"
NUMBER = "+44 20 7946 0321"


def call_lines(queues: list[str]) -> str:
    """One caller per queue, who waits 30 s and hangs up."""
    lines = []
    for n, queue in enumerate(queues):
        at = T0 + n
        lines.append(f"{at}|{n}.1|{queue}|NONE|ENTERQUEUE||02079460001|1")
        lines.append(f"{at + 30}|{n}.1|{queue}|NONE|ABANDON|1|1|30")
    return "\n".join(lines) + "\n"


def source(**extra: Any) -> dict[str, Any]:
    return {"name": "phones", "kind": "asterisk_queue_log", "path": "queue_log", **extra}


def queue_labels(text: str) -> set[str]:
    return set(re.findall(r'queue="([^"]*)"', text))


def test_three_thousand_queue_names_export_the_first_fifty_and_other(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = ["sales", ADDRESS, NUMBER] + [f"queue-{n}" for n in range(3000)]
    (tmp_path / "queue_log").write_text(call_lines(names))
    settings, engine = open_store(tmp_path, [source()])
    with caplog.at_level(logging.WARNING, logger="monitor.store.queue_labels"):
        poll(engine, settings, "phones")
    exported = exposition(engine, settings, lambda: NOW).decode()
    first = {"sales", *(f"queue-{n}" for n in range(49))}
    assert queue_labels(exported) == first | {"other"}
    assert 'support_calls_total{outcome="abandoned",queue="other",source="phones"} 2953.0' in (
        exported
    )
    assert ADDRESS not in exported and "7946" not in exported
    with engine.connect() as conn:
        stored = set(conn.execute(select(CALLS.c.queue).distinct()).scalars())
    assert stored == first | {"other"}  # what the report, the digest and the alerts read
    report = render_json(all_figures(engine, settings, NOW - timedelta(days=1), NOW, NOW))
    assert ADDRESS not in report and "7946" not in report
    # Logged once per reason, never naming the personal-looking names.
    assert len(caplog.records) == 2
    assert ADDRESS not in caplog.text and "7946" not in caplog.text
    assert "more than max_queues (50) queue names; 'queue-49'" in caplog.text


def test_listed_queues_are_exported_renamed_and_every_other_as_other(tmp_path: Path) -> None:
    (tmp_path / "queue_log").write_text(call_lines(["600", "601", ADDRESS, "600"]))
    settings, engine = open_store(tmp_path, [source(queues={"600": "Sales"})])
    poll(engine, settings, "phones")
    exported = exposition(engine, settings, lambda: NOW).decode()
    assert queue_labels(exported) == {"Sales", "other"}
    assert 'support_calls_total{outcome="abandoned",queue="Sales",source="phones"} 2.0' in (
        exported
    )


def test_a_name_that_would_forge_another_label_is_other(tmp_path: Path) -> None:
    (tmp_path / "queue_log").write_text(call_lines(["sales,outcome=answered", "ok"]))
    settings, engine = open_store(tmp_path, [source()])
    poll(engine, settings, "phones")
    exported = exposition(engine, settings, lambda: NOW).decode()
    assert queue_labels(exported) == {"ok", "other"}
    assert 'outcome="answered"' not in exported


def test_calls_stored_before_labels_were_bounded_are_relabelled_once(tmp_path: Path) -> None:
    settings, engine = open_store(tmp_path, [source(max_queues=2)])
    entered = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    rows = [
        {
            "source": "phones",
            "external_id": f"{n}.1",
            "queue": name,
            "entered_at": entered + timedelta(minutes=n),
            "wait_seconds": 30.0,
            "outcome": "abandoned",
        }
        for n, name in enumerate(["first", "second", ADDRESS, "fourth"])
    ]
    with engine.begin() as conn:  # as an earlier version stored them: names as the log had
        conn.execute(insert(CALLS), rows)
        conn.execute(META.delete().where(META.c.key == "queue_labels"))
    assert reconcile(engine, settings)
    exported = exposition(engine, settings, lambda: NOW).decode()
    assert queue_labels(exported) == {"first", "second", "other"}
    assert 'support_calls_total{outcome="abandoned",queue="other",source="phones"} 2.0' in (
        exported
    )
    assert not reconcile(engine, settings)  # once


def waiting_queues(text: str) -> dict[str, str]:
    """The `queue` of each support_calls_waiting sample, with its value."""
    return dict(re.findall(r'support_calls_waiting\{queue="([^"]*)",source="phones"\} (\S+)', text))


def test_the_zero_waiting_gauges_are_of_the_labels_exported(tmp_path: Path) -> None:
    """Nobody waiting reads 0 on every queue shown, and only on those: a listed queue reads 0
    before its first call, and a queue since dropped from `queues:` is `other` there too,
    as in the counters."""
    (tmp_path / "queue_log").write_text(call_lines(["600", "601"]))
    listed = {"600": "Sales", "601": "Support"}
    settings, engine = open_store(tmp_path, [source(queues=listed)])
    before = exposition(engine, settings, lambda: NOW).decode()
    assert waiting_queues(before) == {"Sales": "0.0", "Support": "0.0"}
    poll(engine, settings, "phones")
    settings, _ = open_store(tmp_path, [source(queues={"600": "Sales"})])
    exported = exposition(engine, settings, lambda: NOW).decode()
    assert queue_labels(exported) == {"Sales", "other"}
    assert waiting_queues(exported) == {"Sales": "0.0", "other": "0.0"}


def test_two_hundred_concurrent_scrapes_share_collections_on_a_bounded_server(
    tmp_path: Path,
) -> None:
    (tmp_path / "queue_log").write_text(call_lines(["sales", "support"]))
    settings, engine = open_store(tmp_path, [source()])
    poll(engine, settings, "phones")
    running = {"queries": 0, "most": 0, "requests": 0, "most_requests": 0}
    lock = threading.Lock()

    @event.listens_for(engine, "before_cursor_execute")
    def before(*args: Any) -> None:
        if "FROM tally" in args[2]:
            with lock:
                running["queries"] += 1
                running["most"] = max(running["most"], running["queries"])

    @event.listens_for(engine, "after_cursor_execute")
    def after(*args: Any) -> None:
        if "FROM tally" in args[2]:
            with lock:
                running["queries"] -= 1

    app = make_app(registry_for(engine, settings, lambda: NOW), engine, lambda: NOW)

    def counted(environ: dict[str, Any], start_response: Any) -> Any:
        with lock:
            running["requests"] += 1
            running["most_requests"] = max(running["most_requests"], running["requests"])
        try:
            return list(app(environ, start_response))
        finally:
            with lock:
                running["requests"] -= 1

    server, _ = serve("127.0.0.1:0", counted)
    port = server.server_address[1]
    statuses: list[int] = []

    def scrape() -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
            body = answer.read()
            statuses.append(answer.status if b"support_calls_total" in body else -1)

    try:
        scrapers = [threading.Thread(target=scrape) for _ in range(200)]
        for scraper in scrapers:
            scraper.start()
        for scraper in scrapers:
            scraper.join(60)
        assert not any(s.is_alive() for s in scrapers), "scrapes still waiting after 60 s"
    finally:
        server.shutdown()
        server.server_close()
    assert statuses == [200] * 200
    assert running["most"] == 1  # one collection at a time: one database connection
    assert running["most_requests"] <= getattr(http_server, "MAX_REQUESTS", 8)
