"""Malformed and hostile input. The corpus (tests/data/bad/): every bad record is rejected with
its file:line and a reason, every good record around it is stored. The fuzz suite (hypothesis,
one property per connector kind, values from tests/connectors/hostile.py): one hostile record among
good ones fails no more than itself, whatever an outsider wrote into it.

`FUZZ_PROFILE=fuzz` (`make fuzz`) runs the fuzz suite with many more examples than CI does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from monitor.config_file import settings_from_mapping
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import PollResult, poll_source
from monitor.store.tables import CALLS, MESSAGES
from tests.connectors.hostile import KINDS, NOW, Kind, Record, cdr_fields, csv_line
from tests.connectors.hostile import SLACK_USERS as MEMBERS
from tests.mailboxes import Mailbox
from tests.servers import DovecotServer

CORPUS = Path(__file__).parents[1] / "data" / "bad"
MANIFEST: dict[str, dict[str, Any]] = json.loads((CORPUS / "MANIFEST.json").read_text())
GIANT_LINE = b"x" * 1_100_000


SUFFIXES = {"chat_jsonl": ".jsonl", "zendesk_chat": ".jsonl", "livechat": ".jsonl", "mbox": ".mbox"}
# The export around a slack_export corpus: one line of the corpus file is one day file.
SLACK_USERS = b'[{"id": "U01AGENT", "team_id": "T01"}, {"id": "U02CUST", "is_stranger": true}]'
SLACK_CHANNELS = b'[{"id": "C01", "name": "support"}]'
# Where a rejection may be: a file and line, a JSON document, a day file; then a jq path; or a
# Maildir file's folder/cur/name.
LOCATION = re.compile(
    r"input(\.\w+(:\d+)?|/support/2026-11-\d\d\.json)( \.\S+)?$|^input/(cur|new)/[^/]+$"
)


def expand(data: bytes) -> bytes:
    return data.replace(b"@@GIANT@@", GIANT_LINE)


def write_input(folder: Path, kind: str, data: bytes | Path, suffix: str) -> str:
    """Write `data` (a file's bytes, or a Maildir copied with its placeholders expanded) where a
    source of `kind` reads it; return the source's `path`."""
    if isinstance(data, Path):
        shutil.rmtree(folder / "input", ignore_errors=True)
        shutil.copytree(data, folder / "input")
        for path in (folder / "input").rglob("*"):
            if path.is_file():
                path.write_bytes(expand(path.read_bytes()))
        return "input"
    if kind != "slack_export":
        (folder / f"input{suffix}").write_bytes(data)
        return f"input{suffix}"
    export = folder / "input"
    (export / "support").mkdir(parents=True, exist_ok=True)
    (export / "users.json").write_bytes(SLACK_USERS)
    (export / "channels.json").write_bytes(SLACK_CHANNELS)
    for day, content in enumerate(data.split(b"\n")[:-1], start=1):
        (export / "support" / f"2026-11-{day:02d}.json").write_bytes(content)
    return "input"


def poll_file(
    folder: Path, kind: str, extra: dict[str, Any], data: bytes | Path, suffix: str | None = None
) -> tuple[PollResult, int, int]:
    path = write_input(folder, kind, data, suffix or SUFFIXES.get(kind, ".csv"))
    source = {"name": "bad", "kind": kind, "path": path, **extra}
    config = settings_from_mapping({"sources": [source]}, folder)
    engine = make_engine(f"sqlite:///{folder}/monitor.db", folder)
    prepare(engine)
    result = poll_source(engine, config, config.sources[0], now=NOW, clock=lambda: NOW)
    with engine.connect() as conn:
        messages = conn.execute(select(func.count()).select_from(MESSAGES)).scalar_one()
        calls = conn.execute(select(func.count()).select_from(CALLS)).scalar_one()
    engine.dispose()
    return result, messages, calls


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_each_bad_record_is_rejected_with_its_line_and_the_rest_is_stored(
    tmp_path: Path, name: str
) -> None:
    expected = MANIFEST[name]
    corpus = CORPUS / name
    data = corpus if corpus.is_dir() else expand(corpus.read_bytes())
    result, messages, calls = poll_file(
        tmp_path, expected["kind"], expected["settings"], data, corpus.suffix or None
    )
    assert result.ok, result.error
    assert result.rejected == expected["rejected"]
    assert (messages, calls) == (expected["messages"], expected["calls"])
    for rejection in result.rejections:
        assert LOCATION.search(rejection.location), rejection
        assert rejection.reason and "\n" not in rejection.reason
        assert "x" * 100 not in rejection.reason  # a reason never echoes the record
    # A second poll of the same file adds and rejects nothing.
    again, messages_again, calls_again = poll_file(
        tmp_path, expected["kind"], expected["settings"], data, corpus.suffix or None
    )
    assert (again.rejected, messages_again, calls_again) == (0, messages, calls)


# --- the fuzz suite ---------------------------------------------------------------------------

settings.register_profile(
    "ci",
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("fuzz", settings.get_profile("ci"), max_examples=250)
FUZZ = settings.get_profile(os.environ.get("FUZZ_PROFILE", "ci"))
HOSTILE_COUNT = st.integers(1, 3)


class Seen:
    """What one poll of some records did: its result, the rows it stored (messages and calls)
    and their keys (external ids and conversations)."""

    def __init__(self, result: PollResult, rows: int, keys: set[str]) -> None:
        self.result, self.rows, self.keys = result, rows, keys


def poll_records(folder: Path, kind: Kind, records: list[Record]) -> Seen:
    path = kind.write(folder, records)
    source = {"name": "hostile", "kind": kind.name, "path": path, **kind.settings}
    return poll_config(folder, {"agents": {"domains": ["example.com"]}, "sources": [source]})


def poll_config(folder: Path, raw: dict[str, Any]) -> Seen:
    config = settings_from_mapping(raw, folder)
    engine = make_engine(f"sqlite:///{folder}/monitor.db", folder)
    prepare(engine)
    try:
        result = poll_source(engine, config, config.sources[0], now=NOW, clock=lambda: NOW)
        keys: set[str] = set()
        rows = 0
        with engine.connect() as conn:
            for table in (MESSAGES, CALLS):
                found = conn.execute(select(table)).mappings().all()
                rows += len(found)
                keys.update(r["external_id"] for r in found)
                keys.update(r["conversation"] for r in found if "conversation" in r)
    finally:
        engine.dispose()
    return Seen(result, rows, keys)


_GOOD_ROWS: dict[str, int] = {}


def assert_isolated(
    kind: Kind,
    hostile: list[Record],
    poll: Any,
    caplog: pytest.LogCaptureFixture,
) -> Seen:
    """`hostile` records between two good ones: the poll completes (exit 0, no traceback), the
    good records are stored, every rejection names a hostile record, and the mix stores and
    rejects exactly what each hostile record stores and rejects on its own: no record changes
    what happens to another. `poll(records)` polls a fresh source holding `records`."""
    caplog.clear()
    records = [kind.good[0], *hostile, kind.good[1]]
    mixed = poll(records)
    assert mixed.result.ok, mixed.result.error
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []  # no traceback
    assert kind.keys <= mixed.keys, "a good record was not stored"
    locate = kind.locate(records)
    for rejection in mixed.result.rejections:
        assert locate(rejection.location) in range(1, len(hostile) + 1), rejection
        assert rejection.reason and not set(rejection.reason) & set("\r\n\x00\x1b")
        assert "x" * 100 not in rejection.reason  # a reason never echoes the record
    if kind.name not in _GOOD_ROWS:
        _GOOD_ROWS[kind.name] = poll(kind.good).rows
    alone = [poll([record]) for record in hostile]
    assert mixed.result.rejected == sum(a.result.rejected for a in alone)
    assert mixed.rows == _GOOD_ROWS[kind.name] + sum(a.rows for a in alone)
    return mixed


@pytest.mark.parametrize("name", sorted(KINDS))
@FUZZ
@given(data=st.data())
def test_a_hostile_record_fails_no_more_than_itself(
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
    name: str,
    data: st.DataObject,
) -> None:
    kind = KINDS[name]
    hostile = [data.draw(kind.hostile(n), f"hostile {n}") for n in range(data.draw(HOSTILE_COUNT))]
    assert_isolated(
        kind,
        hostile,
        lambda records: poll_records(tmp_path_factory.mktemp(name), kind, records),
        caplog,
    )


def poll_mailbox(dovecot: DovecotServer, messages: list[bytes]) -> Seen:
    """A fresh mailbox holding `messages` (INBOX, arrived an hour apart before NOW), polled."""
    mailbox = Mailbox(dovecot, dovecot.new_user())
    for index, header in enumerate(messages):
        # Appended one by one: a message the server refuses is simply not there.
        arrived = NOW.replace(hour=1 + index)
        message = header.replace(b"\n", b"\r\n") + b"\r\nbody\r\n"
        try:
            mailbox.append("INBOX", [(message, arrived)])
        except Exception:  # noqa: BLE001 - what Dovecot refuses cannot reach the connector
            reject()  # (and would take no UID, so the UIDs would not name the records)
    folder = Path(dovecot.root) / "polls" / mailbox.user
    folder.mkdir(parents=True)
    raw = {"agents": {"domains": ["example.com"]}, "sources": [mailbox.source()]}
    return poll_config(folder, raw)


IMAP = Kind(
    "imap",
    {},
    KINDS["maildir"].good,
    KINDS["maildir"].keys,
    KINDS["maildir"].hostile,
    lambda folder, records: "",
    # UIDs are given in append order (a refused message takes none; it is then not counted).
    lambda records: (
        lambda location: (
            int(found.group(1)) - 1 if (found := re.match(r"INBOX uid (\d+)$", location)) else None
        )
    ),
)


@FUZZ
@given(data=st.data())
def test_a_hostile_message_in_a_mailbox_fails_no_more_than_itself(
    dovecot: DovecotServer, caplog: pytest.LogCaptureFixture, data: st.DataObject
) -> None:
    hostile = [data.draw(IMAP.hostile(n), f"hostile {n}") for n in range(data.draw(HOSTILE_COUNT))]
    assert_isolated(IMAP, hostile, lambda records: poll_mailbox(dovecot, records), caplog)


# --- the attacks that stopped a source, as fixed examples --------------------------------------


def poll_kind(request: pytest.FixtureRequest, name: str, hostile: list[Record]) -> Seen:
    """`hostile` between the good records of kind `name`, checked by `assert_isolated`."""
    caplog = request.getfixturevalue("caplog")
    if name == "imap":
        dovecot = request.getfixturevalue("dovecot")
        return assert_isolated(IMAP, hostile, lambda r: poll_mailbox(dovecot, r), caplog)
    kind = KINDS[name]
    factory = request.getfixturevalue("tmp_path_factory")
    return assert_isolated(
        kind, hostile, lambda records: poll_records(factory.mktemp(name), kind, records), caplog
    )


def mail(subject: bytes = b"h0 hello", **headers: str) -> bytes:
    lines = [b"From: dana@customer.test", b"To: support@example.com", b"Subject: " + subject]
    lines += [f"{name.replace('_', '-')}: {value}".encode() for name, value in headers.items()]
    return b"\n".join([*lines, b"Message-ID: <h0@customer.test>"]) + b"\n"


@pytest.mark.parametrize("kind", ["imap", "mbox", "maildir"])
@pytest.mark.parametrize(
    "word", [b"=?undefined?q?x?=", b"=?idna?q?x?=", b"=?utf-7?q?+2AA-?="], ids=str
)
def test_an_encoded_word_in_an_unusable_charset_costs_its_message_nothing(
    request: pytest.FixtureRequest, kind: str, word: bytes
) -> None:
    """Each of these failed the whole batch, on every poll: the mailbox was not measured."""
    header = mail(b"h0 " + word)
    seen = poll_kind(
        request, kind, [("Fri Nov 20 10:00:00 2026", header) if kind == "mbox" else header]
    )
    assert (seen.result.rejected, "<h0@customer.test>" in seen.keys) == (0, True)


OVERFLOW_AHEAD, OVERFLOW_BEHIND = "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"


def _json(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


# A record of each kind whose time overflows when moved to UTC (`{}` is the time).
OVERFLOWING = {
    "chat_jsonl": lambda t: _json(
        {"conversation": "h0", "at": t, "author_role": "customer", "id": "h0"}
    ),
    "zendesk_chat": lambda t: _json(
        {
            "id": "h0",
            "type": "chat",
            "history": [{"type": "chat.msg", "timestamp": t, "nick": "visitor:1"}],
        }
    ),
    "livechat": lambda t: _json(
        {
            "id": "h0",
            "users": [{"id": "c1", "type": "customer"}],
            "threads": [
                {
                    "id": "t",
                    "events": [{"id": "e", "type": "message", "created_at": t, "author_id": "c1"}],
                }
            ],
        }
    ),
    "asterisk_cdr": lambda t: csv_line(cdr_fields("h0", t, t)),
    "call_csv": lambda t: f"h0,{t},,{t},+44 20 7946 0003".encode(),
    "answering_service_csv": lambda t: f"h0,{t},+44 20 7946 0003,".encode(),
}


@pytest.mark.parametrize("kind", sorted(OVERFLOWING))
@pytest.mark.parametrize("time", [OVERFLOW_AHEAD, OVERFLOW_BEHIND])
def test_a_time_that_overflows_rejects_only_its_record(
    request: pytest.FixtureRequest, kind: str, time: str
) -> None:
    seen = poll_kind(request, kind, [OVERFLOWING[kind](time)])
    assert seen.result.rejected == 1


def test_an_mbox_from_line_in_the_year_9999_rejects_only_its_message(
    request: pytest.FixtureRequest,
) -> None:
    # Behind UTC it overflows (then the Date header would time it: there is none, so rejected);
    # without an offset it is a time, but not a plausible one.
    for date in ("Fri Dec 31 23:59:59 -0100 9999", "Fri Dec 31 23:59:59 9999"):
        seen = poll_kind(request, "mbox", [(date, mail())])
        assert seen.result.rejected == 1, date


def test_a_queue_log_table_time_that_overflows_rejects_only_its_row(tmp_path: Path) -> None:
    header = "time,callid,queuename,agent,event,data1,data2,data3,data4,data5"
    rows = [
        "1795165200,g0,support,NONE,ENTERQUEUE,,02079460001,1,,",
        f"{OVERFLOW_AHEAD},h0,support,NONE,ENTERQUEUE,,02079460002,1,,",
        "1795165260,g0,support,SIP/201,CONNECT,60,x,1,,",
        "1795165320,g0,support,SIP/201,COMPLETECALLER,60,60,1,,",
    ]
    (tmp_path / "queue_log.csv").write_text("\n".join([header, *rows]) + "\n")
    source = {"name": "q", "kind": "asterisk_queue_log", "path": "queue_log.csv", "format": "csv"}
    seen = poll_config(tmp_path, {"sources": [source]})
    assert seen.result.ok, seen.result.error
    assert [r.location for r in seen.result.rejections] == ["queue_log.csv:3"]
    assert "g0@support@1795165200" in seen.keys


SURROGATE = "\ud800"
# A name or an id written as the JSON escape `\ud800`, in each chat kind.
SURROGATES = {
    "chat_jsonl": _json(
        {
            "conversation": f"h0{SURROGATE}",
            "at": "2026-11-20T10:00:00Z",
            "author_role": "customer",
            "author": SURROGATE,
            "id": f"h0{SURROGATE}",
        }
    ),
    "zendesk_chat": _json(
        {
            "id": f"h0{SURROGATE}",
            "type": "chat",
            "visitor": {"name": SURROGATE},
            "history": [
                {"type": "chat.msg", "timestamp": "2026-11-20T10:00:00Z", "nick": "visitor:1"}
            ],
        }
    ),
    "livechat": _json(
        {
            "id": f"h0{SURROGATE}",
            "visitor": {"name": SURROGATE},
            "events": [{"type": "message", "user_type": "visitor", "timestamp": 1795168800}],
        }
    ),
    "slack_export": [
        {
            "type": "message",
            "user": "U0NEW",
            "ts": "1795168800.000100",
            "user_profile": {"real_name": SURROGATE},
        }
    ],
}


@pytest.mark.parametrize("kind", sorted(SURROGATES))
def test_a_json_surrogate_in_a_name_or_id_is_stored_as_a_replacement_character(
    request: pytest.FixtureRequest, kind: str
) -> None:
    """The database refused the lone surrogate: the whole batch failed, on every poll."""
    seen = poll_kind(request, kind, [SURROGATES[kind]])
    assert seen.result.rejected == 0
    assert seen.rows == _GOOD_ROWS[kind] + 1


def _slack_zip(
    path: Path, days: dict[str, list[dict[str, Any]]], compression: int, at: int, junk: bytes
) -> None:
    """A Slack export zip of `days` whose second day file has its data (not the directory)
    overwritten with `junk` from `at` bytes into the member's data."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("users.json", json.dumps(MEMBERS))
        archive.writestr("channels.json", json.dumps([{"id": "C01", "name": "support"}]))
        for name, messages in days.items():
            archive.writestr(name, json.dumps(messages))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo(sorted(days)[1])
    start = member.header_offset + 30 + len(member.filename) + len(member.extra) + at
    data[start : start + len(junk)] = junk
    path.write_bytes(bytes(data))


def _slack_day(day: int, count: int) -> list[dict[str, Any]]:
    return [
        {"type": "message", "user": "U02CUST", "ts": f"17951{day}{n:04d}.000100", "text": "hello"}
        for n in range(count)
    ]


_SLACK_ZIP = {"name": "s", "kind": "slack_export", "path": "export.zip", "channels": ["support"]}


def test_a_corrupt_deflate_member_of_a_slack_zip_rejects_that_day_file_only(tmp_path: Path) -> None:
    import zipfile

    # Fifty messages a day: a deflate stream long enough to break in its middle.
    days = {f"support/2026-11-{day:02d}.json": _slack_day(day, 50) for day in (1, 2, 3)}
    _slack_zip(tmp_path / "export.zip", days, zipfile.ZIP_DEFLATED, 2, b"\xff" * 10)
    seen = poll_config(tmp_path, {"sources": [_SLACK_ZIP]})
    assert seen.result.ok, seen.result.error
    (rejection,) = seen.result.rejections
    assert rejection.location == "export.zip:support/2026-11-02.json"
    assert rejection.reason.startswith("the zip member cannot be decompressed")
    assert seen.rows == 100  # the other two days


def test_a_zip_member_found_damaged_at_its_end_keeps_the_messages_read_before(
    tmp_path: Path,
) -> None:
    """Day files are read as streams (never whole): damage found at the end of one (here its
    CRC, checked when the last bytes are read) rejects that file where it is, and what was
    read of it before is stored, like the other files."""
    import zipfile

    days = {
        "support/2026-11-01.json": _slack_day(1, 50),
        "support/2026-11-02.json": _slack_day(2, 1600),  # 140 kB: several reads of the stream
    }
    size = len(json.dumps(days["support/2026-11-02.json"]))
    # A stored member whose last "hello" became "jello": valid JSON, a wrong CRC.
    _slack_zip(tmp_path / "export.zip", days, zipfile.ZIP_STORED, size - len('hello"}]'), b"j")
    seen = poll_config(tmp_path, {"sources": [_SLACK_ZIP]})
    assert seen.result.ok, seen.result.error
    (rejection,) = seen.result.rejections
    assert rejection.location == "export.zip:support/2026-11-02.json"
    assert rejection.reason.startswith("the zip member cannot be decompressed (Bad CRC-32")
    assert 50 + 500 < seen.rows < 50 + 1600


def _chat_at(at: str) -> bytes:
    return _json({"conversation": "h0", "at": at, "author_role": "customer", "id": "h0"})


def _queue_log_at(epoch: int) -> bytes:
    return f"{epoch}|h0|support|NONE|ENTERQUEUE||02079460002|1".encode()


# Year 1 and year 9000 (the queue_log's epoch field: 4000) in each kind's own way of writing it.
IMPLAUSIBLE = [
    ("chat_jsonl", _chat_at("0001-01-01T00:00:00Z")),
    ("chat_jsonl", _chat_at("9000-01-01T00:00:00Z")),
    ("zendesk_chat", OVERFLOWING["zendesk_chat"]("0001-01-01T00:00:00Z")),
    ("livechat", OVERFLOWING["livechat"]("9000-01-01T00:00:00Z")),
    ("asterisk_queue_log", _queue_log_at(64_060_588_800)),  # 4000-01-01
    ("asterisk_cdr", OVERFLOWING["asterisk_cdr"]("0001-01-01 00:00:00")),
    ("call_csv", OVERFLOWING["call_csv"]("9000-01-01 00:00:00")),
    ("answering_service_csv", OVERFLOWING["answering_service_csv"]("0001-01-01 00:00")),
    ("mbox", ("Sat Jan 01 00:00:00 9000", mail())),
    ("slack_export", [{"type": "message", "user": "U02CUST", "ts": "64060588800.000100"}]),
]


@pytest.mark.parametrize(("kind", "record"), IMPLAUSIBLE, ids=[k for k, _ in IMPLAUSIBLE])
def test_a_record_dated_in_the_year_1_or_9000_is_rejected_with_its_place_and_reason(
    request: pytest.FixtureRequest, kind: str, record: Record
) -> None:
    """Stored, it was an inquiry open for two thousand years, alerting forever."""
    seen = poll_kind(request, kind, [record])
    (rejection,) = seen.result.rejections
    assert rejection.reason.startswith("implausible "), rejection
    assert "plausible_times" in rejection.reason


def test_the_plausible_times_are_a_setting(tmp_path: Path) -> None:
    source = {"name": "c", "kind": "chat_jsonl", "path": "chat.jsonl"}
    found = []
    for name, extra in (
        ("default", {}),
        ("older", {"plausible_times": {"earliest": "1990-01-01"}}),
    ):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "chat.jsonl").write_bytes(_chat_at("1995-06-01T09:00:00Z") + b"\n")
        seen = poll_config(folder, {"sources": [source], **extra})
        found.append((seen.result.rejected, seen.rows))
    assert found == [(1, 0), (0, 1)]
