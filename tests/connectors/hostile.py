"""What an outsider can write into a record, as hypothesis strategies, and for every connector
kind a way to write good and hostile records where a source of that kind reads them.

Anyone can e-mail a support address or open a chat, so every field of every record may be
hostile: encoded words in charsets that do not decode, lone surrogates (a JSON `\\ud800`, a
UTF-7 word), control characters and escape sequences, huge and empty values, times that
overflow or are implausible, the wrong JSON types, bytes that are no text at all. A kind's
`Kind` turns these into records of its own format (a line, a message, a chat, a day file) with
a marker that keeps each record distinct, so that what one record does can be told apart.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import quopri
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# The settings of each kind's source: those of its malformed-input corpus.
CORPUS_SETTINGS = {
    name.split("/")[0]: entry["settings"]
    for name, entry in json.loads(
        (Path(__file__).parents[1] / "data" / "bad" / "MANIFEST.json").read_text()
    ).items()
}

# --- values -----------------------------------------------------------------------------------

ESCAPES = [
    "\x1b[2J\x1b[H",  # clear the screen
    "\x1b]0;pwned\x07",  # retitle the window
    "\r\nBcc: victim@example.com",  # a forged header or line
    "\rRESOLVED",  # a bare CR overwriting the line
    "\x9b31m",  # the 8-bit CSI
    "\u202egnp.exe",  # a right-to-left override
    "\u2028",  # a line separator
    "\x00",
]
CONTROLS = st.text(alphabet=st.characters(categories=("Cc",)), min_size=1, max_size=4) | (
    st.sampled_from(ESCAPES)
)
SURROGATES = st.text(
    alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3
)
CHARSETS = [
    "undefined",
    "idna",
    "utf-7",
    "rot13",
    "base64",
    "hex",
    "zlib",
    "uu",
    "punycode",
    "unicode_escape",
    "utf-16",
    "utf-32",
    "iso-2022-jp",
    "x-unknown",
    "",
    "utf-8",
    "mbcs",
]
ENCODED_WORDS = st.builds(
    "=?{}?{}?{}?=".format,
    st.sampled_from(CHARSETS),
    st.sampled_from("bqBQx"),
    st.text(alphabet=string.ascii_letters + string.digits + "+/=-_", max_size=16)
    | st.sampled_from(["+2AA-", "K2RnQS0=", "////", "AA==", "=FF=00=1B", "+AGQ-"]),
)
HUGE = st.sampled_from(["x", "é", "\ud800", "=?utf-8?q?a?= "]).map(lambda piece: piece * 2000)
PIECES = st.one_of(st.text(max_size=12), CONTROLS, SURROGATES, ENCODED_WORDS, HUGE, st.just(""))
TEXTS = st.lists(PIECES, min_size=1, max_size=3).map("".join)
# Times as text: overflowing (year 9999 behind UTC, year 1 ahead of it), implausible, malformed.
BAD_TIMES = st.sampled_from(
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "9000-01-01T00:00:00+00:00",
        "1999-12-31T23:59:59+00:00",
        "2026-11-25T00:00:00+00:00",
        "2026-13-45T99:99:99",
        "2026-11-20T09:00:00+25:00",
        "nan",
        "inf",
        "1e400",
        "-1",
        "0",
        "99999999999",
        "1e20",
        "",
    ]
)
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    TEXTS,
    BAD_TIMES,
)


def one_line(text: str) -> str:
    """A value that keeps a line-based record on its line (CR and the rest stay)."""
    return text.replace("\n", "\r")


def raw(text: str) -> bytes:
    """Text as a writer that does not check its output would write it: lone surrogates as the
    bytes they would have been."""
    return text.encode("utf-8", "surrogatepass")


# --- kinds ------------------------------------------------------------------------------------

Record = Any  # what a Kind's `write` takes: bytes for lines, dicts, message bytes


@dataclass
class Kind:
    """How a connector kind's records are written and found again.

    `good` are records every test mixes the hostile ones between; `keys` the external ids or
    conversations they are stored under. `hostile(n)` is a strategy for the n-th hostile record.
    `write` puts records where the source reads them and returns its `path`; `locate(records)`
    tells which of the records written a rejection's location names (None: none of them)."""

    name: str
    settings: dict[str, Any]
    good: list[Record]
    keys: set[str]
    hostile: Callable[[int], st.SearchStrategy[Record]]
    write: Callable[[Path, list[Record]], str]
    locate: Callable[[list[Record]], Callable[[str], int | None]]


def _lines(header: bytes | None, suffix: str) -> Callable[[Path, list[Record]], str]:
    def write(folder: Path, records: list[Record]) -> str:
        lines = ([header] if header is not None else []) + list(records)
        (folder / f"input{suffix}").write_bytes(b"\n".join(lines) + b"\n")
        return f"input{suffix}"

    return write


def _by_line(
    first_line: int, pattern: str, lines_of: Callable[[Record], int] = lambda r: r.count(b"\n") + 1
) -> Callable[[list[Record]], Callable[[str], int | None]]:
    """A locator for records written one after another from line `first_line`: a location
    matching `pattern` (its group 1 a line number) names the record holding that line."""

    def locate(records: list[Record]) -> Callable[[str], int | None]:
        owner, line = {}, first_line
        for index, record in enumerate(records):
            for offset in range(lines_of(record)):
                owner[line + offset] = index
            line += lines_of(record)

        def index(location: str) -> int | None:
            found = re.match(pattern, location)
            return owner.get(int(found.group(1))) if found else None

        return index

    return locate


def _at_start(pattern: str, starts: Callable[[list[Record]], dict[str, int]]) -> Any:
    def locate(records: list[Record]) -> Callable[[str], int | None]:
        known = starts(records)

        def index(location: str) -> int | None:
            found = re.match(pattern, location)
            return known.get(found.group(1)) if found else None

        return index

    return locate


LINE = r"input\.\w+:(\d+)(?: \.\S*)?$"


def _replace(template: dict[str, Any], values: dict[str, Any], marker: str) -> dict[str, Any]:
    """`template` with some fields replaced by hostile values; an id-like field keeps the
    marker in front so the record stays distinct."""
    record = dict(template)
    for key, value in values.items():
        if key in ("id", "conversation", "msg_id") and marker:
            if isinstance(value, str):
                value = marker + value
            elif isinstance(value, int) and not isinstance(value, bool):
                value = int(f"9{marker[1:]}{abs(value)}")  # an integer id, still distinct
            elif isinstance(value, float):
                value = float(f"9{marker[1:]}.5")  # a number id, still distinct
        record[key] = value
    return record


def _fields(keys: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), values, min_size=1, max_size=3)


JUNK = st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ") or b"x")


# chat_jsonl: one message a line.
def _chat_line(n: int) -> st.SearchStrategy[bytes]:
    template = {
        "conversation": f"h{n}",
        "at": "2026-11-20T10:00:00+00:00",
        "author_role": "customer",
        "author": "Dana",
        "text": "hello",
        "id": f"h{n}",
    }
    keys = ["conversation", "at", "author_role", "author", "text", "id", "event"]
    records = _fields(keys, JSON_VALUES).map(lambda v: _replace(template, v, f"h{n}"))
    return records.map(lambda r: json.dumps(r).encode()) | JUNK


CHAT_JSONL = Kind(
    "chat_jsonl",
    {},
    [
        json.dumps(
            {"conversation": f"g{i}", "at": at, "author_role": "customer", "id": f"g{i}"}
        ).encode()
        for i, at in enumerate(["2026-11-20T09:00:00Z", "2026-11-20T09:30:00Z"])
    ],
    {"g0", "g1"},
    _chat_line,
    _lines(None, ".jsonl"),
    _by_line(1, LINE),
)


# zendesk_chat: one chat a line (JSONL).
def _zendesk_line(n: int) -> st.SearchStrategy[bytes]:
    def chat(top: dict[str, Any], entry: dict[str, Any], visitor: dict[str, Any]) -> bytes:
        history = _replace(
            {"type": "chat.msg", "timestamp": "2026-11-20T10:00:00Z", "nick": "visitor:1"},
            entry,
            "",
        )
        base = {"id": f"h{n}", "type": "chat", "history": [history], "visitor": visitor}
        return json.dumps(_replace(base, top, f"h{n}")).encode()

    return (
        st.builds(
            chat,
            st.dictionaries(
                st.sampled_from(["id", "type", "end_timestamp", "agent_names", "history"]),
                JSON_VALUES,
                max_size=2,
            ),
            _fields(["type", "timestamp", "nick", "name", "msg_id", "sender_type"], JSON_VALUES),
            st.dictionaries(st.sampled_from(["name", "email", "id"]), JSON_VALUES, max_size=3),
        )
        | JUNK
    )


ZENDESK_CHAT = Kind(
    "zendesk_chat",
    {},
    [
        json.dumps(
            {
                "id": f"g{i}",
                "type": "chat",
                "visitor": {"name": "Dana"},
                "history": [
                    {"type": "chat.msg", "timestamp": at, "nick": "visitor:1", "msg_id": "1"}
                ],
            }
        ).encode()
        for i, at in enumerate(["2026-11-20T09:00:00Z", "2026-11-20T09:30:00Z"])
    ],
    {"g0", "g1"},
    _zendesk_line,
    _lines(None, ".jsonl"),
    _by_line(1, LINE),
)


# livechat: one chat a line (JSONL), v2 events or v3 threads.
def _livechat_line(n: int) -> st.SearchStrategy[bytes]:
    def chat(top: dict[str, Any], event: dict[str, Any], v3: bool) -> bytes:
        if v3:
            item = _replace(
                {"id": "e1", "type": "message", "created_at": "2026-11-20T10:00:00Z"}, event, ""
            )
            item.setdefault("author_id", "c1")
            base: dict[str, Any] = {
                "id": f"h{n}",
                "users": [{"id": "c1", "type": "customer", "name": event.get("name", "Dana")}],
                "threads": [{"id": "t1", "events": [item], "active": False}],
            }
        else:
            item = _replace(
                {"type": "message", "user_type": "visitor", "timestamp": 1795165200}, event, ""
            )
            base = {"id": f"h{n}", "events": [item], "visitor": {"name": event.get("name")}}
        return json.dumps(_replace(base, top, f"h{n}")).encode()

    keys = ["type", "user_type", "timestamp", "date", "created_at", "author_id", "name", "id"]
    return (
        st.builds(
            chat,
            st.dictionaries(
                st.sampled_from(["id", "timezone", "ended_timestamp", "users"]),
                JSON_VALUES,
                max_size=2,
            ),
            _fields(keys, JSON_VALUES),
            st.booleans(),
        )
        | JUNK
    )


LIVECHAT = Kind(
    "livechat",
    {},
    [
        json.dumps(
            {
                "id": f"g{i}",
                "events": [{"type": "message", "user_type": "visitor", "timestamp": epoch}],
            }
        ).encode()
        for i, epoch in enumerate([1795165200, 1795167000])
    ],
    {"g0", "g1"},
    _livechat_line,
    _lines(None, ".jsonl"),
    _by_line(1, LINE),
)

# slack_export: each record is a day file of one message (or bytes that are not one).
SLACK_USERS = [
    {"id": "U01AGENT", "team_id": "T01", "real_name": "Sam"},
    {"id": "U02CUST", "is_stranger": True, "real_name": "Dana"},
]


def _slack_day(n: int) -> st.SearchStrategy[Any]:
    # A day file is known by its content (two equal ones are one re-export): the client's
    # message id keeps the hostile ones distinct whatever else they hold.
    template = {
        "type": "message",
        "user": "U02CUST",
        "ts": f"1795{n:06d}.000100",
        "text": "hi",
        "client_msg_id": f"h{n}",
    }
    keys = ["type", "user", "ts", "thread_ts", "subtype", "bot_id", "user_team", "hidden"]
    profile = st.builds(lambda name: {"real_name": name}, JSON_VALUES)
    message = st.builds(
        lambda fields, who: {**_replace(template, fields, ""), "user_profile": who},
        _fields(keys, JSON_VALUES),
        profile,
    )
    return st.lists(message, min_size=1, max_size=1) | JUNK.map(lambda b: b"h%d" % n + b)


def _slack_write(folder: Path, records: list[Any]) -> str:
    export = folder / "input"
    (export / "support").mkdir(parents=True, exist_ok=True)
    (export / "users.json").write_text(json.dumps(SLACK_USERS))
    (export / "channels.json").write_text(json.dumps([{"id": "C01", "name": "support"}]))
    for day, record in enumerate(records, start=1):
        data = record if isinstance(record, bytes) else json.dumps(record).encode()
        (export / "support" / f"2026-11-{day:02d}.json").write_bytes(data)
    return "input"


_slack_index = _at_start(
    r"input/support/2026-11-(\d\d)\.json(?: \.\[\d+\])?$",
    lambda records: {f"{day:02d}": day - 1 for day in range(1, len(records) + 1)},
)


SLACK_EXPORT = Kind(
    "slack_export",
    {"channels": ["support"]},
    [
        [{"type": "message", "user": "U02CUST", "ts": ts}]
        for ts in ("1795165200.000100", "1795167000.000100")
    ],
    {"C01:1795165200.000100", "C01:1795167000.000100"},
    _slack_day,
    _slack_write,
    _slack_index,
)


# The e-mail kinds: a header block; hostile values in any header, and in its arrival time.
def _message(n: int) -> st.SearchStrategy[bytes]:
    names = ["From", "To", "Subject", "Message-ID", "Date", "In-Reply-To", "References"]
    names += ["X-GM-THRID", "Auto-Submitted", "Content-Type", "Return-Path"]

    def build(values: dict[str, str]) -> bytes:
        fields = {
            "From": "dana@customer.test",
            "To": "support@example.com",
            "Subject": f"h{n} hello",
            "Message-ID": f"<h{n}@customer.test>",
        }
        for name, value in values.items():
            fields[name] = one_line(value).replace("\r", " ")
        if "Message-ID" in values:  # broken as it may be, never another message's id
            fields["Message-ID"] = f"<h{n}{fields['Message-ID']}>"
        fields["Subject"] = f"h{n} {fields['Subject']}"  # distinct, whatever else it holds
        return b"".join(raw(f"{k}: {v}") + b"\n" for k, v in fields.items())

    return _fields(names, TEXTS | BAD_TIMES).map(build)


def _good_message(i: int) -> bytes:
    return (
        f"From: dana@customer.test\nTo: support@example.com\nSubject: question {i}\n"
        f"Message-ID: <g{i}@customer.test>\n"
    ).encode()


GOOD_MAIL_KEYS = {"<g0@customer.test>", "<g1@customer.test>"}
# mbox: a message starts at its `From ` line; its date is its arrival.
FROM_DATES = st.sampled_from(
    [
        "Fri Dec 31 23:59:59 -0100 9999",
        "Mon Jan 01 00:00:00 +0100 0001",
        "Sat Jan 01 00:00:00 9000",
        "Fri Dec 31 23:59:59 1999",
        "Fri Nov 20 10:00:00 2026",
        "Fri Nov 20 10:00:00 +9999 2026",
        "Feb 31 10:00:00 2026",
    ]
)


def _mbox_message(n: int) -> st.SearchStrategy[tuple[str, bytes]]:
    return st.tuples(FROM_DATES, _message(n))


def _mbox_write(folder: Path, records: list[Any]) -> str:
    out = b""
    for date, header in records:
        out += f"From MAILER-DAEMON {date}\n".encode() + header + b"\nbody\n\n"
    (folder / "input.mbox").write_bytes(out)
    return "input.mbox"


MBOX = Kind(
    "mbox",
    {},
    [
        ("Fri Nov 20 09:00:00 2026", _good_message(0)),
        ("Fri Nov 20 09:30:00 2026", _good_message(1)),
    ],
    GOOD_MAIL_KEYS,
    _mbox_message,
    _mbox_write,
    # A message is its From line, its header, an empty line, a body line and an empty line;
    # it is located at its From line.
    _by_line(1, r"input\.mbox:(\d+)$", lambda record: record[1].count(b"\n") + 4),
)


# maildir: one file a message, delivered at a plausible time.
def _maildir_write(folder: Path, records: list[Any]) -> str:
    for sub in ("cur", "new", "tmp"):
        (folder / "input" / sub).mkdir(parents=True, exist_ok=True)
    for index, header in enumerate(records):
        stamp = 1795165200 + 60 * index
        path = folder / "input" / "cur" / f"{stamp}.M{index}P1.mx:2,S"
        path.write_bytes(header + b"\nbody\n")
        os.utime(path, (stamp, stamp))
    return "input"


_maildir_index = _at_start(
    r"input/cur/\d+\.M(\d+)P1\.mx:2,S$",
    lambda records: {str(index): index for index in range(len(records))},
)


MAILDIR = Kind(
    "maildir",
    {"sent_folder": None},
    [_good_message(0), _good_message(1)],
    GOOD_MAIL_KEYS,
    _message,
    _maildir_write,
    _maildir_index,
)


# answering_service_mail: notifications in an mbox. An outsider can write every part of one (the
# mail can be forged): its headers, each labelled field of its body, the body's charset and
# transfer encoding, HTML instead of text, or a body that is no text at all.
NOTIFICATION_SETTINGS = {
    "from": "mbox",
    "senders": ["answering.example"],
    "patterns": {
        "id": r"Message ID:[ \t]*(?P<value>\S+)",
        "taken_at": r"Taken:[ \t]*(?P<value>.+)",
        "caller": r"Caller:[ \t]*(?P<value>.+)",
        "callback_number": r"Call back on:[ \t]*(?P<value>[+\d ()-]{7,})",
        "urgency": r"Urgency:[ \t]*(?P<value>\w+)",
        "callback_at": r"Returned:[ \t]*(?P<value>.+)",
    },
    "time_format": ["%d/%m/%Y %H:%M", "iso"],
}
_LABELS = ["Message ID", "Taken", "Caller", "Call back on", "Urgency", "Returned", "Message"]


def notification_bytes(
    n: str, body: dict[str, str], headers: dict[str, str], charset: str, cte: str, html: bool
) -> bytes:
    """A notification: `body` fields in the neutral layout (a table when `html`), encoded as
    `cte` says, under `headers`. Its `Message ID` field starts with `n`, so it stays distinct."""
    fields = {"Message ID": n, "Taken": "20/11/2026 10:00", "Caller": "Dana"}
    fields |= {"Call back on": "+44 20 7946 0003", "Message": "hello"}
    for label, value in body.items():
        fields[label] = n + value if label == "Message ID" else value
    if html:
        rows = "".join(f"<tr><td>{k}:</td><td>{v}</td></tr>" for k, v in fields.items())
        text = f"<html><body><table>{rows}</table></body></html>"
    else:
        text = "\n".join(f"{k}: {v}" for k, v in fields.items())
    payload = raw(text)
    if cte == "base64":
        payload = base64.encodebytes(payload)
    elif cte == "quoted-printable":
        payload = quopri.encodestring(payload)
    head = {
        "From": "Front Desk <messages@answering.example>",
        "To": "support@example.com",
        "Subject": f"{n} new message",
        "Message-ID": f"<{n}@answering.example>",
        "MIME-Version": "1.0",
        "Content-Type": f'text/{"html" if html else "plain"}; charset="{charset}"',
        "Content-Transfer-Encoding": cte,
    }
    for name, value in headers.items():
        head[name] = one_line(value).replace("\r", " ")
    block = b"".join(raw(f"{k}: {v}") + b"\n" for k, v in head.items())
    return block + b"\n" + payload.rstrip(b"\n") + b"\n"


def _notification(n: int) -> st.SearchStrategy[tuple[str, bytes]]:
    marker = f"h{n}"
    body = st.dictionaries(st.sampled_from(_LABELS), (TEXTS | BAD_TIMES).map(one_line), max_size=3)
    headers = st.dictionaries(
        st.sampled_from(["From", "Subject", "Date", "Message-ID", "Content-Type"]),
        TEXTS | BAD_TIMES,
        max_size=2,
    )
    built = st.builds(
        lambda b, h, charset, cte, html: notification_bytes(marker, b, h, charset, cte, html),
        body,
        headers,
        st.sampled_from(CHARSETS),
        st.sampled_from(["8bit", "base64", "quoted-printable", "x-junk", ""]),
        st.booleans(),
    )
    junk = JUNK.map(lambda b: notification_bytes(marker, {}, {}, "utf-8", "8bit", False) + b)
    return st.tuples(FROM_DATES, built | junk)


def _notifications_write(folder: Path, records: list[Any]) -> str:
    out = b""
    for date, message in records:
        lines = message.split(b"\n")
        quoted = [b">" + line if line.lstrip(b">").startswith(b"From ") else line for line in lines]
        out += f"From messages@answering.example {date}\n".encode()
        out += b"\n".join(quoted).rstrip(b"\n") + b"\n\n"
    (folder / "input.mbox").write_bytes(out)
    os.utime(folder / "input.mbox", (0, 0))  # not being written: its last message is whole
    return "input.mbox"


ANSWERING_SERVICE_MAIL = Kind(
    "answering_service_mail",
    NOTIFICATION_SETTINGS,
    [
        ("Fri Nov 20 09:00:00 2026", notification_bytes("g0", {}, {}, "utf-8", "8bit", False)),
        ("Fri Nov 20 09:30:00 2026", notification_bytes("g1", {}, {}, "utf-8", "base64", True)),
    ],
    {"msg:g0", "msg:g1"},
    _notification,
    _notifications_write,
    # A notification is its From line, its lines and the empty line that ends it.
    _by_line(
        1,
        r"input\.mbox:(\d+)$",
        lambda record: record[1].rstrip(b"\n").count(b"\n") + 3,
    ),
)


# asterisk_queue_log: a good call is three lines; a hostile record is one line.
def _queue_log_line(n: int) -> st.SearchStrategy[bytes]:
    def line(values: dict[int, str], verb: str) -> bytes:
        fields = ["1795168800", f"h{n}", "support", "NONE", verb, "5", "60", "1"]
        for position, value in values.items():
            fields[position] = one_line(value) if position != 1 else f"h{n}" + one_line(value)
        return raw("|".join(fields))

    verbs = st.sampled_from(
        ["ENTERQUEUE", "CONNECT", "COMPLETECALLER", "ABANDON", "EXITWITHKEY", "ATTENDEDTRANSFER"]
    )
    values = st.dictionaries(st.integers(0, 7), TEXTS | BAD_TIMES, min_size=1, max_size=3)
    return st.builds(line, values, verbs) | JUNK


def _good_call(i: int) -> bytes:
    t = 1795165200 + 1800 * i
    return (
        f"{t}|g{i}|support|NONE|ENTERQUEUE||02079460001|1\n"
        f"{t + 20}|g{i}|support|SIP/201|CONNECT|20|g{i}.9|3\n"
        f"{t + 80}|g{i}|support|SIP/201|COMPLETECALLER|20|60|1"
    ).encode()


ASTERISK_QUEUE_LOG = Kind(
    "asterisk_queue_log",
    {},
    [_good_call(0), _good_call(1)],
    {"g0@support@1795165200", "g1@support@1795167000"},
    _queue_log_line,
    _lines(None, ".log"),
    _by_line(1, LINE),
)


def csv_line(fields: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return raw(out.getvalue())


# asterisk_cdr: cdr_csv with linkedid (19 columns), one answered inbound leg a call.
_CDR = '|02079460001|6000|from-pstn|"" <02079460001>|SIP/trunk-1|SIP/201-2|Dial|SIP/201'


def cdr_fields(key: str, start: str, end: str) -> list[str]:
    return [
        *_CDR.split("|"),
        start,
        start,
        end,
        "60",
        "55",
        "ANSWERED",
        "DOCUMENTATION",
        "",
        key,
        "1",
    ]


def _cdr_line(n: int) -> st.SearchStrategy[bytes]:
    def line(values: dict[int, str]) -> bytes:
        fields = cdr_fields(f"h{n}", "2026-11-20 10:00:00", "2026-11-20 10:01:00")
        for position, value in values.items():
            fields[position] = one_line(value) if position != 17 else f"h{n}" + one_line(value)
        return csv_line(fields)

    return (
        st.dictionaries(st.integers(0, 18), TEXTS | BAD_TIMES, min_size=1, max_size=3).map(line)
        | JUNK
    )


ASTERISK_CDR = Kind(
    "asterisk_cdr",
    CORPUS_SETTINGS["asterisk_cdr"],
    [
        csv_line(cdr_fields("g0", "2026-11-20 09:00:00", "2026-11-20 09:01:00")),
        csv_line(cdr_fields("g1", "2026-11-20 09:30:00", "2026-11-20 09:31:00")),
    ],
    {"call:g0", "call:g1"},
    _cdr_line,
    _lines(None, ".csv"),
    _by_line(1, LINE),
)


def _row_strategy(template: list[str], key: int) -> Callable[[int], st.SearchStrategy[bytes]]:
    def hostile(n: int) -> st.SearchStrategy[bytes]:
        def line(values: dict[int, str]) -> bytes:
            fields = [f"h{n}", *template[1:]]
            for position, value in values.items():
                value = one_line(value).replace('"', "'")
                fields[position] = f"h{n}" + value if position == key else value
            return csv_line(fields)

        junk = JUNK.map(lambda b: b.replace(b'"', b"'"))  # an open quote spans lines by design
        positions = st.integers(0, len(template) - 1)
        return (
            st.dictionaries(positions, TEXTS | BAD_TIMES, min_size=1, max_size=3).map(line) | junk
        )

    return hostile


CALL_CSV = Kind(
    "call_csv",
    CORPUS_SETTINGS["call_csv"],
    [
        b"g0,2026-11-20 09:00:00,2026-11-20 09:00:30,2026-11-20 09:04:00,+44 20 7946 0001",
        b"g1,2026-11-20 09:30:00,2026-11-20 09:30:30,2026-11-20 09:34:00,+44 20 7946 0002",
    ],
    {"call:g0", "call:g1"},
    _row_strategy(
        ["", "2026-11-20 10:00:00", "", "2026-11-20 10:04:00", "+44 20 7946 0003"], key=0
    ),
    _lines(b"id,start,answer,end,from", ".csv"),
    _by_line(2, LINE),
)

ANSWERING_SERVICE_CSV = Kind(
    "answering_service_csv",
    CORPUS_SETTINGS["answering_service_csv"],
    [b"g0,2026-11-20 09:00,+44 20 7946 0001,", b"g1,2026-11-20 09:30,+44 20 7946 0002,"],
    {"msg:g0", "msg:g1"},
    _row_strategy(["", "2026-11-20 10:00", "+44 20 7946 0003", ""], key=0),
    _lines(b"id,taken_at,callback_number,callback_at", ".csv"),
    _by_line(2, LINE),
)

KINDS = {
    kind.name: kind
    for kind in (
        CHAT_JSONL,
        ZENDESK_CHAT,
        LIVECHAT,
        SLACK_EXPORT,
        MBOX,
        MAILDIR,
        ASTERISK_QUEUE_LOG,
        ASTERISK_CDR,
        CALL_CSV,
        ANSWERING_SERVICE_CSV,
        ANSWERING_SERVICE_MAIL,
    )
}
