"""`UID FETCH` of header blocks for the `imap` connector: imapclient's `fetch`, minus the cost of
its response parser on the common shape of the answer.

imapclient lexes every FETCH response byte by byte in Python, and the server echoes the whole
section name with its field list (`BODY[HEADER.FIELDS (MESSAGE-ID IN-REPLY-TO ... )]`, about
250 bytes) in every message's response: on a first sync that lexing was about three quarters
of imapclient's whole fetch (cProfile of a bare imapclient script fetching 20,000 header
blocks), more than parsing the headers themselves.

So `fetch` sends the same command imapclient would (`UID FETCH 1,2,3 (ITEMS)`, through
imaplib's `_command`), and reads the usual answer (`n (ITEM value ... BODY[...] {size}`, the
literal, then `)` or more items) with two regular expressions. Only numbers, quoted strings
(INTERNALDATE) and one literal section are read this way; anything else in a response (an
unsolicited FLAGS update, a parenthesised list such as Gmail's labels, NIL, a quoted header
block) sends the whole response to imapclient's own `parse_fetch_response`. Either way the
result is what `IMAPClient.fetch` returns (tests hold the two equal on the same answers), and
protocol errors are imapclient's.

imaplib's own framing (a line at a time, a regular expression or two per line, each literal
read on its own) then cost as much again. On our connections (connectors.mail.imap_session)
the responses of Dovecot's usual shape (`* n FETCH (UID u INTERNALDATE "..." BODY[...]<0>
{size}`, the literal, `)`) are therefore read straight from the socket in 64 kB chunks, one
match each (`_read_usual`), and imaplib reads from the first other line on, as it read the whole
answer before (tests hold the result equal to `IMAPClient.fetch` however the bytes are cut).
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

from connectors.mail.imap_session import MAX_LITERAL

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
    return read(client, answer(client, send(client, uids, items)))


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


class Answer:
    """The answer to a `send`, read to its end (`answer`) and not parsed yet (`read`): the FETCH
    data imaplib held from before it (`earlier`), the usual responses at its start as read by
    `_read_usual`, and imaplib's FETCH data of the rest, in the order the server sent them."""

    __slots__ = ("earlier", "rest", "uids", "usual")

    def __init__(
        self, earlier: list[Any], usual: Response, rest: list[Any], uids: Sequence[int]
    ) -> None:
        self.earlier, self.usual, self.rest, self.uids = earlier, usual, rest, uids


def answer(client: IMAPClient, sent: Sent) -> Answer:
    """The answer to a `send`, read to its end. The connection's deadline (imap_session) is
    armed afresh for the reading: the command may have waited while the caller stored a batch.

    On our connections (imap_session: `unread`) the usual responses are read straight from the
    socket's buffered file by `_read_usual`, in large chunks; the first other line (the tagged
    one, as a rule) and everything after it are imaplib's, as the whole answer was before."""
    imap = client._imap
    deadline = _deadline(client)
    if deadline is not None:
        deadline.start()
    # FETCH data left from earlier commands (an unsolicited flag change) comes first, as when
    # imaplib held the whole answer after it.
    earlier = imap.untagged_responses.pop("FETCH", [])
    usual: Response = {}
    if hasattr(imap, "unread") and not client.normalise_times:
        usual = _read_usual(imap)
    typ, data = imap._command_complete("UID", sent.tag)
    typ, data = imap._untagged_response(typ, data, "FETCH")
    if typ != "OK":
        raise IMAPClientError(f"fetch failed: {data!r}")
    return Answer(earlier, usual, data, sent.uids)


# A usual response's line up to its literal (`* 12 FETCH (UID 7 INTERNALDATE "01-Oct-2026
# 08:31:00 +0000" BODY[HEADER.FIELDS (FROM TO)]<0> {288}` and CRLF), which `_parse_common`
# reads as it does `_USUAL` followed by a lone `)`: its head, then the section, then the
# literal's size. No `[` in the date, so that the section's `BODY[` is the line's first, where
# `_parse_common` looks for it. The section (some 250 bytes, the same in every response) is
# compared with the last one seen; a regular expression scanning it cost a twentieth of the
# whole child's work.
_USUAL_HEAD = re.compile(rb'\* (\d+) FETCH \(UID (\d+) INTERNALDATE "([^"\\\[\r\n]*)" ')
_USUAL_SECTION = re.compile(rb"BODY\[[^\]\[\r\n]*\](?:<\d+>)?")
_CHUNK = 1 << 16  # bytes asked of the socket at a time (TLS hands over up to 16 kB a read)
_LONGEST_LINE = 4096  # a usual response's line is about 300 bytes; a longer one is imaplib's


def _read_usual(imap: Any) -> Response:
    """The usual responses (`_USUAL_HEAD`, the literal, `)`) at the start of what `imap` has not
    read yet, by UID; they are consumed, and what follows them is left in `imap.unread`.

    imaplib reads a line at a time, through a regular expression or two per line, and each
    literal on its own: about half the CPU time of reading 20,000 header blocks. This reads
    large chunks and finds each response with one match. Memory stays bounded: a line is
    looked for within `_LONGEST_LINE` bytes, and a literal is read only once its size is seen
    to be within the limit (the server's word otherwise goes to imaplib, which refuses it).
    Anything else ends it: imaplib reads that (an error, the end of the stream) as before."""
    response: Response = {}
    buffer: bytes = imap.unread
    imap.unread = b""
    position = 0
    read = imap.file.read1
    head = _USUAL_HEAD.match
    section: bytes | None = None  # the last section read, and its name
    section_name = b""
    try:
        while True:
            line_end = buffer.find(b"\n", position) + 1
            if not line_end:
                if len(buffer) - position > _LONGEST_LINE:
                    return response
                chunk = read(_CHUNK)
                if not chunk:
                    return response
                buffer = buffer[position:] + chunk
                position = 0
                continue
            found = head(buffer, position, line_end)
            if found is None:
                return response
            at = found.end()
            if section is None or not buffer.startswith(section, at):
                named = _USUAL_SECTION.match(buffer, at, line_end)
                if named is None:
                    return response
                section = named[0]
                section_name = _SECTIONS.get(section) or section.upper()
                if len(_SECTIONS) < 100:
                    _SECTIONS[section] = section_name
            after = at + len(section)
            # ` {size}` CRLF, the line's end.
            digits = buffer[after + 2 : line_end - 3]
            if (
                buffer[after : after + 2] != b" {"
                or buffer[line_end - 3 : line_end] != b"}\r\n"
                or not digits.isdigit()
            ):
                return response
            size = int(digits)
            if size > MAX_LITERAL:
                return response
            seq, uid, date = found.groups()
            start = line_end
            end = start + size
            if len(buffer) < end + 3:  # the rest of the literal and `)` CRLF
                parts = [buffer[position:]]
                have, need = len(parts[0]), end + 3 - position
                while have < need:
                    chunk = read(_CHUNK)
                    if not chunk:
                        break
                    parts.append(chunk)
                    have += len(chunk)
                buffer = b"".join(parts)
                start, end, position = start - position, end - position, 0
                if have < need:
                    return response
            if buffer[end : end + 3] != b")\r\n":
                return response
            record: dict[bytes, Any] = {
                b"SEQ": int(seq),
                b"INTERNALDATE": _internaldate(date),
                section_name: buffer[start:end],
            }
            _put(response, int(uid), record)
            position = end + 3
    finally:
        imap.unread = buffer[position:]


def pause(client: IMAPClient) -> None:
    """Stop the connection's deadline while the caller works (stores a batch) with a FETCH in
    flight: that is not the server's time; `answer` arms it afresh."""
    deadline = _deadline(client)
    if deadline is not None:
        deadline.stop()


def _deadline(client: IMAPClient) -> Any:
    """The connection's deadline (our sessions have one: connectors.mail.imap_session)."""
    return getattr(client._imap, "deadline", None)


def read(client: IMAPClient, answered: Answer) -> Response:
    """An `answer` as `client.fetch` returns it: by UID, only the UIDs asked for."""
    normalise = client.normalise_times
    rest = parse(answered.rest, normalise_times=normalise)
    if not answered.earlier and not rest:  # the usual answer: `_read_usual` read it all
        response = answered.usual
    else:
        response = parse(answered.earlier, normalise_times=normalise) if answered.earlier else {}
        for part in (answered.usual, rest):
            for key, record in part.items():
                _put(response, key, record)
    # As imapclient does: unsolicited answers about other messages are dropped.
    uids = answered.uids
    if len(response) == len(uids) and response.keys() == set(uids):
        return response  # (each UID asked for answered once: nothing to drop)
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
    aware datetime in its own offset; other forms as imapclient reads them.

    A mailbox's messages arrive on a few days in a few zones: each day and zone is read once
    (`_day`), and then a message's time of day alone (a regular expression of seven groups per
    message cost more than a whole header block's reading)."""
    if len(value) == 26 and value[11] == value[20] == 32 and value[14] == value[17] == 58:
        day = _DAYS.get(value[:11] + value[20:])
        if day is None:
            day = _day(value)
        if day:
            hour, minute, second = value[12:14], value[15:17], value[18:20]
            if (hour + minute + second).isdigit() and hour < b"24" and minute < b"60":
                if second < b"60":
                    year, month, date, zone = day
                    return datetime(
                        year, month, date, int(hour), int(minute), int(second), tzinfo=zone
                    )
    return _read_internaldate(value)


# A day and zone (`01-Oct-2026 +0000`) -> (year, month, day, zone), or () for one that is not
# read so (`31-Feb-2026`, an offset of a day or more): its messages' times are read in full.
_DAYS: dict[bytes, tuple[Any, ...]] = {}


def _day(value: bytes) -> tuple[Any, ...]:
    """The day and zone of `value` (26 bytes: a date-time at its usual places) as
    `_read_internaldate` reads them, remembered; () when it would not read them itself."""
    found = _DATE_TIME.fullmatch(value[:12] + b"12:00:00" + value[20:])
    month = _MONTHS.get(found.group(2)) if found is not None else None
    day: tuple[Any, ...] = ()
    if found is not None and month is not None:
        try:
            zone = _zone(found.group(7))
            noon = datetime(int(found.group(3)), month, int(found.group(1)), 12, tzinfo=zone)
            day = (noon.year, noon.month, noon.day, zone)
        except ValueError:  # 31-Feb, an offset of a day or more
            pass
    if len(_DAYS) >= 10_000:
        _DAYS.clear()
    _DAYS[value[:11] + value[20:]] = day
    return day


def _zone(zone_text: bytes) -> timezone:
    """`+0130` as a fixed offset; ValueError for an offset of a day or more."""
    zone = _ZONES.get(zone_text)
    if zone is None:
        minutes = int(zone_text[1:3]) * 60 + int(zone_text[3:])
        zone = timezone(timedelta(minutes=-minutes if zone_text[:1] == b"-" else minutes))
        if len(_ZONES) < 1000:
            _ZONES[zone_text] = zone
    return zone


def _read_internaldate(value: bytes) -> datetime | None:
    """`_internaldate`, read in full."""
    found = _DATE_TIME.fullmatch(value)
    month = _MONTHS.get(found.group(2)) if found is not None else None
    if found is None or month is None:
        return _library_date(value)
    day, _, year, hour, minute, second, zone_text = found.groups()
    try:
        zone = _zone(zone_text)
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
