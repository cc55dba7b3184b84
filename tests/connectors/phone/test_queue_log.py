"""asterisk_queue_log, the flat file: caller events, a day of calls, waiting callers, tailing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import Records, Rejection, window_of
from connectors.csv_rows import RowError
from connectors.phone.asterisk_queue_log import (
    AsteriskQueueLogConnector,
    AsteriskQueueLogSettings,
    parse_line,
)
from connectors.phone.parties import Parties
from connectors.phone.queue_log_calls import Calls
from connectors.phone.queue_log_lines import _NAMES, feed_text, feed_texts
from monitor.config import PlausibleTimes
from monitor.config_file import settings_from_mapping
from monitor.measure.events import CallEvent, CallOutcome, MessageEvent
from monitor.publish.exporter import exposition
from monitor.store.database import make_engine
from monitor.store.ingest import build_connector
from tests.connectors.store import NOW, aware, calls, inquiries, messages, open_store, poll, tally

T0 = int(datetime(2026, 11, 20, 9, 0, tzinfo=UTC).timestamp())
CALLER = "02079460001"


def q(offset: int, callid: str, event: str, *data: object, agent: str = "NONE") -> str:
    """One queue_log line `offset` seconds after 09:00 UTC in queue `support`."""
    return "|".join([str(T0 + offset), callid, "support", agent, event, *map(str, data)])


def write(path: Path, *lines: str | bytes, mode: str = "wb") -> Path:
    body = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
    with path.open(mode) as handle:
        handle.write(body)
    return path


def source(**extra: object) -> dict[str, object]:
    return {"name": "queue", "kind": "asterisk_queue_log", "path": "queue_log", **extra}


def read(folder: Path, now: datetime = NOW, **extra: object) -> list[Any]:
    settings = settings_from_mapping({"sources": [source(**extra)]}, folder)
    connector = build_connector(settings, settings.sources[0])
    return [e for batch in connector.fetch(None, now) for e in batch.events]


def enter(offset: int, callid: str = "1.1") -> str:
    return q(offset, callid, "ENTERQUEUE", "", CALLER, 1)


# (lines after ENTERQUEUE at 0 s, outcome, wait, talk, answered after, callback asked)
EVENTS = {
    "completecaller": (
        [q(30, "1.1", "CONNECT", 30, "1.2", 4), q(90, "1.1", "COMPLETECALLER", 30, 60, 1)],
        CallOutcome.ANSWERED, 30, 60, 30, False,
    ),
    "completeagent": (
        [q(12, "1.1", "CONNECT", 12, "1.2", 2), q(20, "1.1", "COMPLETEAGENT", 12, 8, 1)],
        CallOutcome.ANSWERED, 12, 8, 12, False,
    ),
    "blindtransfer": (
        [q(5, "1.1", "CONNECT", 5, "1.2", 1), q(65, "1.1", "BLINDTRANSFER", 202, "ext", 5, 60, 1)],
        CallOutcome.TRANSFERRED, 5, 60, 5, False,
    ),
    "attendedtransfer_bridge": (
        [q(45, "1.1", "ATTENDEDTRANSFER", "BRIDGE", "b-1", 5, 40, 1)],
        CallOutcome.TRANSFERRED, 5, 40, 5, False,
    ),
    "attendedtransfer_link_two_channels": (
        [q(7, "1.1", "CONNECT", 7, "1.2", 1),
         q(57, "1.1", "ATTENDEDTRANSFER", "LINK", "SIP/a-1", "SIP/b-2", 7, 50, 2)],
        CallOutcome.TRANSFERRED, 7, 50, 7, False,
    ),
    "legacy_transfer_without_origpos": (
        [q(39, "1.1", "TRANSFER", 300, "ext", 9, 30)],
        CallOutcome.TRANSFERRED, 9, 30, 9, False,
    ),
    "abandon": ([q(75, "1.1", "ABANDON", 1, 1, 75)], CallOutcome.ABANDONED, 75, None, None, True),
    "exitwithtimeout": (
        [q(300, "1.1", "EXITWITHTIMEOUT", 1, 1, 300)], CallOutcome.TIMEOUT, 300, None, None, True,
    ),
    "exitempty": ([q(2, "1.1", "EXITEMPTY", 1, 1, 2)], CallOutcome.EXIT_EMPTY, 2, None, None, True),
    "withdraw": (
        [q(40, "1.1", "WITHDRAW", 1, 1, 40, "moved")], CallOutcome.TIMEOUT, 40, None, None, True,
    ),
    "exitwithkey": (
        [q(33, "1.1", "EXITWITHKEY", 5, 1, 1, 33)], CallOutcome.EXIT_KEY, 33, None, None, True,
    ),
    "ringnoanswer_in_ms_does_not_end_the_call": (
        [q(15, "1.1", "RINGNOANSWER", 15000, agent="SIP/201"),
         q(16, "1.1", "RINGCANCELED", 1000, agent="SIP/202"),
         q(20, "1.1", "CONNECT", 20, "1.2", 15), q(30, "1.1", "COMPLETECALLER", 20, 10, 1)],
        CallOutcome.ANSWERED, 20, 10, 20, False,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(EVENTS))
def test_each_caller_event_gives_its_outcome_wait_and_talk(tmp_path: Path, case: str) -> None:
    lines, outcome, wait, talk, answered, callback = EVENTS[case]
    write(tmp_path / "queue_log", enter(0), *lines)
    events = read(tmp_path)
    (call,) = [e for e in events if isinstance(e, CallEvent)]
    assert (call.outcome, call.wait_seconds, call.talk_seconds) == (outcome, wait, talk)
    assert call.external_id == f"1.1@support@{T0}"
    assert call.entered_at == datetime.fromtimestamp(T0, UTC)
    assert call.caller == CALLER
    if answered is None:
        assert call.answered_at is None
    else:
        assert call.answered_at == datetime.fromtimestamp(T0 + answered, UTC)
    missed = [e for e in events if isinstance(e, MessageEvent)]
    assert bool(missed) == callback
    if callback:
        assert (missed[0].conversation, missed[0].channel) == ("tel:079460001", "voicemail")


def test_agent_and_system_events_are_ignored_and_unknown_verbs_are_counted_not_rejected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(
        tmp_path / "queue_log",
        f"{T0}|NONE|NONE|NONE|QUEUESTART|",
        f"{T0}|NONE|support|SIP/201|ADDMEMBER|",
        f"{T0}|NONE|support|SIP/201|PAUSE|lunch",
        f"{T0}|1.9|NONE|Agent/1127|AGENTCALLBACKLOGIN|hint:1127@default",
        f"{T0}|1.8|NONE|Agent/1127|OUTDIAL|881142",
        f"{T0}|1.7|support|NONE|FULL|",
        enter(1),
        q(9, "1.1", "COMPLETECALLER", 3, 5, 1),
    )
    settings = settings_from_mapping({"sources": [source()]}, tmp_path)
    with caplog.at_level("INFO", logger="connectors.phone.asterisk_queue_log"):
        batches = list(build_connector(settings, settings.sources[0]).fetch(None, NOW))
    assert [r for b in batches for r in b.rejected] == []
    assert [e.outcome for b in batches for e in b.events] == [CallOutcome.ANSWERED]
    assert "2 queue_log lines with events that are not measured (OUTDIAL x1, FULL x1)" in (
        caplog.text
    )


def test_a_call_line_whose_enterqueue_was_not_read_enters_at_time_minus_wait(
    tmp_path: Path,
) -> None:
    write(tmp_path / "queue_log", q(100, "2.1", "ABANDON", 1, 1, 40))
    (call,) = [e for e in read(tmp_path) if isinstance(e, CallEvent)]
    assert call.entered_at == datetime.fromtimestamp(T0 + 60, UTC)
    assert (call.outcome, call.wait_seconds, call.caller) == (CallOutcome.ABANDONED, 40, None)


# A hand-built day: (callid, enter offset, end lines, expected outcome, wait)
DAY = [
    ("d.1", 0, [("CONNECT", 20, 20, "x", 3), ("COMPLETECALLER", 200, 20, 180, 1)], "answered", 20),
    ("d.2", 60, [("CONNECT", 360, 300, "x", 3), ("COMPLETEAGENT", 400, 300, 40, 1)],
     "answered", 300),
    ("d.3", 120, [("CONNECT", 480, 360, "x", 3), ("BLINDTRANSFER", 500, 9, "c", 360, 20, 1)],
     "transferred", 360),
    ("d.4", 180, [("ABANDON", 600, 1, 1, 420)], "abandoned", 420),
    ("d.5", 240, [("EXITWITHTIMEOUT", 1140, 1, 1, 900)], "timeout", 900),
    ("d.6", 300, [("CONNECT", 1200, 900, "x", 3), ("COMPLETECALLER", 1300, 900, 100, 1)],
     "answered", 900),
    ("d.7", 360, [("EXITWITHKEY", 370, 1, 1, 1, 10)], "exit_key", 10),
    ("d.8", 420, [("ABANDON", 425, 1, 1, 5)], "abandoned", 5),
]  # fmt: skip


def day_lines() -> list[str]:
    lines: list[tuple[int, str]] = []
    for n, (callid, entered, ends, _, _) in enumerate(DAY):
        lines.append((entered, q(entered, callid, "ENTERQUEUE", "", f"0207946{n:04d}", 1)))
        for verb, at, *data in ends:
            lines.append((at, q(at, callid, verb, *data, agent="SIP/201")))
    return [line for _, line in sorted(lines, key=lambda item: item[0])]


def test_a_day_of_calls_gives_outcomes_waits_breaches_and_callbacks(tmp_path: Path) -> None:
    write(tmp_path / "queue_log", *day_lines())
    settings, engine = open_store(tmp_path, [source()])
    result = poll(engine, settings, "queue")
    assert result.rejected == 0
    stored = calls(engine)
    assert {cid.split("@")[0]: (r.outcome, r.wait_seconds) for cid, r in stored.items()} == {
        callid: (outcome, wait) for callid, _, _, outcome, wait in DAY
    }
    assert tally(engine, "support_calls_total") == 8
    assert tally(engine, "support_calls_total", outcome="abandoned") == 2
    # over 5 minutes: d.3 (360), d.4 (420), d.5 (900), d.6 (900); over 13: d.5 and d.6
    assert tally(engine, "support_hold_breaches_total", threshold="warn") == 4
    assert tally(engine, "support_hold_breaches_total", threshold="max") == 2
    # abandoned, timed out and exit-key callers wait for a callback on channel voicemail
    assert sorted(m.channel for m in messages(engine).values()) == ["voicemail"] * 4
    assert [i.status for i in inquiries(engine)] == ["open"] * 4


def test_a_waiting_caller_is_shown_then_finished_by_a_later_poll(tmp_path: Path) -> None:
    log = write(tmp_path / "queue_log", enter(0, "w.1"), enter(30, "w.2"))
    settings, engine = open_store(tmp_path, [source()])
    at_0905 = datetime.fromtimestamp(T0 + 300, UTC)
    poll(engine, settings, "queue", now=at_0905)
    assert sorted(r.outcome for r in calls(engine).values()) == ["waiting", "waiting"]
    metrics = exposition(engine, settings, lambda: at_0905).decode()
    assert 'support_calls_waiting{queue="support",source="queue"} 2.0' in metrics
    assert 'support_longest_wait_seconds{queue="support",source="queue"} 300.0' in metrics

    write(log, q(400, "w.1", "CONNECT", 400, "x", 2), mode="ab")
    later = datetime.fromtimestamp(T0 + 410, UTC)
    poll(engine, settings, "queue", now=later)
    write(log, q(500, "w.1", "COMPLETECALLER", 400, 100, 1), q(820, "w.2", "ABANDON", 1, 1, 790),
          mode="ab")  # fmt: skip
    poll(engine, settings, "queue", now=datetime.fromtimestamp(T0 + 900, UTC))
    stored = {k.split("@")[0]: r for k, r in calls(engine).items()}
    assert (stored["w.1"].outcome, stored["w.1"].wait_seconds) == ("answered", 400)
    assert aware(stored["w.1"].answered_at) == datetime.fromtimestamp(T0 + 400, UTC)
    assert (stored["w.2"].outcome, stored["w.2"].wait_seconds) == ("abandoned", 790)
    assert tally(engine, "support_calls_total") == 2
    assert tally(engine, "support_hold_breaches_total", threshold="max") == 1
    metrics = exposition(engine, settings, lambda: later).decode()
    assert 'support_calls_waiting{queue="support",source="queue"} 0.0' in metrics  # nobody


def test_a_caller_with_no_end_after_the_cap_becomes_unknown(tmp_path: Path) -> None:
    write(tmp_path / "queue_log", enter(0, "u.1"))
    settings, engine = open_store(tmp_path, [source(unknown_after="4h")])
    poll(engine, settings, "queue", now=datetime.fromtimestamp(T0 + 3 * 3600, UTC))
    assert [r.outcome for r in calls(engine).values()] == ["waiting"]
    poll(engine, settings, "queue", now=datetime.fromtimestamp(T0 + 4 * 3600, UTC))
    # Its wait is not known: at least the 4 hours it was seen waiting (left out of every wait).
    assert [(r.outcome, r.wait_seconds) for r in calls(engine).values()] == [("unknown", 14400)]
    assert tally(engine, "support_calls_total", outcome="unknown") == 1
    # Its end arriving later changes nothing: it has the same id, and the call is finished.
    write(tmp_path / "queue_log", q(5 * 3600, "u.1", "ABANDON", 1, 1, 18000), mode="ab")
    poll(engine, settings, "queue", now=datetime.fromtimestamp(T0 + 5 * 3600, UTC))
    assert [r.outcome for r in calls(engine).values()] == ["unknown"]
    assert tally(engine, "support_calls_total") == 1


def test_rotation_finishes_the_old_file_and_copytruncate_restarts(tmp_path: Path) -> None:
    log = write(tmp_path / "queue_log", enter(0, "r.1"), enter(10, "r.2"))
    settings, engine = open_store(tmp_path, [source(path="queue_log*")])
    poll(engine, settings, "queue", now=datetime.fromtimestamp(T0 + 20, UTC))
    write(log, q(60, "r.1", "ABANDON", 1, 1, 60), mode="ab")  # written just before the rename
    log.rename(tmp_path / "queue_log.1")
    os.utime(tmp_path / "queue_log.1", (T0, T0))  # older than the new file
    write(tmp_path / "queue_log", q(70, "r.2", "ABANDON", 1, 1, 60), enter(80, "r.3"))
    poll(engine, settings, "queue", now=datetime.fromtimestamp(T0 + 90, UTC))
    outcomes = {k.split("@")[0]: r.outcome for k, r in calls(engine).items()}
    assert outcomes == {"r.1": "abandoned", "r.2": "abandoned", "r.3": "waiting"}
    # copytruncate: the live file emptied in place, then written again
    (tmp_path / "queue_log").write_bytes(b"")
    write(tmp_path / "queue_log", q(95, "r.3", "EXITEMPTY", 1, 1, 15))
    result = poll(engine, settings, "queue", now=datetime.fromtimestamp(T0 + 100, UTC))
    assert calls(engine)[f"r.3@support@{T0 + 80}"].outcome == "exit_empty"
    again = poll(engine, settings, "queue", now=datetime.fromtimestamp(T0 + 100, UTC))
    assert (result.calls, again.calls, len(calls(engine))) == (1, 0, 3)


GIANT = b"1763629200|g.1|support|NONE|ENTERQUEUE|" + b"x" * (1024 * 1024 + 10)


def test_bad_lines_are_skipped_with_located_reasons_and_the_rest_is_read(tmp_path: Path) -> None:
    write(
        tmp_path / "queue_log",
        enter(0, "b.1"),
        b"1763629200|b.2|support",  # missing fields
        b"yesterday|b.3|support|NONE|ENTERQUEUE||0207|1",
        GIANT,
        b"\x00\x01\x02\xff binary junk",
        b"1763629200|b.\xff\xfe|support|NONE|ENTERQUEUE||0207|1",
        q(5, "b.1", "CONNECT", "soon", "x", 1),
        q(9, "b.1", "COMPLETECALLER", 9, 0, 1),
    )
    settings, engine = open_store(tmp_path, [source()])
    result = poll(engine, settings, "queue")
    located = sorted(result.rejections, key=lambda r: int(r.location.rpartition(":")[2]))
    assert [str(r) for r in located] == [
        "queue_log:2: expected at least 5 |-separated fields, got 3",
        "queue_log:3: the epoch (field 1) is not a number",
        f"queue_log:4: line of {len(GIANT)} bytes is longer than the limit",
        "queue_log:5: binary data (NUL byte at byte 1)",
        "queue_log:6: invalid UTF-8 at byte 14",
        "queue_log:7: CONNECT holdtime is not a number",
    ]
    assert [(r.outcome, r.wait_seconds) for r in calls(engine).values()] == [("answered", 9)]


def test_an_unusable_cursor_is_a_permanent_error(tmp_path: Path) -> None:
    write(tmp_path / "queue_log", enter(0))
    settings = settings_from_mapping({"sources": [source()]}, tmp_path)
    connector = build_connector(settings, settings.sources[0])
    assert isinstance(connector, AsteriskQueueLogConnector)
    with pytest.raises(Exception, match="stored cursor is unusable"):
        list(connector.fetch({"v": 99}, NOW))


def stored_calls(database: Path) -> int:
    if not database.exists():
        return 0
    try:
        conn = sqlite3.connect(database, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM call").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0  # the schema is not there yet


def test_import_killed_midway_then_resumed_loses_and_doubles_nothing(tmp_path: Path) -> None:
    lines = []
    for n in range(12_000):  # three batches of 5,000 lines
        t, call = T0 + 10 * n, f"k.{n}"
        lines.append(f"{t}|{call}|support|NONE|ENTERQUEUE||0207946{n % 1000:04d}|1")
        end = "ABANDON|1|1|7" if n % 4 == 0 else "COMPLETECALLER|7|30|1"
        lines.append(f"{t + 7}|{call}|support|SIP/201|{end}")
    write(tmp_path / "queue_log", *lines)
    config = {"database": "sqlite:///killed.db", "sources": [source()]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "monitor", "--config", str(path), "poll"]
    database = tmp_path / "killed.db"
    killed = 0
    for _ in range(3):  # each run is killed right after it commits a batch of its own
        before = stored_calls(database)
        run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while run.poll() is None and stored_calls(database) == before:
            try:
                run.wait(timeout=0.01)
            except subprocess.TimeoutExpired:
                pass
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            killed += 1
        run.wait()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert killed > 0, "no poll was interrupted: the kill moments are too late for this machine"
    engine = make_engine("sqlite:///killed.db", tmp_path)
    assert len(calls(engine)) == 12_000
    assert tally(engine, "support_calls_total") == 12_000
    assert tally(engine, "support_calls_total", outcome="abandoned") == 3_000
    assert len(messages(engine)) == 3_000


def test_the_cap_also_applies_while_reading_an_old_file(tmp_path: Path) -> None:
    write(tmp_path / "queue_log", enter(0, "o.1"), q(5 * 3600, "o.2", "ABANDON", 1, 1, 5))
    events = read(tmp_path, now=datetime.fromtimestamp(T0 + 5 * 3600, UTC) + timedelta(1))
    outcomes = {e.external_id.split("@")[0]: e.outcome for e in events if isinstance(e, CallEvent)}
    assert outcomes == {"o.1": CallOutcome.UNKNOWN, "o.2": CallOutcome.ABANDONED}


GOOD_LINES = [
    q(0, "p.1", "ENTERQUEUE", "", CALLER, 1),
    q(20, "p.1", "CONNECT", 20, "p.9", 3, agent="SIP/201"),
    q(80, "p.1", "COMPLETEAGENT", 20, 60, 1, agent="SIP/201"),
    q(5, "p.2", "ENTERQUEUE", "", "02079460002", 1),
    q(65, "p.2", "ABANDON", 1, 1, 60),
    q(15, "p.2", "RINGNOANSWER", 15000, agent="SIP/202"),
    q(30, "NONE", "PAUSE", "lunch", agent="SIP/203"),
    "   ",
    "",
    " 1763629200 | p.3 | support | NONE | EXITWITHKEY | 5 | 1 | 1 | 40 ",
    # Lines the fused loop (connectors.phone.queue_log_lines) takes, and near misses it must hand to
    # the general path: every one gives what parse_line + Calls.feed give, in any order.
    q(40, "p.4", "CONNECT", 30, "p.9", 3, agent="SIP/201"),
    q(90, "p.4", "COMPLETECALLER", 30, 50, 1, agent="SIP/201"),
    q(95, "p.5", "COMPLETEAGENT", 12, 70, 1),
    q(10, "p.1", "ENTERQUEUE", "", "", 1),
    q(20, "p.1", "CONNECT", "x", "p.9", 3),
    q(20, "p.1", "CONNECT"),
    q(80, "p.1", "COMPLETEAGENT", 20),
    q(80, "p.1", "COMPLETECALLER", 20, "nan", 1),
    q(80, "p.1", "COMPLETECALLER", -1, 60, 1),
    q(20, "p.1", "connect", 20, "p.9", 3),
    q(20, "NONE", "ENTERQUEUE", "", CALLER, 1),
    q(15, " ", "RINGNOANSWER", 15000),
    "x|p.1|support|NONE|ENTERQUEUE||1|1",
    "0|p.1|support|NONE|COMPLETECALLER|1|1|1",
    "1763629200|p.6||NONE|ENTERQUEUE||02079460006|1",
    " 1763629260|p.6|support|NONE|CONNECT|60|p.9|1",
    q(70, "p.7", "ENTERQUEUE", "", "02079460007", 1),
    q(130, "p.7", "EXITWITHTIMEOUT", 1, 1, 60),
    q(140, "p.8", "EXITEMPTY", 1, 1, 9),
    q(150, "p.8", "WITHDRAW", 1, 1, 12),
    q(160, "p.1", "EXITWITHKEY", 5, 1, 1, 40),
    q(65, "p.2", "ABANDON", 1, 1, "?"),
    q(65, "p.2", "ABANDON", 1, 1),
    q(300, "p.4", "BLINDTRANSFER", 300, "from-internal", 30, 200, 1, agent="SIP/201"),
    q(310, "p.5", "TRANSFER", 300, "from-internal", 12, 90, agent="SIP/201"),
    q(320, "p.1", "BLINDTRANSFER", 300, "from-internal", 20),
    q(330, "p.1", "ATTENDEDTRANSFER", "BRIDGE", "b1", "b2", 20, 30, 1),
]
JUNK = st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b)


@hypothesis.settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(
        st.one_of(st.sampled_from(GOOD_LINES).map(str.encode), JUNK, st.just(b"\xe2\x82")),
        max_size=25,
    )
)
def test_lines_decoded_a_run_at_a_time_give_what_each_line_alone_gives(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]
) -> None:
    # The connector decodes a run of clean lines in one go and parses text; a line with a NUL
    # or bad UTF-8 anywhere in the run sends every line of it through parse_line alone.
    path = write(tmp_path_factory.mktemp("runs") / "queue_log", *lines)
    config = settings_from_mapping({"sources": [source(path=str(path))]}, path.parent)
    batches = list(build_connector(config, config.sources[0]).fetch_paths([path], NOW))
    expected_calls, events, rejected = _one_line_at_a_time(lines)
    events += expected_calls.expire(None) + expected_calls.expire(NOW.timestamp())
    assert [e for b in batches for e in b.events] == events
    assert [r for b in batches for r in b.rejected] == rejected


def _one_line_at_a_time(
    lines: list[bytes], verbs: dict[str, str] | None = None
) -> tuple[Calls, list[Any], list[Rejection]]:
    """What parse_line + Calls.feed make of `lines`, each on its own (the reference)."""
    calls_, events, rejected = Calls(4 * 3600, verbs=verbs), [], []
    for number, data in enumerate(lines, 1):
        try:
            record = parse_line(data, calls_.not_calls)
            if record is not None:
                events.extend(calls_.feed(record))
        except RowError as exc:
            rejected.append(Rejection(f"queue_log:{number}", str(exc)))
    return calls_, events, rejected


@hypothesis.settings(max_examples=100, deadline=None)
@given(texts=st.permutations(GOOD_LINES))
def test_fused_loop_gives_what_the_general_path_gives_for_clean_lines_in_any_order(
    texts: list[str],
) -> None:
    calls_, records = Calls(4 * 3600), Records(window_of(PlausibleTimes(), NOW))
    feed_texts(calls_, texts, lambda index: f"queue_log:{index + 1}", records)
    events, rejected = records.parsed()
    _, expected_events, expected_rejected = _one_line_at_a_time([t.encode() for t in texts])
    assert (events, rejected) == (expected_events, expected_rejected)


# Custom verbs a source gives a meaning: one the fused loop takes (CALLERCONNECTED: CONNECT),
# one it skips unless given a meaning (RINGNOANSWER, here an outbound call), one it never takes.
VERBS = {
    "CALLERCONNECTED": "CONNECT",
    "RINGNOANSWER": "outbound_call",
    "HUNGUP": "ABANDON",
    "NOISE": "ignore",
}
VERB_LINES = [
    *GOOD_LINES,
    q(20, "v.1", "ENTERQUEUE", "", CALLER, 1),
    q(44, "v.1", "CALLERCONNECTED", 24, "v.9", 3, agent="SIP/201"),
    q(99, "v.1", "COMPLETECALLER", 24, 55, 1, agent="SIP/201"),
    q(30, "v.2", "HUNGUP", 1, 1, 30),
    q(300, "v.3", "RINGNOANSWER", "02079460002", agent="SIP/202"),
    q(310, "v.4", "NOISE", "x"),
]


@hypothesis.settings(max_examples=100, deadline=None)
@given(texts=st.permutations(VERB_LINES))
def test_with_verbs_the_fused_loop_gives_what_the_general_path_gives(texts: list[str]) -> None:
    calls_ = Calls(4 * 3600, verbs=VERBS)
    records = Records(window_of(PlausibleTimes(), NOW))
    feed_texts(calls_, texts, lambda index: f"queue_log:{index + 1}", records)
    events, rejected = records.parsed()
    _, expected_events, expected_rejected = _one_line_at_a_time([t.encode() for t in texts], VERBS)
    assert (events, rejected) == (expected_events, expected_rejected)
    assert any(isinstance(e, MessageEvent) and e.side == "agent" for e in events)


# The window of the next test starts at midnight before T0: a wait of 11 hours reaches before
# it. Lines the fused loop takes since it also ends calls unanswered and transferred, and the
# near misses it must leave to the general path, which rejects them with the reason.
WINDOW = window_of(PlausibleTimes(earliest=date(2026, 11, 20)), NOW)
WINDOW_LINES = [
    *GOOD_LINES,
    q(30, "w.1", "ABANDON", 1, 1, 40_000),  # entered 11 h before: before the window
    q(30, "w.2", "EXITWITHKEY", 5, 1, 1, 40_000),
    q(30, "w.3", "COMPLETECALLER", 40_000, 10, 1),
    q(30, "w.4", "BLINDTRANSFER", 300, "ctx", 20, 40_000, 1),
    q(30, "w.5", "ATTENDEDTRANSFER", "BRIDGE", "b1", 40_000, 10, 1),
    # A stint the general path opens (lower case) reaching before the window, then ended.
    q(20, "w.6", "connect", 40_000, "w.9", 1),
    q(40, "w.6", "ABANDON", 1, 1, 5),
    q(20, "w.7", "Connect", 40_000, "w.9", 1),
    q(90, "w.7", "COMPLETEAGENT", 40_000, 70, 1),
    q(100, "w.7", "TRANSFER", 300, "ctx", 40_000, 70),
    q(0, "w.8", "ENTERQUEUE", "", "1001", 1),  # our own extension: staff, never measured
    q(60, "w.8", "ABANDON", 1, 1, 60),
    q(0, "w.10", "ENTERQUEUE", "", "anonymous", 1),
    q(60, "w.10", "EXITWITHTIMEOUT", 1, 1, 60),  # no number to call back
    q(0, "w.11", "ENTERQUEUE", "", "02079460011", 1),
    q(60, "w.11", "EXITEMPTY", 1, 1, 60),
    q(61, "w.11", "ABANDON", 1, 1, 61),  # after its end: a call whose start was not read
    q(70, "w.12", "ATTENDEDTRANSFER", "LINK", "a", "b", 9, 30, 1, "", " "),
    q(70, "w.12", "ATTENDEDTRANSFER", "BRIDGE", 9, 30, "", ""),
    q(70, "w.13", "ATTENDEDTRANSFER", "BRIDGE", "b1", "x", 30, 1),
    q(80, "w.13", "BLINDTRANSFER", 300, "ctx", 9),
    q(80, "w.13", "BLINDTRANSFER", 300, "ctx", 9, "-1", 1),
    q(85, "w.14", "WITHDRAW", 1, 1, "nan"),
    q(85, "w.14", "EXITWITHTIMEOUT", 1, 1, "1e9"),
    q(85, "w.14", "ABANDON", 1, 1, "-0"),
    q(86, "w.15", "ENTERQUEUE", "", "0207946001\u00e9", 1),
    q(90, "w.15", "ABANDON", 1, 1, 4),
    q(86, "w.16", "ENTERQUEUE", "", "0" * 300, 1),
    q(95, "w.16", "CONNECT", 9, "w.9", 1, agent="PJSIP/\u00e9" * 60),
    q(96, "w.16", "COMPLETECALLER", 9, 1, 1, agent="PJSIP/\u00e9" * 60),
    # Stints a cursor kept (OPEN_STINTS), one shown waiting by an earlier poll.
    q(100, "c.1", "CONNECT", 5, "c.9", 1, agent="SIP/201"),
    q(110, "c.1", "ABANDON", 1, 1, 9),
    q(100, "c.2", "COMPLETECALLER", 5, 50, 1),
    q(100, "c.3", "CONNECT", 5, "c.9", 1),
    q(150, "c.3", "COMPLETEAGENT", 5, 50, 1),
    q(120, "c.4", "CONNECT", 5, "c.9", 1),
]
# callid, queue, entered, caller, answered, wait, shown, final: two before the window.
OPEN_STINTS: list[Any] = [
    ["c.1", "support", T0 - 40_000, CALLER, None, None, True, False],
    ["c.2", "support", T0 - 40_000, CALLER, T0 - 39_000, 10.0, False, False],
    ["c.3", "support", T0 + 10, CALLER, None, None, True, False],
    ["c.4", "support", T0 - 40_000, CALLER, None, None, False, False],
]


def _state(calls_: Calls, records: Records, *, fused: bool) -> tuple[Any, ...]:
    events, rejected = records.parsed()
    ignored = calls_.ignored
    kinds = [(type(e), list(map(type, e)) if isinstance(e, CallEvent) else None) for e in events]
    return (
        events,
        rejected,
        kinds,
        calls_.dump(),
        calls_.ignored,
        calls_.staff,
        calls_.skipped(),
        # The general path counts an agent or system line among the lines read as well as
        # among the skipped ones; the fused loop among the skipped ones only.
        records.read - (0 if fused else ignored),
    )


def _fed(calls_: Calls, texts: list[str], *, fused: bool) -> tuple[Any, ...]:
    """`texts` through the fused loop, or each through `records.take` (the general path, the
    reference), and the state they leave (`_state`)."""
    records = Records(WINDOW)
    if fused:
        feed_texts(calls_, texts, lambda index: f"queue_log:{index + 1}", records)
    else:
        for index, text in enumerate(texts):
            records.take(f"queue_log:{index + 1}", feed_text, calls_, text)
    return _state(calls_, records, fused=fused)


@hypothesis.settings(max_examples=150, deadline=None)
@given(texts=st.permutations(WINDOW_LINES).map(lambda lines: lines[:30]))
def test_fused_loop_ends_calls_as_the_general_path_does_within_the_plausible_window(
    texts: list[str],
) -> None:
    # Both paths with the same window, our extensions and a `Records` each: every line through
    # `records.take` (the general path, the reference) or all of them through the fused loop.
    def made(fused: bool) -> tuple[Any, ...]:
        calls_ = Calls(4 * 3600, WINDOW, None, lambda caller: len(caller) == 4)
        calls_.load(None, [tuple(stint) for stint in OPEN_STINTS])
        return _fed(calls_, texts, fused=fused)

    fused, general = made(fused=True), made(fused=False)
    for part, expected in zip(fused, general, strict=True):
        assert part == expected


# Callers of every form the default extensions tell apart (2-6 digits or such a channel is
# ours), around the lengths where the fused loop stops asking: 6 and 7 digits, after a "+".
STAFF_CALLERS = ["1001", "123456", "1234567", "+1001", "+", "PJSIP/1001", "SIP/trunk", "٣٣٣٣"]
STAFF_LINES = [
    line
    for number, caller in enumerate(STAFF_CALLERS)
    for line in (
        q(number, f"s.{number}", "ENTERQUEUE", "", caller, 1),
        q(60 + number, f"s.{number}", "ABANDON", 1, 1, 60),
    )
]


@hypothesis.settings(max_examples=60, deadline=None)
@given(texts=st.permutations(STAFF_LINES + GOOD_LINES[:12]).map(lambda lines: lines[:30]))
def test_fused_loop_tells_our_extensions_apart_as_the_general_path_does(
    texts: list[str],
) -> None:
    # A number of 7 digits or more, or one after a "+", is never an extension by default: the
    # fused loop does not ask `is_extension` of it (`Parties.long_numbers_outside`).
    parties = Parties(AsteriskQueueLogSettings.model_validate(source(path="queue_log")))

    def made(fused: bool) -> tuple[Any, ...]:
        calls_ = Calls(
            4 * 3600,
            WINDOW,
            None,
            parties.is_extension,
            long_numbers_outside=parties.long_numbers_outside and fused,
        )
        return _fed(calls_, texts, fused=fused)

    assert made(fused=True) == made(fused=False)


def test_the_default_extensions_are_short_numbers_whatever_the_fast_answer_for_long_ones() -> None:
    parties = Parties(AsteriskQueueLogSettings.model_validate(source(path="queue_log")))
    assert parties.long_numbers_outside
    assert [parties.is_extension(c) for c in STAFF_CALLERS] == [
        True, True, False, False, False, True, False, True,
    ]  # fmt: skip
    configured = Parties(
        AsteriskQueueLogSettings.model_validate(source(path="queue_log", extensions=["+44*"]))
    )
    assert not configured.long_numbers_outside and configured.is_extension("+442079460001")


def test_queue_and_member_names_kept_as_one_object_each_are_bounded() -> None:
    # Each call of a queue names the same string object (pickled once per batch on its way to
    # the storing process), but a log of ever new names keeps no more than _NAMES of them.
    texts = [q(n, f"m.{n}", "COMPLETECALLER", 5, 50, 1, agent="SIP/201") for n in range(3)] + [
        line
        for number in range(_NAMES + 50)
        for line in (
            q(number, f"n.{number}", "ENTERQUEUE", "", CALLER, 1).replace("support", f"q{number}"),
            q(number + 9, f"n.{number}", "ABANDON", 1, 1, 9).replace("support", f"q{number}"),
        )
    ]
    calls_, records = Calls(4 * 3600), Records(window_of(PlausibleTimes(), NOW))
    feed_texts(calls_, texts, lambda index: f"queue_log:{index + 1}", records)
    events = [e for e in records.parsed()[0] if isinstance(e, CallEvent)]
    assert len(events) == _NAMES + 53 and len(calls_.names) == _NAMES
    assert events[0].queue is events[2].queue and events[0].agent is events[2].agent
