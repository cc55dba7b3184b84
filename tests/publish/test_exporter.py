"""The exposition from really ingested data: promtool accepts it, histograms count exactly the
closed inquiries and finished calls in the store across polls, a restart and re-polls, buckets
hold the configured targets, and no personal data reaches a label."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select

from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.measure.events import CallEvent, CallOutcome
from monitor.publish.deliveries import DeliveryError, claim, record, take_due
from monitor.publish.exporter import SupportCollector, exposition, registry_for
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import measuring, poll_source, reconcile, store_batch
from monitor.store.tables import CALLS, INQUIRIES

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

# The documented names and types that dashboards and alert rules depend on.
DOCUMENTED_METRICS = {
    "support_inquiries_total": "counter",
    "support_response_seconds": "histogram",
    "support_response_business_seconds": "histogram",
    "support_response_breaches_total": "counter",
    "support_open_inquiries": "gauge",
    "support_open_inquiries_breached": "gauge",
    "support_oldest_open_inquiry_age_seconds": "gauge",
    "support_calls_total": "counter",
    "support_hold_seconds": "histogram",
    "support_hold_breaches_total": "counter",
    "support_calls_waiting": "gauge",
    "support_longest_wait_seconds": "gauge",
    "support_source_last_success_timestamp_seconds": "gauge",
    "support_source_poll_errors_total": "counter",
    "support_source_records_rejected_total": "counter",
    "support_chats_missed_total": "counter",
    "support_responses_clamped_total": "counter",
    "support_alerts_firing": "gauge",
    "support_monitor_build_info": "gauge",
    "support_digests_incomplete_total": "counter",
    "support_source_not_read": "gauge",
}
# Personal data the fixtures carry: none of it may appear in a label.
PERSONAL = ("alice@example.org", "Alice Smith", "+44 20 7946 0958", "07700900123", "Refund")
ALLOWED_LABELS = {"source", "channel", "stage", "queue", "kind", "threshold", "outcome", "rule"}
# Beside the documented metrics' labels: fixed words of the code (digest/alert,
# email/webhook), never data.
ALLOWED_LABELS |= {"purpose", "notifier"}
# A verdict (within/late) is a fixed word; a calendar's name comes from the config.
ALLOWED_LABELS |= {"verdict", "calendar"}
MAIL = """\
From alice@example.org Fri Nov 20 09:30:00 2026
From: Alice Smith <alice@example.org>
To: support@example.com
Subject: Refund for order 1234
Date: Fri, 20 Nov 2026 09:30:00 +0000
Message-ID: <q1@example.org>

Hello
"""


def chat_line(conversation: str, at: datetime, role: str, **extra: Any) -> str:
    record = {"conversation": conversation, "at": at.isoformat(), "author_role": role, **extra}
    return json.dumps(record) + "\n"


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def call(external_id: str, outcome: CallOutcome, wait: float, queue: str = "sales") -> CallEvent:
    if outcome is CallOutcome.WAITING:
        return CallEvent(
            external_id, queue, NOW - timedelta(seconds=wait), outcome, caller="+44 20 7946 0958"
        )
    left = minutes(10) + timedelta(seconds=wait)
    answered = left if outcome is CallOutcome.ANSWERED else None
    return CallEvent(
        external_id,
        queue,
        minutes(10),
        outcome,
        answered_at=answered,
        left_at=left,
        caller="07700900123",
    )


def make_settings(tmp_path: Path, *, mail: bool = False) -> Settings:
    """A chat log and a call log; with `mail`, a mailbox too."""
    (tmp_path / "calls.csv").write_text("Start\n")
    (tmp_path / "mail.mbox").write_text(MAIL)
    mailbox = [{"name": "support-mail", "kind": "mbox", "path": "mail.mbox"}] if mail else []
    return settings_from_mapping(
        {
            "agents": {"addresses": ["support@example.com"]},
            "calendars": {
                "office": {"timezone": "Europe/London", "hours": {"fri": ["09:00-17:00"]}}
            },
            "sources": [
                {
                    "name": "web-chat",
                    "kind": "chat_jsonl",
                    "path": "chat.jsonl",
                    "stage": "decision",
                    "calendar": "office",
                },
                {
                    "name": "phones",
                    "kind": "call_csv",
                    "path": "calls.csv",
                    "columns": {"entered": "Start"},
                    "targets": {"hold_warn": "4m"},
                },
                *mailbox,
            ],
        },
        tmp_path,
    )


def open_store(tmp_path: Path, settings: Settings, url: str | None = None) -> Engine:
    """What `run` does at start: open the database, redo measurements if the config changed."""
    engine = make_engine(url or f"sqlite:///{tmp_path}/monitor.db", tmp_path)
    prepare(engine)
    reconcile(engine, settings)
    return engine


def poll_all(engine: Engine, settings: Settings) -> None:
    for source in settings.sources:
        assert poll_source(engine, settings, source, now=NOW, clock=lambda: NOW).ok


def store_calls(engine: Engine, settings: Settings, calls: list[CallEvent]) -> None:
    with engine.begin() as conn:
        store_batch(conn, measuring(settings, settings.source("phones")), calls)


def scrape(engine: Engine, settings: Settings) -> str:
    return exposition(engine, settings, lambda: NOW).decode()


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name].append((sample.labels, sample.value))
    return out


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        value
        for found, value in samples(text)[name]
        if all(found.get(k) == v for k, v in labels.items())
    )


def stored(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:

        def count(*where: Any) -> int:
            table = INQUIRIES if "inquiry" in str(where[0]) else CALLS
            return int(
                conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
            )

        return {
            "inquiries": count(INQUIRIES.c.id.isnot(None)),
            "answered": count(INQUIRIES.c.status == "answered"),
            "business": count(
                INQUIRIES.c.status == "answered", INQUIRIES.c.business_seconds.isnot(None)
            ),
            "calls": count(CALLS.c.outcome != "waiting"),
        }


def assert_counts_match_the_store(text: str, engine: Engine) -> dict[str, int]:
    store = stored(engine)
    assert total(text, "support_inquiries_total") == store["inquiries"]
    assert total(text, "support_response_seconds_count") == store["answered"]
    assert total(text, "support_response_seconds_bucket", le="+Inf") == store["answered"]
    assert total(text, "support_response_business_seconds_count") == store["business"]
    assert total(text, "support_hold_seconds_count") == store["calls"]
    assert total(text, "support_calls_total") == store["calls"]
    return store


FIRST_CHATS = (
    chat_line("c1", minutes(0), "customer", text="Refund please", name="Alice Smith")
    + chat_line("c1", minutes(1), "agent")
    + chat_line("alice@example.org", minutes(2), "customer", text="Refund")
    + chat_line("alice@example.org", minutes(9), "agent")
    + chat_line("c3", minutes(5), "customer")  # still open: breached at NOW
    + chat_line("c4", NOW - timedelta(seconds=30), "customer")  # open, due in 90 s
)
LATER_CHATS = (
    chat_line("c3", minutes(200), "agent")
    + chat_line("c3", minutes(201), "customer")  # a follow-up, answered
    + chat_line("c3", minutes(203), "agent")
    + chat_line("c5", minutes(30), "customer")
    + chat_line("c5", minutes(35), "customer", event="ended")  # a missed chat
)
FIRST_CALLS = [
    call("k1", CallOutcome.ANSWERED, 15),
    call("k2", CallOutcome.ABANDONED, 320),  # over the 4-minute hold_warn of phones
    call("k3", CallOutcome.WAITING, 400),
    call("k4", CallOutcome.ANSWERED, 900, queue="billing"),  # over both thresholds
]
LATER_CALLS = [
    *FIRST_CALLS[:2],
    call("k3", CallOutcome.ANSWERED, 500),
    call("k5", CallOutcome.TIMEOUT, 60),
]


def test_histograms_count_the_store_across_polls_a_restart_and_re_polls(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    chat = tmp_path / "chat.jsonl"
    chat.write_text(FIRST_CHATS)
    engine = open_store(tmp_path, settings)
    poll_all(engine, settings)
    store_calls(engine, settings, FIRST_CALLS)
    first = assert_counts_match_the_store(scrape(engine, settings), engine)
    assert first == {"inquiries": 4, "answered": 2, "business": 2, "calls": 3}

    with chat.open("a") as handle:
        handle.write(LATER_CHATS)
    poll_all(engine, settings)
    store_calls(engine, settings, LATER_CALLS)
    second = assert_counts_match_the_store(scrape(engine, settings), engine)
    assert second == {"inquiries": 6, "answered": 4, "business": 4, "calls": 5}
    before_restart = scrape(engine, settings)
    engine.dispose()

    engine = open_store(tmp_path, settings)  # a restart: new engine, same database
    assert scrape(engine, settings) == before_restart
    poll_all(engine, settings)  # re-polls and a re-read log add nothing
    store_calls(engine, settings, FIRST_CALLS + LATER_CALLS)
    (tmp_path / "chat.jsonl").write_text(FIRST_CHATS + LATER_CHATS)  # rewritten in place
    poll_all(engine, settings)
    after = scrape(engine, settings)
    assert assert_counts_match_the_store(after, engine) == second
    assert total(after, "support_hold_breaches_total", threshold="warn") == 3  # k2, k3, k4
    assert total(after, "support_hold_breaches_total", threshold="max") == 1  # k4
    assert total(after, "support_chats_missed_total") == 1
    assert total(after, "support_calls_total", outcome="timeout") == 1


def test_the_exposition_passes_promtool_check_metrics(tmp_path: Path, promtool: str) -> None:
    settings = make_settings(tmp_path)
    (tmp_path / "chat.jsonl").write_text(FIRST_CHATS + LATER_CHATS)
    engine = open_store(tmp_path, settings)
    poll_all(engine, settings)
    store_calls(engine, settings, FIRST_CALLS)
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=scrape(engine, settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def ingested(tmp_path: Path, database_url: str) -> str:
    """The exposition after one poll and one batch of calls, on SQLite and on PostgreSQL."""
    settings = make_settings(tmp_path, mail=True)
    (tmp_path / "chat.jsonl").write_text(FIRST_CHATS)
    engine = open_store(tmp_path, settings, database_url)
    poll_all(engine, settings)
    store_calls(engine, settings, FIRST_CALLS)
    # A digest that could not be delivered: its labels are checked with the others.
    with engine.begin() as conn:
        claim(
            conn, key="digest:2026-11-19", purpose="digest", notifier="email", payload={}, now=NOW
        )
    (taken,) = take_due(engine, NOW)
    record(engine, taken, DeliveryError("550 no such mailbox", permanent=True), NOW)
    return scrape(engine, settings)


def test_every_documented_metric_is_exported_with_its_type(ingested: str) -> None:
    families = {f.name: f.type for f in text_string_to_metric_families(ingested)}
    exported = {
        (f"{name}_total" if kind == "counter" else name): kind for name, kind in families.items()
    }
    assert {name: exported.get(name) for name in DOCUMENTED_METRICS} == DOCUMENTED_METRICS


def test_buckets_include_the_reply_targets_and_the_hold_thresholds(ingested: str) -> None:
    def bounds(name: str, source: str) -> set[str]:
        return {
            labels["le"]
            for labels, _ in samples(ingested)[f"{name}_bucket"]
            if labels["source"] == source
        }

    assert {"120", "86400"} <= bounds("support_response_seconds", "web-chat")  # 2 min chat, 24 h
    assert {"120", "86400"} <= bounds("support_response_business_seconds", "web-chat")
    assert {"20", "240", "300", "780"} <= bounds("support_hold_seconds", "phones")


def test_no_personal_data_reaches_a_label(ingested: str) -> None:
    for name, found in samples(ingested).items():
        for labels, _ in found:
            assert set(labels) - {"le", "version"} <= ALLOWED_LABELS, name
            for value in labels.values():
                assert not any(p.lower() in value.lower() for p in PERSONAL), (name, labels)
    assert not any(p in ingested for p in PERSONAL)
    assert 'support_deliveries_failed{notifier="email",purpose="digest"} 1.0' in ingested
    assert (
        'support_open_inquiries{channel="email",source="support-mail",stage="experience"} 1.0'
        in (ingested)
    )


def test_open_inquiries_waiting_callers_and_targets_are_gauges_of_now(ingested: str) -> None:
    chat = {"source": "web-chat", "channel": "chat"}
    assert total(ingested, "support_open_inquiries", **chat) == 2
    assert total(ingested, "support_open_inquiries_breached", **chat) == 1
    assert total(ingested, "support_oldest_open_inquiry_age_seconds", **chat) == 3 * 3600 - 300
    assert total(ingested, "support_open_inquiry_next_breach_seconds", **chat) == 90
    assert total(ingested, "support_calls_waiting", source="phones", queue="sales") == 1
    assert total(ingested, "support_longest_wait_seconds", source="phones", queue="sales") == 400
    assert total(ingested, "support_reply_target_seconds", source="web-chat") == 120
    assert total(ingested, "support_reply_target_seconds", source="phones") == 86400
    assert total(ingested, "support_hold_threshold_seconds", threshold="warn") == 240
    assert total(ingested, "support_hold_threshold_seconds", threshold="max") == 780
    assert total(ingested, "support_source_poll_interval_seconds", source="phones") == 300
    assert total(ingested, "support_source_last_success_timestamp_seconds") == 3 * NOW.timestamp()


def gauge(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(labels.items())): value for labels, value in samples(text)[name]}


def test_gauges_read_zero_when_nobody_waits_and_nothing_is_open(tmp_path: Path) -> None:
    """A phone source with nobody waiting: "callers waiting now" is 0 on every queue it has
    seen (and for the source as a whole before its first call), never "no data"; so are its
    callback inquiries (channel voicemail) and the failed deliveries of every notifier."""
    settings = settings_from_mapping(
        {
            "smtp": {"host": "127.0.0.1", "security": "none", "sender": "m@example.com"},
            "digest": {"to": ["lead@example.com"]},
            "alerts": {"notify": [{"kind": "webhook", "url": "http://127.0.0.1:9/hook"}]},
            "sources": [{"name": "phones", "kind": "call_csv", "path": "calls.csv",
                         "columns": {"entered": "Start"}}],
        },
        tmp_path,
    )  # fmt: skip
    (tmp_path / "calls.csv").write_text("Start\n")
    engine = open_store(tmp_path, settings)
    before = scrape(engine, settings)  # nothing read yet: the source as a whole
    whole = ((("queue", ""), ("source", "phones")),)
    assert gauge(before, "support_calls_waiting") == dict.fromkeys(whole, 0.0)
    assert gauge(before, "support_longest_wait_seconds") == dict.fromkeys(whole, 0.0)
    voicemail = (("channel", "voicemail"), ("source", "phones"), ("stage", "experience"))
    for name in ("support_open_inquiries", "support_open_inquiries_breached"):
        assert gauge(before, name) == {voicemail: 0.0}
    assert gauge(before, "support_oldest_open_inquiry_age_seconds") == {voicemail: 0.0}
    assert gauge(before, "support_deliveries_failed") == {
        (("notifier", "email"), ("purpose", "digest")): 0.0,
        (("notifier", "webhook"), ("purpose", "alert")): 0.0,
    }

    store_calls(engine, settings, FIRST_CALLS)  # k3 waits in sales; sales and billing seen
    assert gauge(scrape(engine, settings), "support_calls_waiting") == {
        (("queue", "billing"), ("source", "phones")): 0.0,
        (("queue", "sales"), ("source", "phones")): 1.0,
    }
    store_calls(engine, settings, [call("k3", CallOutcome.ANSWERED, 500)])  # ... and now left
    after = scrape(engine, settings)
    assert gauge(after, "support_calls_waiting") == {
        (("queue", "billing"), ("source", "phones")): 0.0,
        (("queue", "sales"), ("source", "phones")): 0.0,
    }
    assert set(gauge(after, "support_longest_wait_seconds").values()) == {0.0}


def test_a_source_not_read_and_a_digest_sent_incomplete_are_exported(
    tmp_path: Path, database_url: str
) -> None:
    """support_source_not_read is 1 until the source is read (and 1 again while it fails);
    support_digests_incomplete_total counts the digests claimed with a source unread, kept in
    the store (it survives restarts and agrees between instances)."""
    from monitor.publish.digest.mail import claim_digest

    (tmp_path / "chat.jsonl").write_text(chat_line("c1", minutes(1), "customer"))
    raw = {
        "database": database_url,
        "sources": [{"name": "chat", "kind": "chat_jsonl", "path": "chat.jsonl"}],
    }
    settings = settings_from_mapping(raw, tmp_path)
    engine = make_engine(database_url, tmp_path)
    prepare(engine)

    def value(name: str, at: datetime) -> float:
        text = exposition(engine, settings, lambda: at).decode()
        (line,) = [x for x in text.splitlines() if x.startswith(name)]
        return float(line.rsplit(" ", 1)[1])

    assert value('support_source_not_read{source="chat"}', NOW) == 1.0
    assert value("support_digests_incomplete_total", NOW) == 0.0
    claim_digest(engine, settings, T0.date() - timedelta(days=2), NOW)  # the chat never read
    assert value("support_digests_incomplete_total", NOW) == 1.0
    assert poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW).ok
    assert value('support_source_not_read{source="chat"}', NOW) == 0.0
    claim_digest(engine, settings, T0.date() - timedelta(days=1), NOW)  # read after: complete
    assert value("support_digests_incomplete_total", NOW) == 1.0
    (tmp_path / "chat.jsonl").unlink()
    later = NOW + timedelta(minutes=1)
    assert not poll_source(engine, settings, settings.sources[0], now=later).ok
    assert value('support_source_not_read{source="chat"}', later) == 1.0


def test_the_collector_describes_what_it_collects_without_reading_the_store(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, mail=True)
    # No server listens on port 1: describing must not connect.
    unreachable = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path)
    described = SupportCollector(unreachable, settings, lambda: NOW).describe()
    lines = [chat_line("c1", minutes(0), "customer"), chat_line("c1", minutes(1), "agent")]
    (tmp_path / "chat.jsonl").write_text("".join(lines))
    engine = open_store(tmp_path, settings)
    poll_all(engine, settings)
    collected = list(SupportCollector(engine, settings, lambda: NOW).collect_now())
    assert [(f.name, f.type, f.documentation) for f in described] == [
        (f.name, f.type, f.documentation) for f in collected
    ]
    assert all(not family.samples for family in described)


def test_a_metric_that_clashes_with_the_collectors_is_refused_when_registered(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    registry = registry_for(open_store(tmp_path, settings), settings, lambda: NOW)
    with pytest.raises(ValueError, match="support_open_inquiries"):
        Gauge("support_open_inquiries", "another meaning", registry=registry)
