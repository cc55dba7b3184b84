"""The quick readings of a header block (connectors.mail.headers) give what the general ones give.

`parse` splits plain blocks itself, reads a lone address with one regular expression and the
usual Date form without `email.utils`; each is only a shortcut, so on any input (generated here:
folded lines, quotes, comments, groups, encoded words, 8-bit bytes, odd dates and zones) it must
agree with `email`'s feed parser, the general address splitter and the library's date parser.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connectors.base import ConnectorContext
from connectors.mail.headers import (
    Headers,
    addresses,
    library_date,
    message_ids,
    parse,
    parse_date,
    parse_with_email,
    read_message_ids,
    split_addresses,
)
from connectors.mail.message import _PREFIX, Classifier, MailError, build_event, normalise_subject
from monitor.config import Agents
from monitor.measure.events import MessageEvent, MessageKind, Side, Thread, email_event
from tests.connectors.mail.test_message import ARRIVED

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLASSIFIER = Classifier(
    ConnectorContext(
        agents=Agents(addresses=["support@example.com"], domains=["example.com"]),
        base_dir=Path("."),
        timezone=ZoneInfo("UTC"),
    )
)

# Pieces of header values, plain and hostile: what display-name spoofing and parser
# disagreements are made of.
WORDS = st.sampled_from(
    [
        "Ann",
        "Smith",
        "ann@shop.test",
        "support@example.com",
        "<ann@shop.test>",
        "<support@example.com>",
        "<q1.2@mail.shop.test>",
        "<r1@example.com>",
        "bare@id.test",
        '"Support, Team"',
        '"a\\"b"',
        "(comment)",
        "(unclosed",
        ")",
        "group:",
        ";",
        ",",
        ", ",
        "<",
        ">",
        "=?utf-8?q?Support_=3Csupport@example.com=3E?=",
        "=?utf-8?b?w6k=?=",
        "=?x-unknown?q?z?=",
        "Re:",
        "Thu, 01 Oct 2026 10:33:00 +0000",
        "\t",
        "  ",
        "é",
        "\udcff",  # stands for an 8-bit byte (written as 0xff below)
        "\x00",
        "\x1f",
        "\r",
    ]
)
VALUES = st.lists(WORDS, max_size=6).map(" ".join) | st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40
)
NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Bcc",
        "to",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Auto-Submitted",
        "Precedence",
        "Return-Path",
        "Content-Type",
        "X-Other",
    ]
)


@st.composite
def blocks(draw: st.DrawFn) -> bytes:
    """A header block: fields (some folded, some repeated), CRLF or LF, maybe a body."""
    end = draw(st.sampled_from(["\r\n", "\n"]))
    lines = []
    for _ in range(draw(st.integers(0, 9))):
        name, value = draw(NAMES), draw(VALUES)
        if draw(st.booleans()) and " " in value.strip():  # folded at a space
            head, _, tail = value.strip().partition(" ")
            value = f"{head}{end}{draw(st.sampled_from([' ', chr(9)]))}{tail}"
        lines.append(f"{name}:{draw(st.sampled_from([' ', '', '  ', chr(9)]))}{value}")
    text = end.join(lines) + end + draw(st.sampled_from(["", end + "body" + end]))
    return text.encode("utf-8", "surrogateescape")


def same_reading(headers: Headers) -> tuple[object, ...]:
    """What a Headers says; raw field values up to their whitespace (the feed parser keeps the
    line breaks of a folded value, which `parse` unfolds: both read the same after)."""
    fields = {name: " ".join(value.split()) for name, value in headers.fields.items()}
    return (
        headers.message_id,
        headers.in_reply_to,
        headers.references,
        headers.sender,
        headers.recipients,
        headers.subject,
        headers.date,
        headers.date_problem,
        fields,
    )


def made(headers: Headers, sent: bool) -> object:
    try:
        return build_event(headers, arrived=ARRIVED, sent=sent, classifier=CLASSIFIER)
    except MailError as exc:
        return str(exc)


@PROPERTY
@given(raw=blocks(), sent=st.booleans())
@example(raw=b"From: Ann <ann@shop.test>\r\nTo: support@example.com\r\n\r\n", sent=False)
@example(raw=b"From: =?utf-8?q?Support_=3Csupport@example.com=3E?= <evil@x.test>\n", sent=False)
@example(raw=b"To: a@b.test\r\n (c)\r\nSubject: x\r\n\r\n", sent=True)
def test_a_block_split_by_parse_reads_as_the_email_parser_reads_it(raw: bytes, sent: bool) -> None:
    quick, full = parse(raw), parse_with_email(raw)
    assert same_reading(quick) == same_reading(full)
    assert made(quick, sent) == made(full, sent)


ADDRESS_VALUES = st.lists(
    st.sampled_from(["Ann Smith", "ann@shop.test", "<ann@shop.test>", "<a b@x>", "a@b>", "<a@b"])
    | WORDS,
    max_size=4,
).map(" ".join)


@PROPERTY
@given(value=ADDRESS_VALUES | VALUES)
@example(value="Ann Smith <Ann@Shop.TEST>  ")
@example(value=" ann@shop.test\t")
@example(value="Ann <ann@shop.test> trailing")
def test_a_lone_address_is_read_as_the_general_splitter_reads_it(value: str) -> None:
    assert addresses([value]) == split_addresses([value])


ID_VALUES = st.lists(
    st.sampled_from(["<", ">", "q1.2", "@", "mail.shop.test", " ", "\t", "\x1f", "\x7f", "é", "<>"])
    | st.text(max_size=4),
    max_size=6,
).map("".join)


@PROPERTY
@given(value=ID_VALUES | st.builds("<{}>".format, ID_VALUES))
@example(value="<q1.2@mail.shop.test>")
@example(value="<" + "x" * 250 + ">")
@example(value="<" + "x" * 251 + ">")
@example(value="<a\x1cb>")
@example(value="<<a>")
@example(value="<>")
def test_a_lone_message_id_is_read_as_the_id_pattern_reads_it(value: str) -> None:
    assert message_ids(value) == read_message_ids(value)


DATES = st.builds(
    "{}{} {} {} {}:{}:{} {}{}{}".format,
    st.sampled_from(["", "Thu, ", "Mon, ", "Xyz, ", "thu, "]),
    st.sampled_from(["1", "01", "9", "28", "29", "30", "31", "0", "32"]),
    st.sampled_from(["Jan", "Feb", "Oct", "Dec", "OCT", "Foo"]),
    st.sampled_from(["1989", "1990", "2024", "2026", "2200", "2201", "0001", "9999"]),
    st.sampled_from(["00", "09", "23", "24"]),
    st.sampled_from(["00", "59", "60"]),
    st.sampled_from(["00", "59", "60", "61"]),
    st.sampled_from(["+", "-"]),
    st.sampled_from(["00", "01", "05", "14", "23", "24", "99"]),
    st.sampled_from(["00", "30", "45", "59", "60", "99"]),
)


@PROPERTY
@given(value=DATES)
@example(value="Thu, 01 Oct 2026 10:33:00 -0000")
@example(value="Sat, 31 Dec 2200 23:59:59 -2359")
@example(value="Fri, 01 Jan 1990 00:00:00 +2359")
@example(value="Mon, 29 Feb 2027 10:00:00 +0000")
def test_the_usual_date_form_is_read_as_the_library_reads_it(value: str) -> None:
    assert parse_date(value) == library_date(value)
    moment = parse_date(value)[0]
    assert moment is None or moment.tzinfo is library_date(value)[0].tzinfo  # type: ignore[union-attr]


def test_the_quick_readings_are_taken_for_the_usual_block() -> None:
    """What the shortcuts are for: a plain block never reaches the feed parser, its lone
    addresses the splitter or its date the library (were they to stop matching, the property
    tests above would still pass, and the poll would quietly be slower)."""
    from connectors.mail import headers

    raw = (
        b"From: Customer 7 <customer7@shop7.test>\r\nTo: support@example.com\r\n"
        b"Subject: Order 7\r\nDate: Thu, 01 Oct 2026 10:33:00 +0200\r\n"
        b"Message-ID: <q7.1@mail.shop.test>\r\n\r\n"
    )
    assert headers._unfolded(raw) is not None
    assert headers._plain_fields(raw) is not None
    block = raw.decode().replace("\r\n", "\n")[:-1]
    assert len(headers._UNFOLDED_FIELD.findall(block)) == block.count("\n") == 5
    assert headers._ONE_ADDRESS.fullmatch("Customer 7 <customer7@shop7.test>")
    assert headers._ONE_ADDRESS.fullmatch("support@example.com")
    found = headers._DATE.fullmatch("Thu, 01 Oct 2026 10:33:00 +0200")
    assert found is not None and headers._usual_date(found) is not None
    assert re.fullmatch(r"<q7\.1@mail\.shop\.test>", parse(raw).message_id or "")


# Texts an e-mail's event may carry: plain, empty, at and over the storable limit, with NUL,
# lone surrogates and non-ASCII letters (what the constructors' checks are for).
TEXTS = st.sampled_from(
    ["<q1@shop.test>", "", "a" * 255, "a" * 256, "x\x00y", "\ud800", "Grüße", "~" + "0" * 32]
) | st.text(max_size=300)
TIMES = st.sampled_from(
    [
        ARRIVED,
        ARRIVED.astimezone(ZoneInfo("Europe/Paris")),
        ARRIVED.replace(tzinfo=None),
        ARRIVED.astimezone(timezone(timedelta(hours=-3))),
    ]
)


@PROPERTY
@given(
    ids=st.tuples(TEXTS, TEXTS),
    at=TIMES,
    agent_side=st.booleans(),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    optional=st.tuples(*[st.none() | TEXTS] * 5),
    keys=st.lists(TEXTS, max_size=3),
    refers=st.lists(TEXTS, max_size=3),
)
def test_an_email_event_made_directly_equals_the_one_the_constructors_make(
    ids: tuple[str, str],
    at: datetime,
    agent_side: bool,
    flags: tuple[bool, bool, bool],
    optional: tuple[str | None, ...],
    keys: list[str],
    refers: list[str],
) -> None:
    customer, subject, agent, left_out, hint = optional
    automatic, internal, by_hint = flags
    fields: dict[str, Any] = {
        "external_id": ids[0],
        "conversation": ids[1],
        "at": at,
        "side": Side.AGENT if agent_side else Side.CUSTOMER,
        "automatic": automatic,
        "internal": internal,
        "customer": customer,
        "subject": subject,
        "refers": tuple(refers),
        "agent": agent,
        "left_out": left_out,
    }
    thread = (tuple(keys), hint, by_hint, timedelta(days=3))
    try:
        expected = MessageEvent(**fields, thread=Thread(*thread))
    except ValueError as exc:  # an empty id, a naive time: refused alike
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            email_event(**fields, thread=thread)
        return
    made = email_event(**fields, thread=thread)
    assert made == expected
    assert made.at.tzinfo is UTC and made.kind is MessageKind.MESSAGE and made.channel is None
    assert type(made.thread) is Thread and type(made.thread.keys) is tuple


@PROPERTY
@given(
    value=st.text(max_size=40) | st.sampled_from(["Re: Order 5", "RE[2]: Fwd:  a\tb ", "回复：x"])
)
@example(value="Re: x\u00a0y")
@example(value="Aw: Sv: a\u2028b ")
def test_a_subject_is_normalised_as_the_prefix_pattern_and_a_split_say(value: str) -> None:
    assert normalise_subject(value) == " ".join(_PREFIX.sub("", value).split()).casefold()


def test_addresses_read_before_are_given_again_and_the_memory_of_them_is_bounded() -> None:
    from connectors.mail import headers

    value = "Customer 7 <Customer7@Shop7.test>"
    assert addresses([value]) == addresses([value]) == ["customer7@shop7.test"]
    long = "x" * 300 + " <a@b.test>"
    assert addresses([long]) == ["a@b.test"] and long not in headers._READ_BEFORE
    for n in range(headers._REMEMBERED + 5):
        addresses([f"c{n}@shop.test"])
    assert len(headers._READ_BEFORE) <= headers._REMEMBERED
    assert addresses(["c3@shop.test"]) == ["c3@shop.test"]
