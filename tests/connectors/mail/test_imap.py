"""The `imap` connector against a real Dovecot (TLS with a throwaway CA), one fresh mailbox per
test, seeded over IMAP APPEND with explicit INTERNALDATEs: what is measured, and how."""

from __future__ import annotations

import imaplib
import json
import logging
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from connectors.base import ConnectorError
from connectors.mail import imap_fetch
from connectors.mail.imap import ImapConnector
from connectors.mail.imap_session import ImapSettings, tls_context
from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.store.ingest import build_connector, poll_source, reconcile
from monitor.store.tables import STATES
from tests.connectors.store import inquiries, messages, open_store, poll, tally
from tests.mailboxes import AGENT, AGENTS, CUSTOMER, Mailbox, message
from tests.servers import free_port

NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
FRI = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # a Friday


def at(minutes: float, start: datetime = FRI) -> datetime:
    return start + timedelta(minutes=minutes)


def question(n: int, minutes: float, **extra: Any) -> tuple[bytes, datetime]:
    """A customer's new question, arriving (INTERNALDATE) `minutes` after Friday 09:00; its
    Date header says a minute earlier (sender clocks are not trusted for arrivals)."""
    subject = extra.pop("subject", f"Order {n}")
    return message(f"q{n}@customer.test", subject=subject, date=at(minutes - 1), **extra), at(
        minutes
    )


def reply(n: int, minutes: float, **extra: Any) -> tuple[bytes, datetime]:
    """Our reply to question n, dated `minutes` after Friday 09:00 and filed in Sent 3 minutes
    later (the Date header is what counts for mail we sent)."""
    parent = extra.pop("parent", f"q{n}@customer.test")
    extra.setdefault("in_reply_to", parent)
    extra.setdefault("sender", AGENT)
    raw = message(
        f"r{n}-{minutes:g}@example.com",
        to=[CUSTOMER],
        subject=f"Re: Order {n}",
        date=at(minutes),
        **extra,
    )
    return raw, at(minutes + 3)


def setup(tmp_path: Path, mailbox: Mailbox, **source: Any) -> tuple[Settings, Engine]:
    top = source.pop("top", {})
    return open_store(tmp_path, [mailbox.source(**source)], agents=AGENTS, **top)


def by_opener(engine: Engine) -> dict[str, Any]:
    return {i.opened_by: i for i in inquiries(engine)}


def test_a_reply_found_only_in_sent_closes_the_inquiry(tmp_path: Path, mailbox: Mailbox) -> None:
    mailbox.append("INBOX", [question(1, 0)])
    mailbox.append("Sent", [reply(1, 90)])
    settings, engine = setup(tmp_path, mailbox)
    result = poll(engine, settings, "inbox", NOW)
    assert (result.messages, result.rejected) == (2, 0)
    (inquiry,) = inquiries(engine)
    assert (inquiry.status, inquiry.response_seconds) == ("answered", 90 * 60)
    assert inquiry.customer == CUSTOMER and inquiry.subject == "Order 1"
    stored = messages(engine)
    assert stored["<r1-90@example.com>"].side == "agent"
    assert stored["<q1@customer.test>"].at == at(0)  # INTERNALDATE, not the Date header


def test_a_reply_linked_only_by_references_closes_the_inquiry(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    mailbox.append("INBOX", [question(1, 0)])
    # A client that writes References but no In-Reply-To, and changes the subject.
    raw, filed = reply(1, 45, in_reply_to=None, references=["q1@customer.test"])
    mailbox.append("Sent", [(raw.replace(b"Re: Order 1", b"Your parcel"), filed)])
    settings, engine = setup(tmp_path, mailbox)
    poll(engine, settings, "inbox", NOW)
    (inquiry,) = inquiries(engine)
    assert (inquiry.status, inquiry.response_seconds) == ("answered", 45 * 60)


def test_a_reply_dated_before_its_question_answers_it_whichever_poll_reads_it_first(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    """The agent's clock is 4 minutes slow: our reply's Date is before the question's arrival.
    Its In-Reply-To names the question, so it answers it (0 s, clamped), read in either order
    and measured again after a change of targets."""
    mailbox.append("Sent", [reply(1, -4)])  # dated 08:56, filed at 08:59
    settings, engine = setup(tmp_path, mailbox)
    poll(engine, settings, "inbox", NOW)
    assert inquiries(engine) == []  # the reply alone: outreach, nothing to answer yet
    mailbox.append("INBOX", [question(1, 0)])  # arrived at 09:00
    poll(engine, settings, "inbox", NOW)
    (inquiry,) = inquiries(engine)
    assert (inquiry.status, inquiry.response_seconds, inquiry.clamped) == ("answered", 0, True)
    assert inquiry.breached is False
    assert messages(engine)["<r1--4@example.com>"].at == at(-4)  # stored as dated
    assert tally(engine, "support_responses_clamped_total", channel="email") == 1

    stricter = setup(tmp_path, mailbox, top={"targets": {"reply_within": "1h"}})[0]
    assert reconcile(engine, stricter)  # the measurements are redone from the stored rows
    (again,) = inquiries(engine)
    assert (again.status, again.response_seconds, again.clamped) == ("answered", 0, True)
    assert tally(engine, "support_responses_clamped_total", channel="email") == 1


def test_the_agents_out_of_office_does_not_close_an_inquiry(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    mailbox.append("INBOX", [question(1, 0)])
    ooo = reply(1, 1, headers={"Auto-Submitted": "auto-replied"})
    mailbox.append("Sent", [ooo])
    settings, engine = setup(tmp_path, mailbox)
    poll(engine, settings, "inbox", NOW)
    (inquiry,) = inquiries(engine)
    assert inquiry.status == "open"
    mailbox.append("Sent", [reply(1, 200)])
    poll(engine, settings, "inbox", NOW)
    (inquiry,) = inquiries(engine)
    assert (inquiry.status, inquiry.response_seconds) == ("answered", 200 * 60)


def test_a_customers_auto_reply_does_not_open_an_inquiry(tmp_path: Path, mailbox: Mailbox) -> None:
    outreach = message(
        "news@example.com", sender=AGENT, to=[CUSTOMER], subject="Your order", date=at(0)
    )
    mailbox.append("Sent", [(outreach, at(1))])
    vacation = message(
        "ooo@customer.test",
        subject="Automatic reply: Your order",
        date=at(2),
        in_reply_to="news@example.com",
        headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"},
    )
    bulk = message("b@customer.test", subject="Deals", headers={"Precedence": "bulk"})
    listed = message("l@customer.test", subject="Digest", headers={"List-Id": "<x.lists.test>"})
    bounce = message(
        "dsn@mx.test",
        sender="MAILER-DAEMON@mx.test",
        subject="Undelivered Mail Returned to Sender",
        headers={"Return-Path": "<>"},
    )
    mailbox.append("INBOX", [(vacation, at(2)), (bulk, at(3)), (listed, at(4)), (bounce, at(5))])
    settings, engine = setup(tmp_path, mailbox)
    assert poll(engine, settings, "inbox", NOW).messages == 5
    assert inquiries(engine) == []
    stored = messages(engine)
    assert [m.automatic for m in stored.values()] == [False, True, True, True, True]


def test_a_friday_question_answered_on_monday_counts_only_business_hours(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    friday_4pm = at(7 * 60)  # Friday 16:00 UTC
    monday_10am = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    mailbox.append("INBOX", [question(1, 7 * 60)])
    mailbox.append("Sent", [reply(1, (monday_10am - FRI).total_seconds() / 60)])
    office = {
        "timezone": "UTC",
        "hours": {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    }
    settings, engine = setup(
        tmp_path,
        mailbox,
        calendar="office",
        targets={"reply_clock": "business", "reply_within": "4h"},
        top={"calendars": {"office": office}},
    )
    poll(engine, settings, "inbox", NOW)
    (inquiry,) = inquiries(engine)
    assert inquiry.response_seconds == (monday_10am - friday_4pm).total_seconds()
    assert inquiry.business_seconds == 2 * 3600  # Friday 16-17 and Monday 9-10
    assert not inquiry.breached


def test_the_same_message_in_inbox_and_sent_is_stored_once_as_ours(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    mailbox.append("INBOX", [question(1, 0)])
    # The reply went to the customer with the support mailbox in Cc, so it is in both folders;
    # sent from an address the config does not know as an agent.
    raw, filed = reply(1, 30, sender="temp.helper@freelance.test", headers={"Cc": AGENT})
    mailbox.append("INBOX", [(raw, filed)])
    mailbox.append("Sent", [(raw, filed)])
    settings, engine = setup(tmp_path, mailbox)
    assert poll(engine, settings, "inbox", NOW).messages == 2
    assert messages(engine)["<r1-30@example.com>"].side == "agent"
    (inquiry,) = inquiries(engine)
    assert inquiry.response_seconds == 30 * 60


def test_an_internal_thread_is_never_an_inquiry(tmp_path: Path, mailbox: Mailbox) -> None:
    note = message("n1@example.com", sender="lee@example.com", to=[AGENT], subject="Rota")
    answer = message(
        "n2@example.com", sender=AGENT, to=["lee@example.com"], in_reply_to="n1@example.com"
    )
    mailbox.append("INBOX", [(note, at(0))])
    mailbox.append("Sent", [(answer, at(5))])
    settings, engine = setup(tmp_path, mailbox)
    poll(engine, settings, "inbox", NOW)
    assert inquiries(engine) == []
    assert all(m.internal for m in messages(engine).values())


def test_a_reply_without_references_joins_by_subject_and_customer_within_the_window(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    mailbox.append("INBOX", [question(1, 0), question(2, 0, subject="Returns")])
    # Replies typed as new mails: "Re: Order 1" within the window joins question 1;
    # "Re: Returns" nine days later (window 7 days) does not join question 2.
    joined = reply(1, 60, in_reply_to=None)
    late = message("late@example.com", sender=AGENT, to=[CUSTOMER], subject="RE: Returns")
    mailbox.append("Sent", [joined, (late, at(9 * 24 * 60))])
    settings, engine = setup(tmp_path, mailbox)
    poll(engine, settings, "inbox", NOW)
    found = by_opener(engine)
    assert found["<q1@customer.test>"].response_seconds == 3600
    assert found["<q2@customer.test>"].status == "open"


def test_a_message_without_message_id_gets_a_stable_id(tmp_path: Path, mailbox: Mailbox) -> None:
    raw = message(None, subject="No id", date=at(0))
    mailbox.append("INBOX", [(raw, at(0))])
    settings, engine = setup(tmp_path, mailbox)
    poll(engine, settings, "inbox", NOW)
    (first,) = messages(engine)
    mailbox.append("Sent", [(raw, at(1))])  # the same message filed again elsewhere
    assert poll(engine, settings, "inbox", NOW).messages == 0
    assert first.endswith("@synthetic.invalid>")


def test_a_second_poll_adds_nothing_and_the_mail_stays_unread(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    mailbox.append("INBOX", [question(n, n) for n in range(5)])
    mailbox.append("Sent", [reply(n, 30 + n) for n in range(3)])
    before = mailbox.flags("INBOX")
    settings, engine = setup(tmp_path, mailbox)
    assert poll(engine, settings, "inbox", NOW).messages == 8
    again = poll(engine, settings, "inbox", NOW)
    assert (again.messages, again.rejected, again.batches) == (0, 0, 0)
    assert mailbox.flags("INBOX") == before  # no \Seen set: BODY.PEEK, read-only
    assert all(b"\\Seen" not in flags for flags in before.values())


def test_mail_arriving_later_is_read_by_the_next_poll_in_batches(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    mailbox.append("INBOX", [question(n, n) for n in range(7)])
    settings, engine = setup(tmp_path, mailbox, batch_size=3)
    first = poll(engine, settings, "inbox", NOW)
    assert (first.messages, first.batches) == (7, 3)  # 3 + 3 + 1 (empty Sent's cursor rides along)
    mailbox.append("INBOX", [question(n, n) for n in range(7, 9)])
    mailbox.append("Sent", [reply(8, 20)])
    second = poll(engine, settings, "inbox", NOW)
    assert second.messages == 3
    assert by_opener(engine)["<q8@customer.test>"].status == "answered"


def test_each_fetch_is_sent_before_the_answer_to_the_last_is_parsed(
    tmp_path: Path, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pipelining: the server prepares the next answer while this one is parsed. Folders still
    take turns (a SELECT only with no FETCH in flight), each batch still ends a round, and the
    poll stores what it always stored."""
    mailbox.append("INBOX", [question(n, n) for n in range(5)])
    mailbox.append("Sent", [reply(n, 30 + n) for n in range(3)])
    said: list[str] = []
    command = imaplib.IMAP4._command

    def recorded_command(imap: imaplib.IMAP4, name: str, *args: Any) -> Any:
        if name in ("EXAMINE", "UID"):
            words = [a.decode() if isinstance(a, bytes) else str(a) for a in args[:2]]
            said.append(" ".join([name, *words]))
        return command(imap, name, *args)

    read = imap_fetch.read

    def recorded_read(client: Any, answered: imap_fetch.Answer) -> imap_fetch.Response:
        said.append("parse")
        return read(client, answered)

    monkeypatch.setattr(imaplib.IMAP4, "_command", recorded_command)
    monkeypatch.setattr(imap_fetch, "read", recorded_read)
    settings, engine = setup(tmp_path, mailbox, batch_size=2)
    result = poll(engine, settings, "inbox", NOW)
    assert (result.messages, result.batches) == (8, 3)
    assert by_opener(engine)["<q2@customer.test>"].status == "answered"
    reading = said[said.index("UID FETCH 1,2") - 1 :]  # from the EXAMINE before the first FETCH
    assert reading == [
        'EXAMINE "Sent"',
        "UID FETCH 1,2",
        'EXAMINE "INBOX"',
        "UID FETCH 1,2",
        "parse",  # Sent 1-2, while INBOX 1-2 is prepared
        'EXAMINE "Sent"',
        "UID FETCH 3",
        "parse",  # INBOX 1-2: the first batch
        'EXAMINE "INBOX"',
        "UID FETCH 3,4",
        "parse",
        "UID FETCH 5",
        "parse",  # INBOX 3-4: the second batch
        "parse",  # INBOX 5: the third
    ]


def test_a_poll_read_in_a_child_process_stores_what_one_read_here_stores(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    """The CLI's `poll` reads a source in a forked child while it stores (the second core):
    the same rows, cursor and rejections as reading in this process, and a source's failure
    comes back as the same one line."""
    mailbox.append("INBOX", [question(n, n) for n in range(7)])
    mailbox.append("INBOX", [(message("nofrom@customer.test", sender=""), at(8))])
    mailbox.append("Sent", [reply(n, 30 + n) for n in range(0, 7, 2)])
    stored = {}
    for in_child in (False, True):
        (tmp_path / str(in_child)).mkdir()
        settings, engine = setup(tmp_path / str(in_child), mailbox, batch_size=3)
        source = settings.sources[0]
        result = poll_source(
            engine, settings, source, now=NOW, clock=lambda: NOW, in_child=in_child
        )
        with engine.connect() as conn:
            cursor = conn.execute(select(STATES.c.cursor)).scalar_one()
        rows = {k: tuple(v) for k, v in messages(engine).items()}
        opened = [(i.opened_by, i.status, i.response_seconds) for i in inquiries(engine)]
        found = (result.messages, result.batches, [str(r) for r in result.rejections])
        stored[in_child] = (found, cursor, rows, opened)
    assert stored[True] == stored[False]
    assert stored[True][0][0] == 11 and len(stored[True][3]) == 7

    (tmp_path / "wrong").mkdir()
    settings, engine = setup(tmp_path / "wrong", mailbox, password="wrong")
    failed = poll_source(engine, settings, settings.sources[0], now=NOW, in_child=True)
    assert failed.permanent and failed.error == (
        f"127.0.0.1:{mailbox.server.port}: login failed for {mailbox.user}"
    )


def test_the_cursor_is_asked_for_once_logged_in_and_read_from_as_fetch_reads(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    """`fetch_late` connects and logs in before it asks for the cursor (a poll reads it from
    the store meanwhile); then reads what `fetch` reads from that cursor. A login that fails
    fails before the cursor is asked for."""
    mailbox.append("INBOX", [question(n, n) for n in range(5)])
    mailbox.append("Sent", [reply(n, 30 + n) for n in range(2)])
    settings, engine = setup(tmp_path, mailbox, batch_size=2)
    poll(engine, settings, "inbox", NOW)
    with engine.connect() as conn:
        cursor = json.loads(conn.execute(select(STATES.c.cursor)).scalar_one())
    mailbox.append("INBOX", [question(n, n) for n in range(5, 8)])
    connector = build_connector(settings, settings.sources[0])
    asked: list[str] = []

    def given() -> Any:
        asked.append("cursor")
        return cursor

    late = [(b.cursor, [e.external_id for e in b.events]) for b in connector.fetch_late(given, NOW)]
    now = [(b.cursor, [e.external_id for e in b.events]) for b in connector.fetch(cursor, NOW)]
    assert asked == ["cursor"] and late == now
    assert [ids for _, ids in late] == [
        ["<q5@customer.test>", "<q6@customer.test>"],
        ["<q7@customer.test>"],
    ]

    (tmp_path / "wrong").mkdir()
    settings, _ = setup(tmp_path / "wrong", mailbox, password="wrong")
    wrong = build_connector(settings, settings.sources[0])
    with pytest.raises(ConnectorError, match="login failed"):
        list(wrong.fetch_late(given, NOW))
    assert asked == ["cursor"]


def test_uids_below_the_cursor_are_not_read_again(tmp_path: Path, mailbox: Mailbox) -> None:
    """`UID n:*` matches the highest UID even when it is below n: after the newest messages are
    expunged, UIDNEXT is past the cursor but nothing new exists."""
    mailbox.append("INBOX", [question(n, n) for n in range(3)])
    settings, engine = setup(tmp_path, mailbox)
    poll(engine, settings, "inbox", NOW)
    mailbox.append("INBOX", [question(n, n) for n in range(3, 5)])
    client = mailbox.server.connect(mailbox.user)
    client.select_folder("INBOX")
    client.delete_messages([4, 5])
    client.expunge()
    client.logout()
    again = poll(engine, settings, "inbox", NOW)
    assert (again.messages, again.rejected) == (0, 0)


def test_bad_mail_is_stored_or_rejected_with_its_folder_and_uid(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    no_date = message("nodate@customer.test", subject="No date")
    bad_date = message("baddate@customer.test", date=at(0)).replace(
        b"Date: Fri, 20 Nov 2026 08:59:00 +0000", b"Date: the day after tomorrow"
    )
    undecodable = message("enc@customer.test", subject="=?x-unknown?q?caf=E9?= =?utf-8?b?@@@?=")
    eight_bit = (
        b"From: J\xf6rg <joerg@customer.test>\r\nTo: support@example.com\r\n"
        b"Subject: Gr\xfc\xdfe \xff\xfe\r\nMessage-ID: <8bit@customer.test>\r\n\r\nbody\r\n"
    )
    no_from = message("nofrom@customer.test", sender="")
    mailbox.append(
        "INBOX",
        [(no_date, at(1)), (bad_date, at(2)), (undecodable, at(3)), (eight_bit, at(4))],
    )
    mailbox.append("INBOX", [(no_from, at(5))])
    sent_bad_date = message("sbd@example.com", sender=AGENT, to=[CUSTOMER]).replace(
        b"From:", b"Date: 31 Feb 2026 25:61:00 +0000\nFrom:"
    )
    mailbox.append("Sent", [(sent_bad_date, at(6))])
    settings, engine = setup(tmp_path, mailbox)
    result = poll(engine, settings, "inbox", NOW)
    assert (result.messages, result.rejected) == (5, 1)
    (rejection,) = result.rejections
    assert (rejection.location, rejection.reason) == ("INBOX uid 5", "no From header")
    stored = messages(engine)
    assert stored["<nodate@customer.test>"].at == at(1)
    assert stored["<baddate@customer.test>"].at == at(2)
    assert stored["<sbd@example.com>"].at == at(6)  # a sent message falls back to INTERNALDATE
    assert stored["<8bit@customer.test>"].customer == "joerg@customer.test"
    assert "Grüße" in stored["<8bit@customer.test>"].subject
    assert stored["<enc@customer.test>"].subject
    with engine.connect() as conn:
        assert conn.execute(select(STATES.c.records_rejected_total)).scalar_one() == 1


def test_a_gmail_fetch_response_links_by_thread_id_and_the_sent_label(mailbox: Mailbox) -> None:
    """Gmail: the thread id links messages, and in All Mail the \\Sent label makes them ours.
    (Dovecot has no X-GM-EXT-1, so this reads a Gmail-shaped FETCH response.)"""
    config = settings_from_mapping(
        {"agents": AGENTS, "sources": [mailbox.source(all_mail=True)]}, Path(".")
    )
    connector = build_connector(config, config.sources[0])
    assert isinstance(connector, ImapConnector)
    key = b"BODY[HEADER.FIELDS (MESSAGE-ID FROM)]"
    response = {
        7: {
            key: message("g1@customer.test", date=at(0)),
            b"INTERNALDATE": at(0),
            b"X-GM-THRID": 1761234567890,
            b"X-GM-LABELS": (b"\\Inbox",),
        },
        8: {
            key: message("g2@example.com", sender="helper@gmail.test", to=[CUSTOMER]),
            b"INTERNALDATE": at(30),
            b"X-GM-THRID": 1761234567890,
            b"X-GM-LABELS": (b"\\Sent",),
        },
        10: {  # a draft reply: not sent, so it answers nothing
            key: message("g3@example.com", sender=AGENT, to=[CUSTOMER]),
            b"INTERNALDATE": at(10),
            b"X-GM-THRID": 1761234567890,
            b"X-GM-LABELS": (b"\\Draft",),
        },
    }
    records = connector.collector(NOW)
    connector.events(records, "[Gmail]/All Mail", False, [7, 8, 9, 10], response)
    events, rejected = records.parsed()
    assert [r.location for r in rejected] == ["[Gmail]/All Mail uid 9"]
    question_, answer = events
    assert question_.thread and answer.thread
    assert "gm:1761234567890" in question_.thread.keys and answer.side == "agent"
    assert question_.conversation == answer.conversation == "gm:1761234567890"


@pytest.mark.parametrize(
    ("stamp", "reason"),
    [
        # imapclient reads `+2500` as an offset datetime cannot use.
        (b"01-Oct-2026 08:31:00 +2500", "INTERNALDATE has an impossible time zone offset"),
        # Behind UTC the year 9999 overflows (Dovecot keeps no such date: the answer is crafted).
        (b"31-Dec-9999 23:59:59 -0100", "INTERNALDATE is out of range"),
    ],
)
def test_an_unusable_internaldate_rejects_that_message_only(
    mailbox: Mailbox, stamp: bytes, reason: str
) -> None:
    config = settings_from_mapping({"agents": AGENTS, "sources": [mailbox.source()]}, Path("."))
    connector = build_connector(config, config.sources[0])
    assert isinstance(connector, ImapConnector)
    key = b"BODY[HEADER.FIELDS (MESSAGE-ID FROM)]"
    data = [
        (b'1 (UID 7 INTERNALDATE "' + stamp + b'" ' + key + b" {20}", b"From: a@a.test\r\n\r\n"),
        b")",
        (
            b'2 (UID 8 INTERNALDATE "01-Oct-2026 08:31:00 +0000" ' + key + b" {20}",
            b"From: a@a.test\r\n\r\n",
        ),
        b")",
    ]
    records = connector.collector(NOW)
    connector.events(records, "INBOX", False, [7, 8], imap_fetch.parse(data))
    events, rejected = records.parsed()
    assert [(r.location, r.reason) for r in rejected] == [("INBOX uid 7", reason)]
    assert len(events) == 1


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls_are_verified_against_the_ca_file(
    tmp_path: Path, mailbox: Mailbox, security: str
) -> None:
    mailbox.append("INBOX", [question(1, 0)])
    port = mailbox.server.port if security == "tls" else mailbox.server.starttls_port
    settings, engine = setup(tmp_path, mailbox, security=security, port=port)
    assert poll(engine, settings, "inbox", NOW).messages == 1
    found = build_connector(settings, settings.sources[0]).check()
    assert f"({security}): Sent (sent) 0 messages, INBOX 1 messages" in found


def test_a_ca_file_is_trusted_instead_of_the_system_store_as_for_smtp(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    settings, _ = setup(tmp_path, mailbox)
    source = settings.sources[0]
    assert isinstance(source, ImapSettings)
    context = tls_context(source, settings.base_dir)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # The private CA alone: a server certified by some public CA is not this mailbox's server.
    assert context.cert_store_stats()["x509_ca"] == 1
    system = tls_context(source.model_copy(update={"ca_file": None}), settings.base_dir)
    assert system.cert_store_stats()["x509_ca"] != 1


def test_an_oauth2_token_from_a_file_or_a_command_logs_in(tmp_path: Path, mailbox: Mailbox) -> None:
    mailbox.append("INBOX", [question(1, 0)])
    token = tmp_path / "token"
    token.write_text(mailbox.server.token(mailbox.user) + "\n")
    by_file = mailbox.source("by-file", password=None, oauth2_token_file=str(token))
    by_command = mailbox.source("by-command", password=None, oauth2_token_command=f"cat {token}")
    settings, engine = open_store(tmp_path, [by_file, by_command], agents=AGENTS)
    assert poll(engine, settings, "by-file", NOW).messages == 1
    assert poll(engine, settings, "by-command", NOW).messages == 1


def failure(tmp_path: Path, source: dict[str, Any]) -> tuple[str, bool]:
    settings, engine = open_store(tmp_path, [source], agents=AGENTS)
    result = poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
    assert result.error is not None and "\n" not in result.error
    return result.error, result.permanent


def test_a_wrong_password_or_token_fails_the_poll_with_one_permanent_line(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    error, permanent = failure(tmp_path, mailbox.source(password="wrong"))
    assert permanent and error == (
        f"127.0.0.1:{mailbox.server.port}: login failed for {mailbox.user}"
    )
    assert "wrong" not in error
    token = tmp_path / "token"
    token.write_text(mailbox.server.token(mailbox.user, valid=False))
    error, permanent = failure(
        tmp_path, mailbox.source(password=None, oauth2_token_file=str(token))
    )
    assert permanent and "login failed" in error


def test_an_untrusted_certificate_or_a_closed_port_fails_with_one_line(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    error, permanent = failure(tmp_path, mailbox.source(ca_file=None))
    assert "TLS certificate not trusted" in error and "ca_file" in error

    error, permanent = failure(tmp_path, mailbox.source(port=free_port()))
    assert error.endswith("connection refused") and not permanent


def test_a_password_from_the_environment_or_a_file_and_plain_imap_on_loopback(
    tmp_path: Path, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox.append("INBOX", [question(1, 0)])
    monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.server.password)
    secret = tmp_path / "imap-password"
    secret.write_text(mailbox.server.password + "\n")
    from_env = mailbox.source("from-env", password="${TEST_IMAP_PASSWORD}")
    from_file = mailbox.source("from-file", password=None, password_file="imap-password")
    plain = mailbox.source(
        "plain", security="none", port=mailbox.server.starttls_port, ca_file=None
    )
    settings, engine = open_store(tmp_path, [from_env, from_file, plain], agents=AGENTS)
    for name in ("from-env", "from-file", "plain"):
        assert poll(engine, settings, name, NOW).messages == 1


def test_plain_imap_to_a_remote_host_and_two_secrets_are_config_errors(mailbox: Mailbox) -> None:
    from monitor.config_file import ConfigError

    with pytest.raises(ConfigError) as remote:
        settings_from_mapping(
            {"sources": [mailbox.source(host="imap.example.com", security="none")]}, Path(".")
        )
    assert remote.value.problems == [
        "sources[0] (source inbox): security: none is only allowed for a server on loopback"
    ]
    with pytest.raises(ConfigError) as both:
        settings_from_mapping({"sources": [mailbox.source(oauth2_token_file="token")]}, Path("."))
    assert "give exactly one of password" in both.value.problems[0]


def test_a_server_that_never_answers_times_out_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as silent:  # accepts connections (the kernel does) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        source = {
            "name": "silent",
            "kind": "imap",
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "username": "x",
            "password": "y",
            "timeout": "0.3s",
        }
        error, permanent = failure(tmp_path, source)
    assert error == f"127.0.0.1:{port}: timed out: no complete answer within 0.3 s"
    assert not permanent


def test_debug_logging_never_holds_message_contents(
    tmp_path: Path, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox.append("INBOX", [question(1, 0, subject="Secret refund 7731")])
    settings, engine = setup(tmp_path, mailbox)
    with caplog.at_level(logging.DEBUG):
        result = poll(engine, settings, "inbox", NOW)
    assert result.messages == 1
    assert caplog.records  # imapclient's own debug lines (commands) are still logged
    assert "7731" not in caplog.text and "q1@customer.test" not in caplog.text
