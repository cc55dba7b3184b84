"""Reading a source in a child process while this one stores: the same batches, errors and
stops as reading inline (monitor.store.reader_process)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from connectors.base import Batch, ConnectorError, Rejection
from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.measure.events import CallEvent, CallOutcome, MessageEvent, Side, Thread
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import import_paths
from monitor.store.reader_process import ReaderDied, can_fork, read_in_child, reading_child
from monitor.store.tables import CALLS, INQUIRIES, MESSAGES, STATES, TALLIES

NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

pytestmark = pytest.mark.skipif(
    "fork" not in __import__("multiprocessing").get_all_start_methods(), reason="no fork here"
)


def queue_line(minutes: float, callid: str, event: str, *data: object) -> str:
    at = int((T0 + timedelta(minutes=minutes)).timestamp())
    return "|".join([str(at), callid, "support", "NONE", event, *map(str, data)]) + "\n"


# An answered call, two missed calls from one number (one callback request, a repeat caller),
# a missed call from a withheld number, the caller who missed getting through later, a
# transfer, and a line that is no record.
QUEUE_LOG = (
    queue_line(0, "1.1", "ENTERQUEUE", "", "+442079460001", 1)
    + queue_line(1, "1.1", "CONNECT", 60, "x", 1)
    + queue_line(4, "1.1", "COMPLETECALLER", 60, 180, 1)
    + queue_line(5, "2.1", "ENTERQUEUE", "", "02079460002", 1)
    + queue_line(7, "2.1", "ABANDON", 1, 1, 120)
    + queue_line(10, "3.1", "ENTERQUEUE", "", "442079460002", 1)
    + queue_line(16, "3.1", "EXITWITHTIMEOUT", 1, 1, 360)
    + queue_line(20, "4.1", "ENTERQUEUE", "", "anonymous", 1)
    + queue_line(22, "4.1", "ABANDON", 1, 1, 120)
    + "this is no queue_log line\n"
    + queue_line(30, "5.1", "ENTERQUEUE", "", "02079460002", 1)
    + queue_line(31, "5.1", "CONNECT", 60, "y", 1)
    + queue_line(35, "5.1", "BLINDTRANSFER", "sales", 60, 240, 1)
)


def configure(tmp_path: Path, name: str) -> tuple[Settings, Engine]:
    settings = settings_from_mapping(
        {"sources": [{"name": "queue", "kind": "asterisk_queue_log", "path": "queue_log"}]},
        tmp_path,
    )
    engine = make_engine(f"sqlite:///{tmp_path}/{name}.db", tmp_path)
    prepare(engine)
    return settings, engine


def stored(engine: Engine) -> dict[str, Any]:
    def rows(table: Any) -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            return sorted(tuple(r)[1:] for r in conn.execute(select(table)))

    return {t.name: rows(t) for t in (CALLS, MESSAGES, INQUIRIES, TALLIES, STATES)}


def test_an_import_read_in_a_child_stores_exactly_what_reading_inline_stores(
    tmp_path: Path,
) -> None:
    (tmp_path / "queue_log").write_text(QUEUE_LOG)
    results = {}
    for name, in_child in (("inline", False), ("child", True)):
        settings, engine = configure(tmp_path, name)
        result = import_paths(
            engine,
            settings,
            settings.sources[0],
            [tmp_path / "queue_log"],
            now=NOW,
            in_child=in_child,
        )
        results[name] = (result.summary(), [str(r) for r in result.rejections], stored(engine))
    assert results["child"] == results["inline"]
    summary, rejections, rows = results["child"]
    assert "5 calls, 1 rejected" in summary and len(rejections) == 1, summary
    assert len(rows["call"]) == 5 and len(rows["message"]) == 2  # two requests from one number


def batches(count: int, then: BaseException | None = None) -> Iterator[Batch]:
    """`count` batches of one call and one message each, then `then` raised."""
    for n in range(count):
        at = T0 + timedelta(minutes=n)
        call = CallEvent(f"{n}", "support", at, CallOutcome.ABANDONED, left_at=at, caller="1")
        message = MessageEvent(f"m{n}", "tel:123456789", at, Side.CUSTOMER, refers=(f"{n}",))
        # An e-mail at an odd microsecond (its time crosses as whole microseconds) with a thread.
        email = MessageEvent(
            f"<e{n}@shop.test>",
            f"<e{n}@shop.test>",
            at + timedelta(microseconds=999_999 - n),
            Side.AGENT,
            thread=Thread((f"<e{n}@shop.test>",), "~hint", True, timedelta(days=2)),
        )
        rejected = [Rejection(f"log:{n}", "not a record")]
        noted = {"inbound calls (a guess from the numbers)": n + 1}
        yield Batch([message, call, email], {"n": n}, rejected, {"agent lines": n}, noted)
    if then is not None:
        raise then


def test_batches_cross_whole_with_their_cursor_rejections_skip_counts_and_remarks() -> None:
    # The remarks too ("a guess from the numbers"): `poll` reads in a child and must say them.
    with read_in_child(lambda: batches(3)) as taken:
        received = list(taken)
    assert received == [
        Batch(
            sorted(b.events, key=lambda e: isinstance(e, MessageEvent)),
            b.cursor,
            b.rejected,
            b.skipped,
            b.noted,
        )
        for b in batches(3)
    ]
    assert all(type(e) in (CallEvent, MessageEvent) for b in received for e in b.events)


def test_a_source_error_reaches_the_writer_after_the_batches_before_it_with_its_flag() -> None:
    seen: list[int] = []
    failure = ConnectorError("queue_log: permission denied", permanent=True)
    with (
        pytest.raises(ConnectorError) as raised,
        read_in_child(lambda: batches(2, failure)) as taken,
    ):
        seen.extend(b.cursor["n"] for b in taken)
    assert seen == [0, 1]
    assert str(raised.value) == "queue_log: permission denied" and raised.value.permanent


def test_an_unexpected_error_keeps_its_class_and_the_childs_traceback() -> None:
    with (
        pytest.raises(ValueError, match="bad state") as raised,
        read_in_child(lambda: batches(1, ValueError("bad state"))) as taken,
    ):
        list(taken)
    assert any("in the reading process" in note for note in raised.value.__notes__)


class Unpicklable(Exception):
    def __init__(self, message: str, *, code: int) -> None:  # pickle cannot rebuild it
        super().__init__(message)
        self.code = code


def test_an_error_that_cannot_cross_becomes_a_source_error_naming_it() -> None:
    with (
        pytest.raises(ConnectorError, match="^Unpicklable: odd") as raised,
        read_in_child(lambda: batches(0, Unpicklable("odd", code=3))) as taken,
    ):
        list(taken)
    assert not raised.value.permanent


def test_a_reader_that_dies_without_a_word_is_a_transient_source_error() -> None:
    def dying() -> Iterator[Batch]:
        yield from batches(1)
        os._exit(3)

    with pytest.raises(ReaderDied, match="exit code 3") as raised, read_in_child(dying) as taken:
        list(taken)
    assert isinstance(raised.value, ConnectorError) and not raised.value.permanent


def test_leaving_early_stops_an_endless_reader() -> None:
    def endless() -> Iterator[Batch]:
        while True:
            yield from batches(1)

    started = time.monotonic()
    with read_in_child(endless) as taken:
        first = next(iter(taken))
    # The block returned when the child noticed, not after the grace a stuck child is given.
    assert first.cursor == {"n": 0} and time.monotonic() - started < 2


def test_a_child_started_before_its_cursor_is_known_reads_from_the_cursor_given_later() -> None:
    """A poll forks its reader first and reads the cursor meanwhile: the child waits for it
    where the reading needs it, and reads from it."""

    def read(given: Any) -> Iterator[Batch]:
        cursor = given()
        yield Batch([], {"after": cursor})

    with reading_child(read) as child:
        child.give({"n": 7})
        assert [b.cursor for b in child.batches] == [{"after": {"n": 7}}]


def test_a_source_that_failed_before_its_cursor_was_given_fails_the_reading_alone() -> None:
    def read(given: Any) -> Iterator[Batch]:
        raise ConnectorError("imap.example.com:993: connection refused")

    with reading_child(read) as child:
        with pytest.raises(ConnectorError, match="connection refused"):
            next(child.batches)
        child.give({"n": 7})  # the child has ended or is ending: giving is no error


def test_leaving_before_the_cursor_is_given_ends_a_child_waiting_for_a_server() -> None:
    """The store failed to open: the child, still connecting to a server that does not answer,
    is ended at once rather than after the grace a reading child gets to notice a stop."""

    def read(given: Any) -> Iterator[Batch]:
        threading.Event().wait()  # a server that never answers
        yield from ()

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="no store"), reading_child(read):
        raise RuntimeError("no store")
    assert time.monotonic() - started < 2


def test_a_process_with_another_thread_reads_inline() -> None:
    assert can_fork() == (threading.active_count() == 1)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not can_fork()
    finally:
        release.set()
        other.join()
