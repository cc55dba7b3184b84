"""The IMAP server misbehaving under a poll: a UIDVALIDITY change, the connection
dropped by the server between two batches, the server stopped mid-poll and down for a while.
Each recovers on the next poll with nothing lost and nothing counted twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from connectors.base import Batch, ConnectorError
from monitor.config import Settings
from monitor.store.ingest import PollResult, _store_all, build_connector, measuring, poll_source
from tests.connectors.store import inquiries, messages, open_store, poll
from tests.mailboxes import AGENTS, Mailbox, message

NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def questions(first: int, count: int) -> list[tuple[bytes, datetime]]:
    return [
        (message(f"q{n}@customer.test", subject=f"Order {n}"), START + timedelta(minutes=n))
        for n in range(first, first + count)
    ]


def first_poll_interrupted(
    tmp_path: Path, mailbox: Mailbox, fault: Callable[[], None]
) -> tuple[Settings, Engine, PollResult, ConnectorError]:
    """Seven questions polled two a batch, `fault` striking the server once the first batch is
    stored: the store, the poll's result and the error it failed with."""
    mailbox.append("INBOX", questions(0, 7))
    settings, engine = open_store(
        tmp_path, [mailbox.source(batch_size=2, sent_folder=None)], agents=AGENTS
    )
    source = settings.sources[0]
    batches = build_connector(settings, source).fetch(None, NOW)

    def faulted_after_the_first_batch() -> Iterator[Batch]:
        for batch in batches:
            yield batch
            fault()

    result = PollResult(source.name)
    with pytest.raises(ConnectorError) as failure:
        _store_all(
            engine,
            measuring(settings, source),
            faulted_after_the_first_batch(),
            result,
            None,
            save_cursor=True,
        )
    return settings, engine, result, failure.value


def assert_the_first_batches_are_stored(engine: Engine) -> int:
    """After `first_poll_interrupted`: the first batch is stored, or the first two (the FETCH
    of the second is sent before the first is parsed, and its answer may have arrived before
    the fault struck); the number of messages stored."""
    stored = sorted(messages(engine))
    assert len(stored) in (2, 4)
    assert stored == sorted(f"<q{n}@customer.test>" for n in range(len(stored)))
    return len(stored)


def assert_the_next_poll_reads_the_rest(engine: Engine, settings: Settings, stored: int) -> None:
    """After `first_poll_interrupted` stored `stored` messages: nothing lost, nothing stored
    twice."""
    again = poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
    assert again.ok and again.messages == 7 - stored
    assert sorted(messages(engine)) == sorted(f"<q{n}@customer.test>" for n in range(7))
    assert len(inquiries(engine)) == 7


def test_a_new_uidvalidity_resyncs_the_folder_without_duplicates(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    mailbox.append("INBOX", questions(0, 5))
    settings, engine = open_store(tmp_path, [mailbox.source()], agents=AGENTS)
    assert poll(engine, settings, "inbox", NOW).messages == 5
    # The newest two are expunged and the server renumbers the folder: the three left become
    # UIDs 1-3 under a new UIDVALIDITY, and three new messages get UIDs 4-6, below the stored
    # last UID (5). Trusting the old cursor would miss two of them.
    client = mailbox.server.connect(mailbox.user)
    client.select_folder("INBOX")
    client.delete_messages([4, 5])
    client.expunge()
    client.logout()
    mailbox.server.forget_uids(mailbox.user)
    mailbox.append("INBOX", questions(5, 3))
    client = mailbox.server.connect(mailbox.user)
    assert client.select_folder("INBOX", readonly=True)[b"UIDNEXT"] == 7
    client.logout()

    result = poll(engine, settings, "inbox", NOW)
    assert (result.messages, result.rejected) == (3, 0)
    assert sorted(messages(engine)) == sorted(f"<q{n}@customer.test>" for n in range(8))
    assert len(inquiries(engine)) == 8
    assert poll(engine, settings, "inbox", NOW).messages == 0


def test_a_connection_dropped_between_batches_loses_nothing(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    def the_server_closes_the_session() -> None:
        mailbox.server.kick(mailbox.user)

    settings, engine, result, error = first_poll_interrupted(
        tmp_path, mailbox, the_server_closes_the_session
    )
    assert "connection lost" in str(error) and not error.permanent
    assert "\n" not in str(error)
    stored = assert_the_first_batches_are_stored(engine)
    assert (result.batches, result.messages) == (stored // 2, stored)

    assert_the_next_poll_reads_the_rest(engine, settings, stored)


def test_a_server_stopped_mid_poll_fails_in_one_line_and_the_poll_after_its_return_completes(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    try:
        settings, engine, _, error = first_poll_interrupted(tmp_path, mailbox, mailbox.server.halt)
        assert not error.permanent and "\n" not in str(error)
        source = settings.sources[0]
        # While it is down, a poll fails with one transient line and stores nothing.
        down = poll_source(engine, settings, source, now=NOW, clock=lambda: NOW)
        assert down.error is not None and not down.permanent and "\n" not in down.error
        assert down.error.startswith(f"127.0.0.1:{mailbox.server.port}: ")
    finally:
        mailbox.server.start_again()
    assert_the_next_poll_reads_the_rest(
        engine, settings, assert_the_first_batches_are_stored(engine)
    )


def test_a_missing_folder_fails_the_poll_with_one_permanent_line(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    mailbox.append("INBOX", questions(0, 3))
    settings, engine = open_store(
        tmp_path, [mailbox.source(folders=["INBOX", "Missing"])], agents=AGENTS
    )
    result = poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
    assert result.error is not None and result.permanent and result.messages == 0
    assert result.error.startswith(f"127.0.0.1:{mailbox.server.port}: cannot open folder")
    assert "'Missing'" in result.error and "\n" not in result.error
