"""The quick readings of a header block (connectors.mail.headers) give what the general ones give.

`parse` splits plain blocks itself, reads a lone address with one regular expression and the
usual Date form without `email.utils`; each is only a shortcut, so on any input (generated here:
folded lines, quotes, comments, groups, encoded words, 8-bit bytes, odd dates and zones) it must
agree with `email`'s feed parser, the general address splitter and the library's date parser.
"""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connectors.base import ConnectorContext
from connectors.mail.headers import (
    Headers,
    addresses,
    library_date,
    parse,
    parse_date,
    parse_with_email,
    split_addresses,
)
from connectors.mail.message import Classifier, MailError, build_event
from monitor.config import Agents
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
    assert headers._plain_fields(raw) is not None
    assert headers._UNFOLDED_BLOCK.fullmatch(raw.decode().replace("\r\n", "\n")[:-1])
    assert headers._ONE_ADDRESS.fullmatch("Customer 7 <customer7@shop7.test>")
    assert headers._ONE_ADDRESS.fullmatch("support@example.com")
    found = headers._DATE.fullmatch("Thu, 01 Oct 2026 10:33:00 +0200")
    assert found is not None and headers._usual_date(found) is not None
    assert re.fullmatch(r"<q7\.1@mail\.shop\.test>", parse(raw).message_id or "")
