"""Callers waiting for a callback: one inquiry per caller however often they rang, closed by a
call back or by the caller getting through; short abandons owe no callback. Real queue_logs and
call logs polled into a real store, read back through the metrics and `report`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from monitor.publish.exporter import exposition
from monitor.store.figures import all_figures
from monitor.store.ingest import reconcile
from tests.connectors.phone.test_queue_log import T0, q, source, write
from tests.connectors.store import NOW, aware, calls, inquiries, open_store, poll, tally

CALLER = "02079460001"


def rang(callid: str, entered: int, *ends: tuple[str, int, tuple[object, ...]]) -> list[str]:
    """A call from CALLER entering the queue `entered` seconds after 09:00, then its lines."""
    lines = [q(entered, callid, "ENTERQUEUE", "", CALLER, 1)]
    return lines + [q(at, callid, verb, *data, agent="SIP/201") for verb, at, data in ends]


MISSED_THREE_TIMES = [
    *rang("m.1", 0, ("ABANDON", 120, (1, 1, 120))),  # 09:00-09:02
    *rang("m.2", 600, ("EXITWITHTIMEOUT", 660, (1, 1, 60))),  # 09:10-09:11
    *rang("m.3", 1200, ("ABANDON", 1380, (1, 1, 180))),  # 09:20-09:23
]
GOT_THROUGH = rang(
    "m.4", 2400, ("CONNECT", 2460, (60, "x", 3)), ("COMPLETECALLER", 3000, (60, 540, 1))
)  # 09:40, answered 09:41


def report(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"database": f"sqlite:///{tmp_path}/monitor.db", "sources": [source()]})
    )
    capsys.readouterr()
    period = ["--since", "2026-11-20", "--until", "2026-11-21"]
    assert main(["--config", str(config), "report", *period, *extra]) == 0
    return capsys.readouterr().out


def test_three_missed_calls_from_one_number_are_three_calls_and_one_inquiry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "queue_log", *MISSED_THREE_TIMES)
    settings, engine = open_store(tmp_path, [source()])
    poll(engine, settings, "queue")
    assert tally(engine, "support_calls_total") == 3  # every missed call counts
    assert tally(engine, "support_inquiries_total", channel="voicemail") == 1  # one caller
    (waiting,) = inquiries(engine)
    assert (waiting.channel, waiting.status) == ("voicemail", "open")
    assert aware(waiting.opened_at) == datetime.fromtimestamp(T0 + 120, UTC)  # the first miss
    metrics = exposition(engine, settings, lambda: NOW).decode()
    assert 'support_open_inquiries{channel="voicemail",source="queue",stage="experience"} 1.0' in (
        metrics
    )
    (row,) = json.loads(report(tmp_path, capsys, "--format", "json"))["sources"]
    assert (row["inquiries_channel"], row["inquiries_received"], row["calls_total"]) == (
        "voicemail",
        1,
        3,
    )
    table = report(tmp_path, capsys)
    (line,) = [line for line in table.splitlines() if line.startswith("queue") and "  1" in line]
    # Named as the metrics name it; marked `*`: last read at 18:00, before the period ended.
    assert line.split()[:4] == ["queue*", "voicemail", "1", "0"]


def test_a_missed_caller_who_later_gets_through_is_no_longer_waiting_for_a_callback(
    tmp_path: Path,
) -> None:
    """A site with a queue_log only makes no outbound calls the monitor could see: the caller
    ringing again and being answered is what ends their wait."""
    write(tmp_path / "queue_log", *MISSED_THREE_TIMES)
    settings, engine = open_store(tmp_path, [source()])
    poll(engine, settings, "queue")
    write(tmp_path / "queue_log", *GOT_THROUGH, mode="ab")
    poll(engine, settings, "queue")
    (helped,) = inquiries(engine)
    assert (helped.status, helped.response_seconds) == ("answered", 2460 - 120)  # 09:02-09:41
    assert tally(engine, "support_calls_total", outcome="answered") == 1
    metrics = exposition(engine, settings, lambda: NOW).decode()
    assert 'support_open_inquiries{channel="voicemail",source="queue",stage="experience"} 0.0' in (
        metrics
    )


def test_getting_through_in_another_phone_source_closes_the_callback_too(tmp_path: Path) -> None:
    """Missed in the queue (queue_log), answered later on the hosted system's line (a call log),
    polled in either order."""
    write(tmp_path / "queue_log", *MISSED_THREE_TIMES[:2])
    answered_at = datetime.fromtimestamp(T0 + 3600, UTC)
    write(
        tmp_path / "calls.csv",
        "id,direction,entered,answered,ended,from",
        f"c1,inbound,{answered_at - timedelta(seconds=30):%Y-%m-%dT%H:%M:%SZ},"
        f"{answered_at:%Y-%m-%dT%H:%M:%SZ},{answered_at + timedelta(minutes=5):%Y-%m-%dT%H:%M:%SZ},"
        "+44 20 7946 0001",
    )
    columns = {"id": "id", "direction": "direction", "entered": "entered"}
    columns |= {"answered": "answered", "ended": "ended", "caller": "from"}
    line = {"name": "line", "kind": "call_csv", "path": "calls.csv", "columns": columns}
    settings, engine = open_store(tmp_path, [source(), line])
    poll(engine, settings, "line")  # the answer is read first
    poll(engine, settings, "queue")
    (helped,) = inquiries(engine)
    assert (helped.source, helped.status) == ("queue", "answered")
    assert helped.response_seconds == 3600 - 120


def test_a_short_abandon_is_an_abandoned_call_that_asks_for_no_callback(tmp_path: Path) -> None:
    lines = [
        q(0, "s.1", "ENTERQUEUE", "", "02079460001", 1),
        q(3, "s.1", "ABANDON", 1, 1, 3),  # hung up after 3 s: a misdial
        q(10, "s.2", "ENTERQUEUE", "", "02079460002", 1),
        q(40, "s.2", "ABANDON", 1, 1, 30),  # gave up after 30 s
        q(20, "s.3", "ENTERQUEUE", "", "02079460003", 1),
        q(30, "s.3", "CONNECT", 10, "x", 2),
        q(90, "s.3", "COMPLETECALLER", 10, 60, 1),
    ]
    write(tmp_path / "queue_log", *sorted(lines, key=lambda line: int(line.split("|")[0])))
    short = {"targets": {"short_abandon": "5s"}}
    settings, engine = open_store(tmp_path, [source()], **short)
    poll(engine, settings, "queue")
    assert tally(engine, "support_calls_total", outcome="abandoned") == 2  # both abandoned
    assert [i.conversation for i in inquiries(engine)] == ["tel:079460002"]  # one callback owed
    (figures,) = all_figures(engine, settings, NOW - timedelta(days=1), NOW, NOW)
    assert figures.calls is not None
    # Answered within 20 s: 1 of the 2 calls offered (the short abandon is not one).
    assert figures.calls.service_level == 0.5
    assert figures.calls.short_abandoned == 1

    # Set to 0 (off), the measurements are redone: the misdial is owed a callback after all.
    off, _ = open_store(tmp_path, [source()], targets={"short_abandon": "0s"})
    assert reconcile(engine, off)
    assert sorted(i.conversation for i in inquiries(engine)) == ["tel:079460001", "tel:079460002"]
    (again,) = all_figures(engine, off, NOW - timedelta(days=1), NOW, NOW)
    assert again.calls is not None and again.calls.service_level == pytest.approx(1 / 3)


def test_an_unknown_call_counts_but_has_no_wait(tmp_path: Path) -> None:
    """A caller whose end was never seen within `unknown_after` has no known wait: not a
    0-second hold that flatters every percentile and fills the lowest bucket."""
    lines = [
        q(0, "u.1", "ENTERQUEUE", "", "02079460001", 1),  # never ends
        q(10, "u.2", "ENTERQUEUE", "", "02079460002", 1),
        q(400, "u.2", "CONNECT", 390, "x", 2),
        q(500, "u.2", "COMPLETECALLER", 390, 100, 1),
    ]
    write(tmp_path / "queue_log", *lines)
    settings, engine = open_store(tmp_path, [source(unknown_after="1h")])
    later = datetime.fromtimestamp(T0 + 2 * 3600, UTC)
    poll(engine, settings, "queue", now=later)
    outcomes = {k.split("@")[0]: (r.outcome, r.wait_seconds) for k, r in calls(engine).items()}
    # u.1 was last seen waiting by the file's newest call line (500 s in): the poll 2 h later
    # read nothing more of it, which says nothing of the time between.
    assert outcomes == {"u.1": ("unknown", 500), "u.2": ("answered", 390)}
    assert tally(engine, "support_calls_total", outcome="unknown") == 1
    metrics = exposition(engine, settings, lambda: later).decode()
    assert 'support_hold_seconds_count{queue="support",source="queue"} 1.0' in metrics
    assert 'support_hold_seconds_bucket{le="10",queue="support",source="queue"} 0.0' in metrics
    (figures,) = all_figures(engine, settings, later - timedelta(days=1), later, later)
    assert figures.calls is not None
    calls_ = figures.calls
    assert (calls_.total, calls_.unknown, calls_.median_wait_seconds) == (2, 1, 390)
    assert calls_.service_level == 0.0  # of the one call offered (answered after 390 s)
    assert calls_.over_warn == 1  # u.2 only
    assert calls_.unknown_wait_at_least_seconds == 500  # what a report may show as "at least"
