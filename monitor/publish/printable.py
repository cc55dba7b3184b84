"""Text that people read, made safe to print: in a terminal, a plain-text e-mail, a webhook.

Subjects, conversation ids, caller ids and names are written by outsiders. Printed as they
are, an escape sequence clears a support lead's screen or retitles their window, and a CR or LF
forges a line ("resolved", a fake alert) in an alert e-mail or a chat message. So every
customer-controlled value is printed through `line` (one line, bounded) and every text block
through `block`:

- C0 controls (but tab) and DEL become their visible Unicode control pictures (`ESC` is `␛`,
  CR `␍`, LF `␊`, so `\\x1b[2J` prints as `␛[2J`: seen, not obeyed); C1 controls (the 8-bit
  CSI `\\x9b` among them) and the bidirectional overrides that reorder what a reader sees
  become U+FFFD;
- a line separator (U+2028, U+2029) in a one-line value becomes `␤`;
- a one-line value longer than its limit is cut, with `…` where it was cut.

A CSV file is opened by a spreadsheet, which runs a cell starting with `=`, `+`, `-` or `@` as
a formula (`=HYPERLINK(...)` in a subject an outsider wrote): `cell` makes such text plain.

HTML is not for this module: templates autoescape it (monitor.publish.templating).
"""

from __future__ import annotations

from typing import Any

LINE_LIMIT = 500  # characters of one value (a stored subject is at most 255)

_PICTURES = {code: chr(0x2400 + code) for code in range(0x20) if code != 0x09}
_PICTURES[0x7F] = "\u2421"  # ␡
_HIDDEN = dict.fromkeys(range(0x80, 0xA0), "\ufffd")  # C1
_HIDDEN.update(dict.fromkeys((*range(0x202A, 0x202F), *range(0x2066, 0x206A)), "\ufffd"))
_SEPARATORS = dict.fromkeys((0x2028, 0x2029), "\u2424")  # ␤
_LINE = str.maketrans({**_PICTURES, **_HIDDEN, **_SEPARATORS})
_BLOCK = str.maketrans({**{k: v for k, v in _PICTURES.items() if k != 0x0A}, **_HIDDEN})


def line(value: object, limit: int = LINE_LIMIT) -> str:
    """`value` as one printable line of at most `limit` characters."""
    text = value if isinstance(value, str) else str(value)
    if not text.isprintable():  # the common case costs one C-level scan
        text = text.translate(_LINE)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def block(text: str) -> str:
    """Text of several lines (a rendered report, a digest) as printable lines: LF and CRLF end
    lines, every other control is made visible as in `line`; nothing is cut."""
    if text.isprintable():
        return text
    return text.replace("\r\n", "\n").translate(_BLOCK)


def strings(value: Any, limit: int = LINE_LIMIT) -> Any:
    """A JSON-like value with every string in it (keys too) made a printable `line`."""
    if isinstance(value, str):
        return line(value, limit)
    if isinstance(value, dict):
        return {
            line(k, limit) if isinstance(k, str) else k: strings(v, limit) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [strings(item, limit) for item in value]
    return value


# What a spreadsheet reads as the start of a formula (and tab and CR, which some strip first).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any, limit: int = LINE_LIMIT) -> Any:
    """A value for a CSV cell: text as one printable line (`line`), with a leading `'` when it
    would start a formula, so a spreadsheet shows it as text (OWASP's advice on CSV
    injection); numbers, booleans and None as they are."""
    if not isinstance(value, str):
        return value
    text = line(value, limit)
    return "'" + text if text.startswith(_FORMULA_START) else text
