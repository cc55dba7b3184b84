"""The open backlog (monitor.store.backlog) on a real database: what is open now is counted by
aggregate and index, so a scrape or a digest costs the same with 30 open inquiries as with
3,000, and says the same numbers a reading of every open row would say."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, inspect, select, text

from monitor.config import Settings
from monitor.publish.exporter import SupportCollector
from monitor.store.backlog import oldest_open, open_counts
from monitor.store.database import prepare, set_meta
from monitor.store.figures import all_figures
from monitor.store.ingest import poll_source
from monitor.store.tables import INQUIRIES, META, SCHEMA_VERSION, TALLIES
from monitor.store.tallies import OPEN_NOW, layout_for, recount
from tests.store.chat_site import chat_site

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=2)


def line(conversation: str, at: datetime, role: str) -> str:
    record = {"conversation": conversation, "at": at.isoformat(), "author_role": role}
    return json.dumps(record) + "\n"


def poll(engine: Engine, settings: Settings, now: datetime = NOW) -> None:
    assert poll_source(engine, settings, settings.sources[0], now=now, clock=lambda: now).ok


def ask(path: Path, names: range, start: datetime, *, answered: bool = False) -> None:
    """One customer question per name, a second apart from `start` (answered a minute later)."""
    with path.open("a") as handle:
        for i, n in enumerate(names):
            at = start + timedelta(seconds=i)
            handle.write(line(f"c{n}", at, "customer"))
            if answered:
                handle.write(line(f"c{n}", at + timedelta(minutes=1), "agent"))


def test_open_counts_say_what_every_open_row_says(tmp_path: Path, database_url: str) -> None:
    """Three questions long past their 2-minute target, one asked a minute ago, two answered:
    4 open, 3 breached, the oldest opened at T0, the next to breach in a minute; the 2 oldest
    are c0 and c1."""
    path, settings, engine = chat_site(tmp_path, database_url)
    ask(path, range(3), T0)
    ask(path, range(10, 12), T0, answered=True)
    ask(path, range(20, 21), NOW - timedelta(minutes=1))
    poll(engine, settings)
    with engine.connect() as conn:
        counts = open_counts(conn, NOW)
        oldest = oldest_open(conn, counts, 2)
    (found,) = counts.values()
    assert (found.source, found.channel, found.count, found.breached) == ("chat", "chat", 4, 3)
    assert found.oldest_opened_at == T0
    assert found.next_due_at == NOW + timedelta(minutes=1)
    assert found.oldest_age_seconds(NOW) == 7200
    assert [r["conversation"] for r in oldest] == ["c0", "c1"]
    # Answered now: the counts follow in the same transaction, and nothing is left at zero.
    with path.open("a") as handle:
        for n in (0, 1, 2, 20):
            handle.write(line(f"c{n}", NOW, "agent"))
    poll(engine, settings, NOW + timedelta(seconds=1))
    with engine.connect() as conn:
        assert open_counts(conn, NOW) == {}
        left = conn.execute(select(TALLIES).where(TALLIES.c.metric == OPEN_NOW)).all()
    assert left == []


@contextmanager
def vm_steps(engine: Engine) -> Iterator[Callable[[], int]]:
    """How many steps SQLite's virtual machine takes for the statements run meanwhile (in
    thousands): what a query reads, whatever the machine's load."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    def watch(conn: Any, *_args: Any) -> None:
        conn.connection.dbapi_connection.set_progress_handler(tick, 1000)

    event.listen(engine, "before_cursor_execute", watch)
    try:
        yield lambda: steps[0]
    finally:
        event.remove(engine, "before_cursor_execute", watch)


def test_a_scrape_and_the_figures_cost_the_same_with_a_hundred_times_the_backlog(
    tmp_path: Path, sqlite_url: str
) -> None:
    """30 open inquiries, then 3,000 (and as many answered): a scrape and the figures with the
    10 oldest read about as much (reading every open row would read 100 times more)."""
    path, settings, engine = chat_site(tmp_path, sqlite_url)
    ask(path, range(30), T0)
    poll(engine, settings, T0 + timedelta(hours=1))
    collector = SupportCollector(engine, settings, lambda: NOW)

    def cost() -> tuple[int, int]:
        list(collector.collect_now())  # the first after a poll gives late verdicts: not this
        with vm_steps(engine) as scrape:
            list(collector.collect_now())
        with vm_steps(engine) as figures:
            all_figures(engine, settings, NOW - timedelta(hours=1), NOW, NOW, detail=10)
        return scrape(), figures()

    small = cost()
    ask(path, range(10_000, 13_000), T0 + timedelta(minutes=1))
    ask(path, range(20_000, 23_000), T0 + timedelta(minutes=1), answered=True)
    poll(engine, settings, T0 + timedelta(hours=1, minutes=30))
    large = cost()
    assert large[0] <= small[0] * 1.5 + 20, (small, large)
    assert large[1] <= small[1] * 1.5 + 20, (small, large)


def test_a_version_7_database_gets_the_backlog_indexes_and_its_open_counts(
    tmp_path: Path, database_url: str
) -> None:
    """A v7 database (every inquiry indexed by status, no open counts among the tallies): the
    upgrade makes the indexes of open inquiries and of firing alerts, and counts what is open,
    as a recount would."""
    path, settings, engine = chat_site(tmp_path, database_url)
    ask(path, range(5), T0)
    ask(path, range(10, 13), T0, answered=True)
    poll(engine, settings)
    with engine.begin() as conn:  # as version 7 left it
        conn.execute(text("DELETE FROM tally WHERE metric = :m"), {"m": OPEN_NOW})
        for name in ("ix_inquiry_open", "ix_inquiry_open_due", "ix_alert_firing"):
            conn.execute(text(f"DROP INDEX {name}"))
        conn.execute(text("CREATE INDEX ix_inquiry_status ON inquiry (status, source)"))
        set_meta(conn, "schema_version", "7")
    prepare(engine)
    with engine.connect() as conn:
        version = conn.execute(select(META.c.value).where(META.c.key == "schema_version"))
        assert version.scalar_one() == str(SCHEMA_VERSION)
        names = {i["name"] for i in inspect(conn).get_indexes("inquiry")}
        alerts = {i["name"] for i in inspect(conn).get_indexes("alert_state")}
        before = sorted(tuple(r)[1:] for r in conn.execute(select(TALLIES)))
        assert open_counts(conn, NOW)[("chat", "chat")].count == 5
    assert {"ix_inquiry_open", "ix_inquiry_open_due"} <= names
    assert "ix_inquiry_status" not in names and "ix_alert_firing" in alerts
    with engine.begin() as conn:
        recount(conn, settings, layout_for(settings))
    with engine.connect() as conn:
        assert sorted(tuple(r)[1:] for r in conn.execute(select(TALLIES))) == before
        open_rows = conn.execute(select(INQUIRIES).where(INQUIRIES.c.status == "open")).all()
    assert len(open_rows) == 5
