"""An import commits the batches it stores a second at a time, not one by one: the same rows,
fewer commits, and what was stored before the source failed is kept (monitor.store.ingest)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event

from connectors.base import Batch, ConnectorError
from monitor.measure.events import CallEvent, CallOutcome, MessageEvent, Side
from monitor.store import ingest
from monitor.store.batches import measuring
from monitor.store.ingest import PollResult, _store_all, import_paths
from tests.store.test_reader_process import configure, stored

NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def batches(count: int, then: BaseException | None = None) -> Iterator[Batch]:
    """`count` batches of a missed call and its callback request, then `then` raised."""
    for n in range(count):
        at = T0 + timedelta(minutes=n)
        number = f"+4420794600{n:02d}"
        call = CallEvent(f"{n}", "support", at, CallOutcome.ABANDONED, left_at=at, caller=number)
        request = MessageEvent(f"m{n}", f"tel:0794600{n:02d}", at, Side.CUSTOMER, refers=(f"{n}",))
        yield Batch([call, request], {"n": n}, [], {}, {})
    if then is not None:
        raise then


def commits(engine: Engine) -> list[int]:
    """A list that counts the engine's commits from now on."""
    counted: list[int] = []
    event.listen(engine, "commit", lambda _conn: counted.append(1))
    return counted


def test_batches_stored_together_are_what_batches_stored_one_by_one_are(tmp_path: Path) -> None:
    results = {}
    for name, seconds in (("one_by_one", 0.0), ("together", 3600.0)):
        settings, engine = configure(tmp_path, name)
        counted = commits(engine)
        result = PollResult("queue")
        ctx = measuring(settings, settings.sources[0])
        _store_all(engine, ctx, batches(5), result, None, save_cursor=False, commit_every=seconds)
        results[name] = (result.summary(), stored(engine), len(counted))
    assert results["together"][:2] == results["one_by_one"][:2]
    assert results["one_by_one"][2] == 5 and results["together"][2] == 1
    assert len(results["together"][1]["inquiry"]) == 5


def test_an_import_commits_batches_a_second_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fifty calls, one batch each, read inline: one commit, however slow the machine is.
    lines = []
    for n in range(50):
        at = int((T0 + timedelta(minutes=n)).timestamp())
        lines.append(f"{at}|{n}.1|support|NONE|ENTERQUEUE||+4420794600{n:02d}|1\n")
        lines.append(f"{at + 60}|{n}.1|support|NONE|ABANDON|1|1|60\n")
    (tmp_path / "queue_log").write_text("".join(lines))
    settings, engine = configure(tmp_path, "import")
    monkeypatch.setattr(ingest, "IMPORT_COMMIT_SECONDS", 3600.0)
    monkeypatch.setattr("connectors.phone.asterisk_queue_log.IMPORT_BATCH", 2)
    counted = commits(engine)
    result = import_paths(
        engine, settings, settings.sources[0], [tmp_path / "queue_log"], now=NOW, in_child=False
    )
    assert result.ok and result.calls == 50 and result.batches > 10, result.summary()
    assert len(counted) == 1
    assert len(stored(engine)["inquiry"]) == 50


def test_what_was_stored_before_the_source_failed_is_committed(tmp_path: Path) -> None:
    settings, engine = configure(tmp_path, "failed")
    result = PollResult("queue")
    failure = ConnectorError("the file went away", permanent=False)
    ctx = measuring(settings, settings.sources[0])
    with pytest.raises(ConnectorError):
        _store_all(
            engine,
            ctx,
            batches(3, then=failure),
            result,
            None,
            save_cursor=False,
            commit_every=3600,
        )
    rows = stored(engine)
    assert len(rows["call"]) == 3 and len(rows["message"]) == 3 and len(rows["inquiry"]) == 3
