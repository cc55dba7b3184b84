"""A message's text, for the one kind that reads bodies (`answering_service_mail`).

Everything else in connectors/mail/ reads headers only. An answering service's notification
carries what it took down (the caller, the number to call back, when) in its body, so that
kind reads the body of those notifications, here, only to extract a few values: the text made
here is matched and dropped, never stored or logged.

The stdlib `email` package parses the MIME structure and undoes the transfer encodings
(quoted-printable, base64); each text part is decoded in its declared charset (one that is
unknown or no text encoding, `zlib` or `base64`, is read as UTF-8 with replacement characters,
never an error). `text/plain` parts are the text; a notification with HTML alone is reduced to
text by libxml2's HTML parser (lxml, linear in the page: tags dropped, block elements and
table rows as line breaks, cells apart, entities decoded, scripts and styles left out; content
nested past libxml2's depth limit is lost, so such a page is a rejection of its message alone).
Attachments are never read.

Whatever an outsider wrote, the cost is bounded: the message is at most the kind's
`max_message_bytes` before it is parsed, only the first `MAX_PARTS` parts are looked at, and
the text is cut to `MAX_TEXT` characters (the patterns run on at most that).
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from lxml import etree

MAX_PARTS = 50  # MIME parts looked at; notifications have one to three
MAX_TEXT = 64 * 1024  # characters of text the patterns run on
_parser = BytesParser(policy=compat32)
# Characters no label or value is written with: format characters (zero-width spaces, joiners,
# direction overrides) go; other control characters but line breaks and tabs become spaces.
_FORMAT = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SPACES = re.compile(r"[ \t\xa0\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n(?:\s*\n)+")
_RUN = re.compile(r"\s+")


def message_text(raw: bytes) -> str:
    """The text of the message `raw` (its header block and body): its plain-text parts, else
    its HTML parts reduced to text; at most MAX_TEXT characters, tidied (see `tidy`)."""
    message = _parser.parsebytes(raw)
    plain: list[str] = []
    html: list[str] = []
    for part in _leaves(message):
        if part.get_content_maintype() != "text" or _is_attachment(part):
            continue
        subtype = part.get_content_subtype()
        if subtype == "plain":
            plain.append(_decoded(part))
        elif subtype == "html":
            html.append(_decoded(part))
    if plain:
        text = "\n".join(plain)
    else:
        text = "\n".join(html_text(page[: 4 * MAX_TEXT]) for page in html)
    return tidy(text)


def tidy(text: str) -> str:
    """`text` with line breaks as `\\n`, runs of spaces (no-break ones too) as one space, no
    control or format characters, at most one empty line in a row, cut to MAX_TEXT."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub(" ", _FORMAT.sub("", text[: 2 * MAX_TEXT]))
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()[:MAX_TEXT]


def _leaves(message: Message) -> list[Message]:
    """The non-multipart parts, depth first, at most MAX_PARTS of them (no recursion: a
    message nested a thousand deep costs what its parts do). An attached message
    (`message/rfc822`) is not looked into: it is not the notification."""
    found: list[Message] = []
    stack = [message]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        if part.is_multipart():
            payload = part.get_payload()
            if part.get_content_maintype() == "multipart" and isinstance(payload, list):
                stack.extend(p for p in reversed(payload) if isinstance(p, Message))
        else:
            found.append(part)
    return found


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("content-disposition", "")).split(";", 1)[0]
    return disposition.strip().lower() == "attachment"


def _decoded(part: Message) -> str:
    """A text part's content: transfer encoding undone, then its charset decoded."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "us-ascii"
    try:
        return payload.decode(charset, "replace")
    except (LookupError, ValueError, TypeError):  # unknown, or no text encoding (zlib, hex)
        return payload.decode("utf-8", "replace")


def html_text(page: str) -> str:
    """The text a reader sees in an HTML page, lines where the page breaks them, cells of a
    row apart. libxml2's HTML parser (lxml) reads any page in linear time, as a browser would
    repair it; the stdlib parser took 30 s on 256 kB of unclosed comments."""
    try:
        root = etree.fromstring(page.encode("utf-8", "replace"), _HTML)
    except etree.XMLSyntaxError:  # nothing in it that makes a document
        return ""
    if root is None:
        return ""
    parts: list[str] = []
    walk = etree.iterwalk(root, events=("start", "end"))
    for event, element in walk:
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in _HIDDEN:
                walk.skip_subtree()
                continue
            if tag in _BLOCKS:
                _line_break(parts)
            elif tag in _CELLS:
                parts.append("\t")
            if element.text:
                parts.append(_RUN.sub(" ", element.text))
        else:
            if tag in _BLOCKS:
                _line_break(parts)
            if element.tail:  # text after the element, in its parent (shown even after a script)
                parts.append(_RUN.sub(" ", element.tail))
    return "".join(parts)


def _line_break(parts: list[str]) -> None:
    """End the current line, once: the end of one block and the start of the next (a table
    row after a row) make one line break, not an empty line between them."""
    while parts and parts[-1].isspace() and "\n" not in parts[-1]:
        parts.pop()
    if parts and not parts[-1].endswith("\n"):
        parts.append("\n")


_HTML = etree.HTMLParser(
    encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True, recover=True
)
# Elements that start a new line of text, and those whose content is not text at all.
_BLOCKS = frozenset(
    "address article aside blockquote br dd div dl dt fieldset figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody tfoot thead tr ul".split()
)
_CELLS = frozenset({"td", "th"})
_HIDDEN = frozenset({"script", "style", "head", "title", "template", "noscript", "svg"})
