"""A log file rotated, truncated or replaced between two batches of one poll.

The first poll is the real ingest loop fed by a real connector with a batch size of 4 lines;
right after its first batch is committed, the file is changed the way logrotate (rename or
copytruncate) or an exporter (a new file moved over the old name) changes it, and the poll goes
on reading. One more ordinary poll later, the store must hold every line ever written exactly
once, with the same inquiries and tallies as one clean poll of all those lines.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from connectors.base import Batch, Connector, ConnectorContext
from connectors.chat.jsonl import ChatJsonlConnector
from connectors.phone.asterisk_cdr import AsteriskCdrConnector
from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import PollResult, _store_all, measuring, poll_source
from monitor.store.tables import CALLS, INQUIRIES, MESSAGES, TALLIES
from tests.connectors.phone.test_asterisk_cdr import cdr

NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
BATCH = 4
FIRST = 10  # lines before the poll starts: batches of 4, 4 and 2


def chat_line(n: int) -> str:
    at = datetime(2026, 11, 20, 8, 0, tzinfo=UTC) + timedelta(seconds=41 * n)
    role = ("customer", "agent", "customer", "bot")[n % 4]
    return json.dumps({"conversation": f"c{n // 4}", "at": at.isoformat(), "author_role": role})


def cdr_line(n: int) -> str:
    start = f"09:{n // 2:02d}:{30 * (n % 2):02d}"  # every 30 s, Berlin time
    return cdr(f"1763629{n:03d}.1", "+4420794600{n:02d}", "200", start, 5 + n, 60)


KINDS: dict[str, tuple[dict[str, Any], Callable[[int], str], type[Connector]]] = {
    "chat_jsonl": (
        {"name": "chat", "kind": "chat_jsonl", "path": "events.log*"},
        chat_line,
        ChatJsonlConnector,
    ),
    "asterisk_cdr": (
        {"name": "pbx", "kind": "asterisk_cdr", "path": "events.log*", "timezone": "Europe/Berlin"},
        cdr_line,
        AsteriskCdrConnector,
    ),
}


class Log:
    """The watched file `events.log` (the glob `events.log*` also matches its rotated copies)."""

    def __init__(self, folder: Path, line: Callable[[int], str]) -> None:
        self.path = folder / "events.log"
        self.line = line
        self.written: list[str] = []  # every distinct line ever written, in order

    def new_lines(self, count: int) -> str:
        lines = [self.line(len(self.written) + n) for n in range(count)]
        self.written.extend(lines)
        return "".join(f"{line}\n" for line in lines)

    def append(self, count: int) -> None:
        with self.path.open("a") as handle:
            handle.write(self.new_lines(count))


def rotated(log: Log) -> None:
    """logrotate's default: a writer's last lines, rename to .1, a new file."""
    log.append(2)
    log.path.rename(log.path.with_name("events.log.1"))
    log.path.write_text(log.new_lines(3))


def copytruncated(log: Log) -> None:
    """logrotate's copytruncate: copy to .1, truncate in place, the writer goes on."""
    log.append(2)
    shutil.copyfile(log.path, log.path.with_name("events.log.1"))
    with log.path.open("r+") as handle:
        handle.truncate(0)
    log.append(3)


def replaced_by_a_shorter_file(log: Log) -> None:
    """Another inode under the same name, holding only new lines."""
    fresh = log.path.with_name("export.tmp")
    fresh.write_text(log.new_lines(3))
    os.replace(fresh, log.path)


def replaced_by_a_longer_file(log: Log) -> None:
    """A full re-export under the same name: every old line again, then new ones."""
    fresh = log.path.with_name("export.tmp")
    fresh.write_text(log.path.read_text() + log.new_lines(5))
    os.replace(fresh, log.path)


CHANGES = [rotated, copytruncated, replaced_by_a_shorter_file, replaced_by_a_longer_file]


def change_after_first_batch(
    batches: Iterator[Batch], change: Callable[[], None]
) -> Iterator[Batch]:
    """The connector's batches, with `change` made once the first one has been stored."""
    yield next(batches)
    change()
    yield from batches


def outcome(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            "messages": sorted(r.external_id for r in conn.execute(select(MESSAGES))),
            "calls": sorted(
                (r.external_id, r.outcome, r.wait_seconds) for r in conn.execute(select(CALLS))
            ),
            "inquiries": sorted(
                (r.conversation, r.opened_by, r.status, r.response_seconds)
                for r in conn.execute(select(INQUIRIES))
            ),
            "tallies": sorted(
                (r.metric, r.labels, r.le, r.value) for r in conn.execute(select(TALLIES))
            ),
        }


def store_in(folder: Path, source: dict[str, Any]) -> tuple[Settings, Engine]:
    settings = settings_from_mapping({"timezone": "Europe/Berlin", "sources": [source]}, folder)
    engine = make_engine(f"sqlite:///{folder / 'monitor.db'}", folder)
    prepare(engine)
    return settings, engine


def clean_poll(folder: Path, source: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    """What one poll of every line, in one unchanged file, stores."""
    folder.mkdir()
    (folder / "events.log").write_text("".join(f"{line}\n" for line in lines))
    settings, engine = store_in(folder, source)
    assert poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW).ok
    return outcome(engine)


def change_mid_poll(
    tmp_path: Path, kind: str, change: Callable[[Log], None], *, first: int, batch: int
) -> PollResult:
    """Write `first` lines, poll them `batch` lines a batch with `change` made after the first
    batch, then poll twice more as usual; check the store against one clean poll of every line
    written. Returns the changed poll's result."""
    source, line, connector_class = KINDS[kind]
    folder = tmp_path / "live"
    folder.mkdir()
    log = Log(folder, line)
    log.append(first)
    settings, engine = store_in(folder, source)
    (configured,) = settings.sources
    context = ConnectorContext(
        agents=settings.file.agents, base_dir=settings.base_dir, timezone=settings.timezone
    )
    connector = connector_class(configured, context, max_lines=batch)  # type: ignore[call-arg]

    changed = PollResult(configured.name)
    batches = change_after_first_batch(connector.fetch(None, NOW), lambda: change(log))
    _store_all(engine, measuring(settings, configured), batches, changed, None, save_cursor=True)
    assert changed.batches >= 2

    second = poll_source(engine, settings, configured, now=NOW, clock=lambda: NOW)
    assert second.ok and second.rejected == 0, second.summary()
    third = poll_source(engine, settings, configured, now=NOW, clock=lambda: NOW)
    assert (third.messages, third.calls) == (0, 0), "a re-read stored something twice"

    assert outcome(engine) == clean_poll(tmp_path / "clean", source, log.written)
    stored = outcome(engine)
    assert len(stored["messages"]) + len(stored["calls"]) == len(log.written)
    return changed


@pytest.mark.parametrize("change", CHANGES, ids=lambda change: change.__name__)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_file_changed_between_two_batches_of_a_poll_loses_and_doubles_nothing(
    tmp_path: Path, kind: str, change: Callable[[Log], None]
) -> None:
    changed = change_mid_poll(tmp_path, kind, change, first=FIRST, batch=BATCH)
    assert changed.rejected == 0


def copytruncated_and_refilled(log: Log) -> None:
    """copytruncate, then the writer writes more than had been read before the poll goes on."""
    shutil.copyfile(log.path, log.path.with_name("events.log.1"))
    with log.path.open("r+") as handle:
        handle.truncate(0)
    log.append(5)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_small_file_truncated_and_refilled_mid_poll_is_read_again_from_its_start(
    tmp_path: Path, kind: str
) -> None:
    # Under 256 bytes had been read when the file changed: the head fingerprint was still
    # growing, and once took the new content's bytes, so the next poll resumed mid-file.
    # The rest of the changed poll reads new bytes from the old offset: a cut line may be
    # rejected there, and its complete lines are stored again (unchanged) on the re-read.
    change_mid_poll(tmp_path, kind, copytruncated_and_refilled, first=3, batch=1)
