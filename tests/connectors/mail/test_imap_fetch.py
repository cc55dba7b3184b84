"""connectors.mail.imap_fetch gives exactly what imapclient's `fetch` gives: on a real Dovecot's
answers, and on the unusual answers other servers send (which go to imapclient's parser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from imapclient.exceptions import ProtocolError
from imapclient.response_parser import parse_fetch_response

from connectors.mail.imap import HEADER_ITEM
from connectors.mail.imap_fetch import (
    _internaldate,
    _parse_common,
    _read_internaldate,
    fetch,
    parse,
)
from tests.mailboxes import Mailbox, message

ARRIVED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SECTION = b"BODY[HEADER.FIELDS (FROM DATE)]"
HEADER = b"From: dana@customer.test\r\nDate: Fri, 20 Nov 2026 09:00:00 +0000\r\n\r\n"


def answer(head: bytes, tail: bytes = b")", literal: bytes = HEADER) -> list[Any]:
    """One message's FETCH answer as imaplib hands it over: the line up to the literal with the
    literal, then the rest of the line."""
    return [(head + b" {%d}" % len(literal), literal), tail]


def imapclients(data: list[Any]) -> dict[int, dict[bytes, Any]]:
    return dict(parse_fetch_response(data, False, True))


COMMON = b'7 (UID 41 INTERNALDATE "20-Nov-2026 09:00:00 +0000" ' + SECTION
USUAL = {
    "the usual answer": answer(COMMON),
    "a day written with a space": answer(
        b'7 (UID 41 INTERNALDATE " 2-Nov-2026 09:00:00 -0130" ' + SECTION
    ),
    "items after the literal": answer(
        b"7 (" + SECTION, b' UID 41 INTERNALDATE "20-Nov-2026 09:00:00 +0200")'
    ),
    "a Gmail thread id": answer(b"7 (X-GM-THRID 1234567890123 UID 41 " + SECTION),
    "lower-case item names": answer(
        b'7 (uid 41 internaldate "20-Nov-2026 09:00:00 +0000" ' + SECTION
    ),
    "a -0000 zone": answer(b'7 (UID 41 INTERNALDATE "20-Nov-2026 09:00:00 -0000" ' + SECTION),
    "a lower-case month": answer(b'7 (UID 41 INTERNALDATE "20-nov-2026 09:00:00 +0000" ' + SECTION),
    "a time with dots": answer(b'7 (UID 41 INTERNALDATE "20-Nov-2026 09.00.00 +0000" ' + SECTION),
    "an unreadable INTERNALDATE": answer(b'7 (UID 41 INTERNALDATE "someday" ' + SECTION),
    "an impossible INTERNALDATE": answer(
        b'7 (UID 41 INTERNALDATE "31-Feb-2026 09:00:00 +0000" ' + SECTION
    ),
    "no UID": answer(b'7 (INTERNALDATE "20-Nov-2026 09:00:00 +0000" ' + SECTION),
    "an empty header block": answer(COMMON, literal=b""),
    "the usual head with items after the literal": answer(COMMON, b" X-GM-THRID 5 SIZE 12)"),
    "two messages": answer(COMMON) + answer(COMMON.replace(b"7 (UID 41", b"8 (UID 42")),
    "the same message twice": answer(COMMON) + answer(b"7 (UID 41 X-GM-THRID 5 " + SECTION),
}
# Not the usual shape: imapclient's own parser reads these.
UNUSUAL = {
    "an unsolicited FLAGS update": answer(COMMON) + [b"9 (FLAGS (\\Seen))"],
    "flags before the section": answer(b"7 (UID 41 FLAGS (\\Seen) " + SECTION),
    "Gmail labels": answer(b'7 (UID 41 X-GM-LABELS ("\\\\Inbox" Sent) ' + SECTION),
    "a NIL section": [b'7 (UID 41 INTERNALDATE "20-Nov-2026 09:00:00 +0000" ' + SECTION + b" NIL)"],
    "a quoted UID": answer(b'7 (UID "41" ' + SECTION),
    "a quoted item holding a section name": answer(b'7 (UID 41 X-NOTE "BODY[" ' + SECTION),
    "a section holding a bracket": answer(b"7 (UID 41 BODY[HEADER.FIELDS ([)]<0>"),
    "two literals": [
        (b"7 (UID 41 " + SECTION + b" {%d}" % len(HEADER), HEADER),
        (b" BODY[HEADER.FIELDS (TO)] {4}", b"\r\n\r\n"),
        b")",
    ],
}


ANSWERS = {**USUAL, **UNUSUAL}


@pytest.mark.parametrize("data", ANSWERS.values(), ids=ANSWERS.keys())
def test_an_answer_is_read_as_imapclient_reads_it(data: list[Any]) -> None:
    usual = any(data is answer for answer in USUAL.values())
    assert (_parse_common(data) is not None) == usual  # which reader this case exercises
    ours, theirs = parse(data), imapclients(data)
    assert ours == theirs
    for key, record in ours.items():  # equal datetimes may still differ in offset
        date = record.get(b"INTERNALDATE")
        if date is not None:
            assert date.utcoffset() == theirs[key][b"INTERNALDATE"].utcoffset()


def test_internaldate_keeps_its_offset() -> None:
    (record,) = parse(
        answer(b'7 (UID 41 INTERNALDATE " 2-Nov-2026 09:00:00 -0130" ' + SECTION)
    ).values()
    date = record[b"INTERNALDATE"]
    assert date == datetime(2026, 11, 2, 10, 30, tzinfo=UTC)
    assert date.utcoffset() == -timedelta(hours=1, minutes=30)
    assert date.tzinfo == timezone(-timedelta(hours=1, minutes=30))


def test_a_broken_answer_fails_as_imapclient_fails() -> None:
    with pytest.raises(ProtocolError):
        parse(answer(b'7 (UID "x41" ' + SECTION))


def test_nothing_returned_is_an_empty_answer() -> None:
    assert parse([None]) == {}


def test_a_real_servers_answers_are_what_imapclient_fetch_returns(mailbox: Mailbox) -> None:
    mails = [
        (message(f"m{n}@customer.test", subject=f"Order {n}"), ARRIVED + timedelta(minutes=n))
        for n in range(5)
    ]
    mailbox.append("INBOX", mails + [(b"Subject: no message id\r\n\r\nbody\r\n", ARRIVED)])
    client = mailbox.server.connect(mailbox.user)
    try:
        client.normalise_times = False
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        for items in (
            [HEADER_ITEM, "INTERNALDATE"],
            [HEADER_ITEM, "INTERNALDATE", "FLAGS"],  # not the usual shape: imapclient's parser
            ["INTERNALDATE", HEADER_ITEM, "RFC822.SIZE"],
        ):
            expected = client.fetch(uids + [999], items)
            assert fetch(client, uids + [999], items) == expected
            assert len(expected) == len(uids) == 6
        assert fetch(client, [], [HEADER_ITEM]) == {}
    finally:
        client.logout()


INTERNALDATES = st.builds(
    b"%s-%s-%s %s:%s:%s %s%s".__mod__,
    st.tuples(
        st.sampled_from(
            [b"01", b" 2", b"2 ", b"31", b"30", b"29", b"00", b"32", b"x1", b"\xd9\xa1"]
        ),
        st.sampled_from([b"Oct", b"Feb", b"Dec", b"oct", b"Foo"]),
        st.sampled_from([b"2026", b"2024", b"0001", b"9999", b"20 6"]),
        st.sampled_from([b"00", b"09", b"23", b"24", b"99", b"+1", b" 9", b"1a"]),
        st.sampled_from([b"00", b"59", b"60", b"5 "]),
        st.sampled_from([b"00", b"59", b"60", b"61", b"-1"]),
        st.sampled_from([b"+", b"-", b" ", b"x"]),
        st.sampled_from([b"0000", b"0130", b"2359", b"2400", b"9999", b"12345"]),
    ),
) | st.binary(max_size=30)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(INTERNALDATES, min_size=1, max_size=4))
@example(values=[b"01-Oct-2026 08:30:00 +0000", b"01-Oct-2026 23:59:59 +0000"])
@example(values=[b"31-Feb-2026 09:00:00 +0000", b"01-Oct-2026 09:00:00 +2400"])
@example(values=[b"01-Oct-2026 08:30:00 +0000", b"01-Oct-2026 08:30:60 +0000"])
@example(values=[b"01-Oct-2026 08:30:00 +0000", b"01-Oct-2026 08:60:00 +0000"])
@example(values=[b"01-Oct-2026 08:30:00 +0000", b"01-Oct-2026 24:00:00 +0000"])
@example(values=[b"01-Oct-2026 08:30:00 +0000", b"01-Oct-2026 +8:30:00 +0000"])
def test_an_internaldate_is_read_as_in_full_whatever_days_were_read_before(
    values: list[bytes],
) -> None:
    """The day and zone remembered from earlier messages give each time what reading it in
    full gives (and the same offset)."""
    for value in values:
        assert reading(_internaldate(value)) == reading(_read_internaldate(value))


def reading(moment: datetime | None) -> object:
    """A time as its fields and its zone's offset (imapclient's zones of a day or more cannot
    be compared as datetimes: `utcoffset` refuses them)."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.replace(tzinfo=None), type(moment.tzinfo), moment.tzinfo.utcoffset(None)
