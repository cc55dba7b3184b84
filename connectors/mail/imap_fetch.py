"""`UID FETCH` of header blocks for the `imap` connector: imapclient's `fetch`, minus the cost of
its response parser on the common shape of the answer.

imapclient lexes every FETCH response byte by byte in Python, and the server echoes the whole
section name with its field list (`BODY[HEADER.FIELDS (MESSAGE-ID IN-REPLY-TO ... )]`, about
250 bytes) in every message's response: on a first sync that lexing was about three quarters
of imapclient's whole fetch (cProfile of a bare imapclient script fetching 20,000 header
blocks), more than parsing the headers themselves.

So `fetch` sends the same command imapclient would (`UID FETCH 1,2,3 (ITEMS)`, through
imaplib's public `uid`), and reads the usual answer (`n (ITEM value ... BODY[...] {size}`, the
literal, then `)` or more items) with two regular expressions. Only numbers, quoted strings
(INTERNALDATE) and one literal section are read this way; anything else in a response (an
unsolicited FLAGS update, a parenthesised list such as Gmail's labels, NIL, a quoted header
block) sends the whole response to imapclient's own `parse_fetch_response`. Either way the
result is what `IMAPClient.fetch` returns (tests hold the two equal on the same answers), and
protocol errors are imapclient's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from imapclient import IMAPClient
from imapclient.datetime_util import parse_to_datetime
from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import join_message_ids, seq_to_parenstr_upper
from imapclient.response_parser import parse_fetch_response

Response = dict[int, dict[bytes, Any]]

# `12 (UID 7 INTERNALDATE "01-Oct-2026 08:31:00 +0000" BODY[HEADER.FIELDS (FROM TO)]<0> {288}`:
# the sequence number and simple items (_HEAD), the section with the origin of a partial fetch
# (_SECTION), and the size of the literal that follows. The section, some 250 bytes echoing the
# field list, is the same in every message's answer: it is checked once, then found in
# _SECTIONS, not scanned by a regular expression per message.
_HEAD = re.compile(rb'(\d+) \(((?:[A-Za-z][A-Za-z0-9.-]* (?:\d+|"[^"\\]*") )*)\Z')
_SECTION = re.compile(rb"BODY\[[^\]\[]*\](?:<\d+>)?")
_SECTIONS: dict[bytes, bytes] = {}  # each section checked, with its name in upper case
# What follows the literal: more simple items, then the closing parenthesis.
_TAIL = re.compile(rb'((?: [A-Za-z][A-Za-z0-9.-]* (?:\d+|"[^"\\]*"))*)\)\Z')
_ITEM = re.compile(rb'([A-Za-z][A-Za-z0-9.-]*) (?:(\d+)|"([^"\\]*)")')
# The usual head exactly, UID then INTERNALDATE before the section and nothing after its literal:
# what _HEAD, _ITEM and _TAIL read from it, in one match (the same record: a test holds them so).
_USUAL = re.compile(rb'(\d+) \(UID (\d+) INTERNALDATE "([^"\\]*)" \Z')

_MONTHS = {
    name.encode(): number
    for number, name in enumerate(
        "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1
    )
}
_DATE_TIME = re.compile(rb"( \d|\d\d)-([A-Z][a-z]{2})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-]\d{4})")
_ZONES: dict[bytes, timezone] = {}


def fetch(client: IMAPClient, uids: Sequence[int], items: Sequence[str]) -> Response:
    """`client.fetch(uids, items)` with UIDs (imapclient's default), the same result."""
    if not uids:
        return {}
    return read(client, *answer(client, send(client, uids, items)))


class Sent:
    """A `UID FETCH` sent and not answered yet (`send`): its tag and the UIDs it asked for."""

    __slots__ = ("tag", "uids")

    def __init__(self, tag: Any, uids: Sequence[int]) -> None:
        self.tag, self.uids = tag, uids


def send(client: IMAPClient, uids: Sequence[int], items: Sequence[str]) -> Sent:
    """Send `UID FETCH uids (items)` without waiting for its answer (`answer` reads it): the
    server prepares it while the last answer is parsed. Nothing but this command may be
    sent before its answer is read (a SELECT would change what its UIDs mean).

    imapclient keeps its imaplib connection in `_imap`; imaplib's `uid` is `_command` (send)
    then `_command_complete` (read up to the tagged answer), which `answer` calls."""
    imap = client._imap
    return Sent(
        imap._command("UID", "FETCH", join_message_ids(uids), seq_to_parenstr_upper(items)), uids
    )


def answer(client: IMAPClient, sent: Sent) -> tuple[list[Any], Sequence[int]]:
    """The raw answer (imaplib's FETCH data) to a `send`, read to its end, and its UIDs. The
    connection's deadline (imap_session) is armed afresh for the reading: the command may
    have waited while the caller stored a batch."""
    imap = client._imap
    deadline = _deadline(client)
    if deadline is not None:
        deadline.start()
    typ, data = imap._command_complete("UID", sent.tag)
    typ, data = imap._untagged_response(typ, data, "FETCH")
    if typ != "OK":
        raise IMAPClientError(f"fetch failed: {data!r}")
    return data, sent.uids


def pause(client: IMAPClient) -> None:
    """Stop the connection's deadline while the caller works (stores a batch) with a FETCH in
    flight: that is not the server's time; `answer` arms it afresh."""
    deadline = _deadline(client)
    if deadline is not None:
        deadline.stop()


def _deadline(client: IMAPClient) -> Any:
    """The connection's deadline (our sessions have one: connectors.mail.imap_session)."""
    return getattr(client._imap, "deadline", None)


def read(client: IMAPClient, data: list[Any], uids: Sequence[int]) -> Response:
    """An `answer` as `client.fetch` returns it: by UID, only the UIDs asked for."""
    response = parse(data, normalise_times=client.normalise_times)
    # As imapclient does: unsolicited answers about other messages are dropped.
    return {uid: response[uid] for uid in uids if uid in response}


def parse(data: list[Any], *, normalise_times: bool = False) -> Response:
    """imaplib's FETCH data as `parse_fetch_response(data, normalise_times)` gives it (by UID).

    `normalise_times` (imapclient's naive local times) is left to imapclient's parser."""
    if data == [None] or not data:
        return {}
    fast = None if normalise_times else _parse_common(data)
    if fast is not None:
        return fast
    return dict(parse_fetch_response(data, normalise_times, True))


def _parse_common(data: list[Any]) -> Response | None:
    """The usual answer, read with regular expressions; None when any part of it is not."""
    if len(data) % 2:
        return None
    response: Response = {}
    head_match, tail_match, item = _HEAD.match, _TAIL.match, _ITEM.findall
    usual_match = _USUAL.match
    for index in range(0, len(data), 2):
        part, tail = data[index], data[index + 1]
        if type(part) is not tuple or len(part) != 2 or type(tail) is not bytes:
            return None
        line = part[0]
        start, end = line.find(b"BODY["), line.rfind(b" {")
        if start < 0 or end < start or line[-1:] != b"}" or not line[end + 2 : -1].isdigit():
            return None
        section = line[start:end]
        section_name = _SECTIONS.get(section)
        if section_name is None:
            if _SECTION.fullmatch(section) is None:
                return None
            section_name = section.upper()
            if len(_SECTIONS) < 100:
                _SECTIONS[section] = section_name
        usual = usual_match(line, 0, start) if tail == b")" else None
        if usual is not None:  # Dovecot's and most servers' answer: read in one match
            seq_text, uid_text, date = usual.groups()
            record: dict[bytes, Any] = {
                b"SEQ": int(seq_text),
                b"INTERNALDATE": _internaldate(date),
                section_name: part[1],
            }
            _put(response, int(uid_text), record)
            continue
        head = head_match(line, 0, start)
        if head is None:
            return None
        after = tail_match(tail)
        if after is None:
            return None
        seq = int(head.group(1))
        key = seq
        record = {b"SEQ": seq}
        for field, number, quoted in item(head.group(2) + after.group(1)):
            field = field.upper()
            if field == b"UID":
                if not number:
                    return None  # a quoted UID: imapclient's parser decides
                key = int(number)
            elif field == b"INTERNALDATE":
                if number:
                    return None
                record[field] = _internaldate(quoted)
            else:
                record[field] = int(number) if number else quoted
        record[section_name] = part[1]
        _put(response, key, record)
    return response


def _put(response: Response, key: int, record: dict[bytes, Any]) -> None:
    found = response.get(key)
    if found is None:
        response[key] = record
    else:  # the same message answered twice: later items win, as in imapclient
        found.update(record)


def _internaldate(value: bytes) -> datetime | None:
    """`01-Oct-2026 08:31:00 +0000` (RFC 3501 date-time, the day may start with a space) as an
    aware datetime in its own offset; other forms as imapclient reads them."""
    found = _DATE_TIME.fullmatch(value)
    month = _MONTHS.get(found.group(2)) if found is not None else None
    if found is None or month is None:
        return _library_date(value)
    day, _, year, hour, minute, second, zone_text = found.groups()
    zone = _ZONES.get(zone_text)
    try:
        if zone is None:
            minutes = int(zone_text[1:3]) * 60 + int(zone_text[3:])
            zone = timezone(timedelta(minutes=-minutes if zone_text[:1] == b"-" else minutes))
            if len(_ZONES) < 1000:
                _ZONES[zone_text] = zone
        return datetime(
            int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=zone
        )
    except ValueError:  # 31-Feb, 24:00, an offset of a day or more: imapclient decides
        return _library_date(value)


def _library_date(value: bytes) -> datetime | None:
    try:
        parsed: datetime = parse_to_datetime(value, normalise=False)
    except (ValueError, OverflowError, IndexError, TypeError):  # no usable date: no arrival
        return None
    return parsed
