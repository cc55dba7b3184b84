"""Threading at ingest (monitor.store.threads) on SQLite and PostgreSQL: the union of every link,
the same conversations whatever order and polls the messages arrive in, merges re-measured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import import_paths, poll_source
from monitor.store.retention import purge
from monitor.store.tables import INQUIRIES, MESSAGES, TALLIES, THREAD_LINKS
from monitor.store.tallies import layout_for, recount
from tests.mailboxes import AGENT, AGENTS, CUSTOMER, message, write_mbox

NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# A thread whose links only close once every message is in: C answers B without References,
# B answers A; D is a thread-less mail from the customer with A's subject the next day.
THREAD = {
    "A": (message("a@customer.test", subject="Broken zip"), at(0)),
    "B": (
        message(
            "b@example.com",
            sender=AGENT,
            to=[CUSTOMER],
            subject="Re: Broken zip",
            date=at(60),
            in_reply_to="a@customer.test",
            references=["a@customer.test"],
        ),
        at(61),
    ),
    "C": (
        message("c@customer.test", subject="Re: Broken zip", in_reply_to="b@example.com"),
        at(90),
    ),
    "D": (message("d@customer.test", subject="RE: broken ZIP"), at(24 * 60)),
}


def store(tmp_path: Path, database_url: str, **extra: Any) -> tuple[Path, Settings, Engine]:
    path = tmp_path / "inbox.mbox"
    path.touch()
    source = {"name": "mail", "kind": "mbox", "path": "inbox.mbox"}
    settings = settings_from_mapping(
        {"database": database_url, "agents": AGENTS, "sources": [source], **extra}, tmp_path
    )
    engine = make_engine(database_url, tmp_path)
    prepare(engine)
    return path, settings, engine


def deliver(path: Path, settings: Settings, engine: Engine, names: str) -> None:
    write_mbox(path, [THREAD[n] for n in names], append=True)
    result = poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
    assert result.ok, result.error


def measured(engine: Engine) -> set[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(select(INQUIRIES))
        return {(r.kind, r.status, r.opened_by, r.response_seconds) for r in rows}


def conversations(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.external_id: r.conversation for r in conn.execute(select(MESSAGES))}


def tallies(engine: Engine) -> dict[tuple[str, str, str], float]:
    with engine.connect() as conn:
        return {
            (r.metric, r.labels, r.le): r.value for r in conn.execute(select(TALLIES)) if r.value
        }


EXPECTED = {
    ("first", "answered", "<a@customer.test>", 3600.0),
    ("followup", "open", "<c@customer.test>", None),
}


def test_a_message_linking_two_threads_merges_them_and_remeasures(
    tmp_path: Path, database_url: str
) -> None:
    path, settings, engine = store(tmp_path, database_url)
    deliver(path, settings, engine, "AC")  # C refers to B, not yet seen: two threads
    assert measured(engine) == {
        ("first", "open", "<a@customer.test>", None),
        ("first", "open", "<c@customer.test>", None),
    }
    deliver(path, settings, engine, "B")
    assert measured(engine) == EXPECTED
    assert len(set(conversations(engine).values())) == 1
    incremental = tallies(engine)
    with engine.begin() as conn:
        recount(conn, settings, layout_for(settings))
    assert tallies(engine) == pytest.approx(incremental)


@pytest.mark.parametrize("order", ["ABCD", "DCBA", "CADB", "BDAC"])
def test_the_conversations_are_the_same_whatever_order_and_polls_bring_the_messages(
    tmp_path: Path, database_url: str, order: str
) -> None:
    path, settings, engine = store(tmp_path, database_url)
    for name in order:
        deliver(path, settings, engine, name)
    assert len(set(conversations(engine).values())) == 1  # D joined by subject and customer
    assert measured(engine) == EXPECTED


def test_a_thread_less_message_outside_the_window_starts_a_new_conversation(
    tmp_path: Path, database_url: str
) -> None:
    path, settings, engine = store(tmp_path, database_url)
    deliver(path, settings, engine, "AB")
    later = message("e@customer.test", subject="Re: Broken zip")
    write_mbox(path, [(later, at(9 * 24 * 60))], append=True)
    then = at(9 * 24 * 60 + 60)
    poll_source(engine, settings, settings.sources[0], now=then, clock=lambda: then)
    found = conversations(engine)
    assert found["<e@customer.test>"] != found["<a@customer.test>"]


def test_a_batch_read_again_writes_no_links(tmp_path: Path, database_url: str) -> None:
    path, settings, engine = store(tmp_path, database_url)
    deliver(path, settings, engine, "ABCD")
    with engine.connect() as conn:
        before = list(conn.execute(select(THREAD_LINKS).order_by(THREAD_LINKS.c.id)))
    import_paths(engine, settings, settings.sources[0], [path], now=NOW)
    with engine.connect() as conn:
        after = list(conn.execute(select(THREAD_LINKS).order_by(THREAD_LINKS.c.id)))
        assert conn.execute(select(func.count()).select_from(MESSAGES)).scalar_one() == 4
    assert after == before


@pytest.mark.parametrize("polls", ["ABCD", "AB|CD", "A|BCD", "ABC|D"])
def test_every_split_into_polls_gives_the_same_inquiries(
    tmp_path: Path, database_url: str, polls: str
) -> None:
    path, settings, engine = store(tmp_path, database_url)
    for names in polls.split("|"):
        deliver(path, settings, engine, names)
    assert measured(engine) == EXPECTED  # D, later, does not move the open follow-up's start


def links(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return sorted((r.key, r.conversation) for r in conn.execute(select(THREAD_LINKS)))


def test_a_question_and_its_reply_keep_one_link_their_hint(
    tmp_path: Path, database_url: str
) -> None:
    # A stored message is the link of its own id: only the hint (customer and subject, with
    # its span) is a row, not the two Message-IDs as well.
    path, settings, engine = store(tmp_path, database_url)
    deliver(path, settings, engine, "AB")
    assert [key[0] for key, _ in links(engine)] == ["~"]
    assert len(set(conversations(engine).values())) == 1
    assert measured(engine) == {("first", "answered", "<a@customer.test>", 3600.0)}


def test_a_reference_to_a_message_not_yet_read_is_a_link_until_the_message_comes(
    tmp_path: Path, database_url: str
) -> None:
    path, settings, engine = store(tmp_path, database_url)
    deliver(path, settings, engine, "C")  # C answers B, unseen: B's id is a link
    assert ("<b@example.com>", "<b@example.com>") in links(engine)
    deliver(path, settings, engine, "BA")
    assert len(set(conversations(engine).values())) == 1
    assert measured(engine) == EXPECTED


def test_a_reply_naming_a_message_retention_cut_joins_the_conversation_that_lives_on(
    tmp_path: Path, database_url: str
) -> None:
    # A and B's reply are past the horizon; C, the customer's follow-up to B, is kept, so the
    # conversation lives on without B. An agent's reply naming B alone (In-Reply-To) still
    # joins it and answers C: retention leaves B's link where B's row was.
    path, settings, engine = store(tmp_path, database_url, retention="30d")
    old = NOW - timedelta(days=40)
    mails = [
        (message("a@customer.test", subject="Broken zip"), old),
        (
            message(
                "b@example.com",
                sender=AGENT,
                to=[CUSTOMER],
                subject="Re: Broken zip",
                date=old + timedelta(hours=1),
                in_reply_to="a@customer.test",
            ),
            old + timedelta(hours=1),
        ),
    ]
    write_mbox(path, mails, append=True)
    then = old + timedelta(days=1)
    assert poll_source(engine, settings, settings.sources[0], now=then, clock=lambda: then).ok
    follow_up = message("c@customer.test", subject="Re: Broken zip", in_reply_to="b@example.com")
    write_mbox(path, [(follow_up, NOW - timedelta(days=2))], append=True)
    deliver(path, settings, engine, "")
    assert purge(engine, settings, NOW)["message"] == 2
    reply = message(
        "f@example.com",
        sender=AGENT,
        to=[CUSTOMER],
        subject="Re: Broken zip",
        date=NOW - timedelta(hours=1),
        in_reply_to="b@example.com",
    )
    write_mbox(path, [(reply, NOW - timedelta(hours=1))], append=True)
    deliver(path, settings, engine, "")
    found = conversations(engine)
    assert set(found) == {"<c@customer.test>", "<f@example.com>", "retention:<a@customer.test>"}
    assert len(set(found.values())) == 1
    assert measured(engine) == {("followup", "answered", "<c@customer.test>", 47 * 3600.0)}
