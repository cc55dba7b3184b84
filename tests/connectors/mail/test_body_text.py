"""A notification's text (connectors.mail.body_text): MIME decoded, HTML reduced to text, and
bounded in time and size whatever an outsider wrote."""

from __future__ import annotations

import time
from email.message import EmailMessage

import pytest

from connectors.mail.answering_service import compile_pattern
from connectors.mail.body_text import MAX_PARTS, MAX_TEXT, html_text, message_text


def mail(
    body: str, *, subtype: str = "plain", charset: str = "utf-8", cte: str | None = None
) -> bytes:
    message = EmailMessage()
    message["From"] = "messages@answering.example"
    message["Subject"] = "New message"
    message.set_content(body, subtype=subtype, charset=charset, cte=cte)
    return message.as_bytes()


@pytest.mark.parametrize("cte", ["7bit", "8bit", "quoted-printable", "base64"])
def test_each_transfer_encoding_gives_the_same_text(cte: str) -> None:
    body = "Caller: Renée O'Brien\nCall back on: +44 20 7946 0001\n"
    if cte == "7bit":
        body = body.replace("é", "e")
    assert message_text(mail(body, cte=cte)) == body.strip()


def test_a_charset_is_decoded_and_an_unusable_one_reads_as_utf8() -> None:
    latin = mail("Caller: Renée", charset="iso-8859-1", cte="quoted-printable")
    assert b"Ren=E9e" in latin
    assert message_text(latin) == "Caller: Renée"
    for charset in ("zlib", "x-unknown", "base64", "rot13", "idna"):
        raw = latin.replace(b"iso-8859-1", charset.encode())
        assert message_text(raw).startswith("Caller: Ren"), charset


def test_an_html_only_notification_becomes_lines_and_cells() -> None:
    page = (
        "<html><head><title>Message</title><style>td{color:red}</style></head><body>"
        "<p>You have a&nbsp;new <b>message</b>.</p><script>var x = 'Caller: Evil';</script>"
        "<table><tr><td>Caller:</td><td>Dana&nbsp;Whitfield</td></tr>"
        "<tr><td>Call back on:</td><td>+44 20\n 7946 0001</td></tr></table>"
        "<!-- Caller: hidden --><div>Urgency:<br>High</div></body></html>"
    )
    assert message_text(mail(page, subtype="html", cte="base64")) == (
        "You have a new message.\nCaller: Dana Whitfield\nCall back on: +44 20 7946 0001\n"
        "Urgency:\nHigh"
    )


def test_plain_text_wins_over_html_and_attachments_are_never_read() -> None:
    message = EmailMessage()
    message["From"] = "messages@answering.example"
    message.set_content("Caller: Dana")
    message.add_alternative("<p>Caller: Someone else</p>", subtype="html")
    message.add_attachment("Caller: Mallory", filename="notes.txt")
    assert message_text(message.as_bytes()) == "Caller: Dana"


def test_control_and_format_characters_are_dropped_and_spaces_collapsed() -> None:
    body = "Call\u200bback on:\u00a0\u00a0+44\x1b[2J 20\u202e 7946\r\nCaller:\tDana\u2028Lee"
    assert message_text(mail(body)) == "Callback on: +44 [2J 20 7946\nCaller: Dana Lee"


def test_the_text_is_cut_and_only_the_first_parts_are_looked_at() -> None:
    long = mail("Caller: " + "x" * (3 * MAX_TEXT))
    assert len(message_text(long)) == MAX_TEXT
    message = EmailMessage()
    message.set_content("first")
    for n in range(MAX_PARTS + 20):
        message.add_alternative(f"part {n}")
    text = message_text(message.as_bytes())
    assert text.startswith("first") and f"part {MAX_PARTS}" not in text


def test_a_message_nested_a_thousand_deep_costs_only_its_parts() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\n\n"
    for _ in range(1000):
        raw += b"--b\nContent-Type: multipart/mixed; boundary=b\n\n"
    raw += b"--b\nContent-Type: text/plain\n\nCaller: Dana\n"
    started = time.perf_counter()
    message_text(raw)
    assert time.perf_counter() - started < 2


# Pages that made the stdlib HTML parser quadratic (31 s for 256 kB of unclosed comments).
HOSTILE_PAGES = {
    "unclosed comments": "<!--" * 65536,
    "lone angle brackets": "<" * 262144,
    "unclosed tags": "<a " * 87381,
    "unclosed attributes": "<a " + 'b="' * 87000,
    "declarations": "<!" * 131072,
    "processing instructions": "<?" * 131072,
    "end tags": "</" * 131072,
    "unclosed script": "<script>" + "</scrip" * 37000,
    "nested divs": "<div>" * 52428,
    "entities": "&#" * 131072,
}


@pytest.mark.parametrize("page", list(HOSTILE_PAGES.values()), ids=list(HOSTILE_PAGES))
def test_a_hostile_html_page_is_read_in_bounded_time(page: str) -> None:
    started = time.perf_counter()
    message_text(mail(page, subtype="html", cte="base64"))
    assert time.perf_counter() - started < 1.0


def test_a_pattern_runs_in_linear_time_on_text_made_to_make_it_backtrack() -> None:
    # Python's re takes minutes here (it backtracks on every split of the line); RE2 cannot.
    pattern = compile_pattern(r"(?P<value>(\s*\S+)+)\s+Urgency")
    started = time.perf_counter()
    assert pattern.search("a " * (MAX_TEXT // 2)) is None
    assert time.perf_counter() - started < 1.0


def test_the_html_text_is_empty_for_a_page_with_no_text() -> None:
    assert html_text("") == ""
    assert html_text("<html></html>") == ""
