"""The connector contract, run against every registered kind on SQLite and PostgreSQL.

Each kind registers a seeder that writes a realistic source of its own format, big enough for
several batches. Every connector must then: store everything on the first poll and nothing on
the second; keep a JSON-safe cursor; survive an interruption after any batch with no loss and no
duplicates; produce aware UTC times and unique ids; pick up new data on the next poll.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from connectors import CONNECTORS
from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.measure.events import CallEvent, MessageEvent
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import build_connector, poll_source
from monitor.store.tables import CALLS, INQUIRIES, MESSAGES, TALLIES
from monitor.store.tallies import layout_for, recount
from tests.connectors.mail.test_answering_service_mail import PATTERNS as NOTIFICATION_PATTERNS
from tests.connectors.mail.test_answering_service_mail import SERVICE as NOTIFIER
from tests.connectors.mail.test_answering_service_mail import notification
from tests.mailboxes import AGENT, CUSTOMER, Mailbox, deliver, message, write_mbox

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class Seeded:
    source: dict[str, Any]  # the source's config entry
    events: int  # how many distinct events the seeded data holds
    grow: Callable[[], int]  # adds data; returns how many new events


def seed_chat_jsonl(folder: Path) -> Seeded:
    path = folder / "chat.jsonl"
    start = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)

    def lines(first: int, count: int) -> list[str]:
        out = []
        for n in range(first, first + count):
            at = start + timedelta(seconds=30 * n)
            role = ("customer", "agent", "bot")[n % 3]
            out.append(
                json.dumps(
                    {
                        "conversation": f"c{n // 6}",
                        "at": at.isoformat(),
                        "author_role": role,
                        "text": f"line {n}",
                    }
                )
            )
        return out

    # 12,000 lines: more than two batches of the tailer's default 5,000.
    path.write_text("\n".join(lines(0, 12_000)) + "\n")

    def grow() -> int:
        with path.open("a") as handle:
            handle.write("\n".join(lines(12_000, 30)) + "\n")
        return 30

    return Seeded({"name": "chat", "kind": "chat_jsonl", "path": str(path)}, 12_000, grow)


def _phone_rows(first: int, count: int) -> list[tuple[int, datetime, str]]:
    """Calls every 10 s: answered inbound, missed inbound (a call and a callback inquiry),
    outbound (a callback); 4 events per 3 rows."""
    start = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)
    kinds = ("answered", "missed", "outbound")
    return [
        (n, start + timedelta(seconds=10 * n), kinds[n % 3]) for n in range(first, first + count)
    ]


def _phone_events(count: int) -> int:
    return sum((1, 2, 1)[n % 3] for n in range(count))


def seed_asterisk_cdr(folder: Path) -> Seeded:
    path = folder / "Master.csv"

    def lines(first: int, count: int) -> list[str]:
        out = []
        for n, at, kind in _phone_rows(first, count):
            start, end = at.strftime("%Y-%m-%d %H:%M:%S"), (at + timedelta(seconds=8))
            answer = (at + timedelta(seconds=3)).strftime("%Y-%m-%d %H:%M:%S")
            src, dst, context = f"0207946{n:05d}", "6000", "from-pstn"
            if kind == "outbound":
                src, dst, context = "201", f"0207946{n:05d}", "from-internal"
            disposition = "NO ANSWER" if kind == "missed" else "ANSWERED"
            fields = [
                "",
                src,
                dst,
                context,
                f'"" <{src}>',
                "SIP/trunk-1",
                "SIP/201-2",
                "Dial",
                "SIP/201",
                start,
                "" if kind == "missed" else answer,
                end.strftime("%Y-%m-%d %H:%M:%S"),
                "8",
                "0" if kind == "missed" else "5",
                disposition,
                "DOCUMENTATION",
                f"1700000000.{n}",
                "",
                "",
                f"1700000000.{n}",
                str(n),
            ]
            out.append(",".join(f'"{f}"' if not f.isdigit() else f for f in fields))
        return out

    path.write_text("\n".join(lines(0, 12_000)) + "\n")

    def grow() -> int:
        with path.open("a") as handle:
            handle.write("\n".join(lines(12_000, 30)) + "\n")
        return _phone_events(12_030) - _phone_events(12_000)

    source = {"name": "pbx", "kind": "asterisk_cdr", "path": str(path), "timezone": "UTC"}
    return Seeded(source, _phone_events(12_000), grow)


def seed_call_csv(folder: Path) -> Seeded:
    path = folder / "calls.csv"

    def lines(first: int, count: int) -> list[str]:
        out = []
        for n, at, kind in _phone_rows(first, count):
            answered = "" if kind == "missed" else (at + timedelta(seconds=20)).isoformat()
            direction = "outbound" if kind == "outbound" else "inbound"
            number = f"+44207946{n:05d}"
            ended = (at + timedelta(minutes=2)).isoformat()
            out.append(f"c{n},{at.isoformat()},{answered},{ended},{direction},{number},support")
        return out

    path.write_text("id,started,answered,ended,direction,number,line\n")
    with path.open("a") as handle:
        handle.write("\n".join(lines(0, 12_000)) + "\n")

    def grow() -> int:
        with path.open("a") as handle:
            handle.write("\n".join(lines(12_000, 30)) + "\n")
        return _phone_events(12_030) - _phone_events(12_000)

    columns = {
        "id": "id",
        "entered": "started",
        "answered": "answered",
        "ended": "ended",
        "direction": "direction",
        "caller": "number",
        "callee": "number",
        "queue": "line",
    }
    source = {"name": "hosted", "kind": "call_csv", "path": str(path), "columns": columns}
    return Seeded(source, _phone_events(12_000), grow)


def seed_answering_service_csv(folder: Path) -> Seeded:
    path = folder / "messages.csv"
    start = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)

    def lines(first: int, count: int) -> list[str]:
        out = []
        for n in range(first, first + count):
            taken = start + timedelta(seconds=20 * n)
            back = (taken + timedelta(minutes=30)).isoformat() if n % 4 == 0 else ""
            out.append(f"m{n},{taken.isoformat()},Caller,+44 20 7946 {n % 2000:05d},Normal,{back}")
        return out

    path.write_text("id,taken_at,caller,callback_number,urgency,callback_at\n")
    with path.open("a") as handle:
        handle.write("\n".join(lines(0, 12_000)) + "\n")

    def grow() -> int:
        with path.open("a") as handle:
            handle.write("\n".join(lines(12_000, 30)) + "\n")
        return 38  # 30 messages, 8 of them called back

    source = {"name": "answering", "kind": "answering_service_csv", "path": str(path)}
    return Seeded(source, 15_000, grow)


def seed_asterisk_queue_log(folder: Path) -> Seeded:
    path = folder / "queue_log"

    def lines(first: int, count: int) -> list[str]:
        out = []
        for n, at, kind in _phone_rows(first, count):
            t, call = int(at.timestamp()), f"1700000000.{n}"
            out.append(f"{t}|{call}|support|NONE|ENTERQUEUE||0207946{n:05d}|1")
            if kind == "missed":  # a call and a callback inquiry
                out.append(f"{t + 9}|{call}|support|NONE|ABANDON|1|1|9")
                continue
            out.append(f"{t + 4}|{call}|support|SIP/201|CONNECT|4|1700000001.{n}|2")
            end = "COMPLETECALLER|4|5|1" if kind == "answered" else "BLINDTRANSFER|202|ext|4|5|1"
            out.append(f"{t + 9}|{call}|support|SIP/201|{end}")
        return out

    path.write_text("\n".join(lines(0, 4_500)) + "\n")

    def grow() -> int:
        with path.open("a") as handle:
            handle.write("\n".join(lines(4_500, 30)) + "\n")
        return _phone_events(4_530) - _phone_events(4_500)

    source = {"name": "queue", "kind": "asterisk_queue_log", "path": str(path)}
    return Seeded(source, _phone_events(4_500), grow)


def seed_slack_export(folder: Path) -> Seeded:
    """An unpacked workspace export: #support with 40 day files of 300 messages each (a
    question, the agent's reply in its thread, a bot's message); growing adds a day file."""
    export = folder / "slack"
    (export / "support").mkdir(parents=True)
    users = [
        {"id": "U01AGENT", "team_id": "T01", "name": "sam", "is_bot": False},
        {"id": "U02CUST", "team_id": "T02", "name": "dana", "is_stranger": True},
        {"id": "U03BOT", "team_id": "T01", "name": "helpbot", "is_bot": True},
    ]
    (export / "users.json").write_text(json.dumps(users))
    (export / "channels.json").write_text(json.dumps([{"id": "C01", "name": "support"}]))
    start = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)

    def day(number: int, count: int) -> None:
        records = []
        for n in range(count):
            at = start + timedelta(days=number, seconds=60 * n)
            stamp = f"{int(at.timestamp())}.000100"
            record = {"type": "message", "text": "x", "ts": stamp, "user": "U02CUST"}
            if n % 3:
                parent = at - timedelta(seconds=60 * (n % 3))
                record["thread_ts"] = f"{int(parent.timestamp())}.000100"
                record["user"] = "U01AGENT" if n % 3 == 1 else "U03BOT"
            records.append(record)
        path = export / "support" / f"{(start + timedelta(days=number)):%Y-%m-%d}.json"
        path.write_text(json.dumps(records))

    for number in range(40):
        day(number, 300)

    def grow() -> int:
        day(40, 30)
        return 30

    source = {"name": "slack", "kind": "slack_export", "path": str(export), "channels": ["support"]}
    return Seeded(source, 12_000, grow)


def seed_zendesk_chat(folder: Path) -> Seeded:
    """JSONL, one small chat a line (a visitor's message, an agent's reply, a trigger's
    message, each in its own chat): 12,000 lines, more than two of the tailer's batches."""
    path = folder / "chats.jsonl"
    start = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)

    def lines(first: int, count: int) -> str:
        out = []
        for n in range(first, first + count):
            nick = ("visitor:1-abc", "agent:361084605116", "agent:trigger")[n % 3]
            at = (start + timedelta(seconds=20 * n)).strftime("%Y-%m-%dT%H:%M:%SZ")
            entry = {"type": "chat.msg", "timestamp": at, "nick": nick, "name": "x", "msg": "x"}
            chat = {"id": f"2611.{n}", "type": "chat", "timestamp": at, "history": [entry]}
            out.append(json.dumps(chat) + "\n")
        return "".join(out)

    path.write_text(lines(0, 12_000))

    def grow() -> int:
        with path.open("a") as handle:
            handle.write(lines(12_000, 30))
        return 30

    return Seeded({"name": "zendesk", "kind": "zendesk_chat", "path": str(path)}, 12_000, grow)


def seed_livechat(folder: Path) -> Seeded:
    """One archive document of 2,000 v2 chats (a greeting, a question, a reply, a follow-up
    and its reply, then the end); growing re-exports it with five chats more."""
    path = folder / "archive.json"
    start = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)

    def chat(n: int) -> dict[str, object]:
        begin = int((start + timedelta(minutes=3 * n)).timestamp())
        users = ("agent", "visitor", "agent", "visitor", "agent")
        events = [
            {"type": "message", "user_type": u, "timestamp": begin + 20 * i, "text": "x"}
            for i, u in enumerate(users)
        ]
        return {"id": f"MH{n:08d}", "events": events, "ended_timestamp": begin + 150}

    def write(count: int) -> None:
        path.write_text(json.dumps({"chats": [chat(n) for n in range(count)], "pages": 1}))

    write(2_000)

    def grow() -> int:
        write(2_005)
        return 30

    return Seeded({"name": "livechat", "kind": "livechat", "path": str(path)}, 12_000, grow)


def _mail(
    first: int, count: int
) -> tuple[list[tuple[bytes, datetime]], list[tuple[bytes, datetime]]]:
    """`count` customer questions a minute apart, and our replies to two in three of them
    (filed in a sent folder 20 minutes later)."""
    start = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)
    inbox, sent = [], []
    for n in range(first, first + count):
        arrived = start + timedelta(minutes=n)
        inbox.append((message(f"q{n}@customer.test", subject=f"Order {n}"), arrived))
        if n % 3:
            answer = message(
                f"r{n}@example.com",
                sender=AGENT,
                to=[CUSTOMER],
                subject=f"Re: Order {n}",
                in_reply_to=f"q{n}@customer.test",
                date=arrived + timedelta(minutes=20),
            )
            sent.append((answer, arrived + timedelta(minutes=21)))
    return inbox, sent


MAIL_BATCH = 300  # 600 questions + 400 replies: the sent folder, then the inbox in batches


def seed_mbox(folder: Path) -> Seeded:
    inbox, sent = _mail(0, 600)
    write_mbox(folder / "inbox.mbox", inbox)
    write_mbox(folder / "sent.mbox", sent)

    def grow() -> int:
        more, replies = _mail(600, 30)
        write_mbox(folder / "inbox.mbox", more, append=True)
        write_mbox(folder / "sent.mbox", replies, append=True)
        return len(more) + len(replies)

    source = {
        "name": "archive",
        "kind": "mbox",
        "path": str(folder / "inbox.mbox"),
        "sent_path": str(folder / "sent.mbox"),
        "batch_size": MAIL_BATCH,
    }
    return Seeded(source, len(inbox) + len(sent), grow)


def seed_maildir(folder: Path) -> Seeded:
    inbox, sent = _mail(0, 600)
    root = folder / "Maildir"
    for seq, (raw, arrived) in enumerate(inbox):
        deliver(root, raw, arrived, seq=seq, new=seq % 2 == 0)
    for seq, (raw, arrived) in enumerate(sent, 1000):
        deliver(root / ".Sent", raw, arrived, seq=seq)

    def grow() -> int:
        more, replies = _mail(600, 30)
        for seq, (raw, arrived) in enumerate(more + replies, 5000):
            deliver(root / (".Sent" if b"From: support@" in raw else ""), raw, arrived, seq=seq)
        return len(more) + len(replies)

    source = {"name": "mail", "kind": "maildir", "path": str(root), "batch_size": MAIL_BATCH}
    return Seeded(source, len(inbox) + len(sent), grow)


def seed_answering_service_mail(folder: Path) -> Seeded:
    """An mbox of an answering service's notifications, every fourth a returned call too."""

    def notes(first: int, count: int) -> list[tuple[bytes, datetime]]:
        out = []
        for n in range(first, first + count):
            returned = "09:30" if n % 4 == 0 else None
            raw = notification(f"n{n}", "09:00", "Caller", f"020 7946 {n:04d}", returned=returned)
            out.append((raw, datetime(2026, 11, 20, 9, 2, tzinfo=UTC)))
        return out

    path = folder / "notes.mbox"
    write_mbox(path, notes(0, 400))  # four batches of the kind's default 100

    def grow() -> int:
        write_mbox(path, notes(400, 30), append=True)
        return 38  # 30 messages, 8 of them called back

    source = {
        "name": "answering",
        "kind": "answering_service_mail",
        "from": "mbox",
        "path": str(path),
        "senders": [NOTIFIER],
        "patterns": NOTIFICATION_PATTERNS,
        "time_format": ["%d/%m/%Y %H:%M"],
        "timezone": "Europe/London",
    }
    return Seeded(source, 500, grow)


# Seeders of kinds that read a server find it here (set by the `kind` fixture).
SERVERS: dict[str, Any] = {}


def seed_imap(folder: Path) -> Seeded:
    server = SERVERS["dovecot"]
    mailbox = Mailbox(server, server.new_user())
    inbox, sent = _mail(0, 600)
    mailbox.append("INBOX", inbox)
    mailbox.append("Sent", sent)

    def grow() -> int:
        more, replies = _mail(600, 30)
        mailbox.append("INBOX", more)
        mailbox.append("Sent", replies)
        return len(more) + len(replies)

    return Seeded(mailbox.source(batch_size=MAIL_BATCH), len(inbox) + len(sent), grow)


SEEDERS: dict[str, Callable[[Path], Seeded]] = {
    "chat_jsonl": seed_chat_jsonl,
    "slack_export": seed_slack_export,
    "zendesk_chat": seed_zendesk_chat,
    "livechat": seed_livechat,
    "asterisk_cdr": seed_asterisk_cdr,
    "call_csv": seed_call_csv,
    "answering_service_csv": seed_answering_service_csv,
    "answering_service_mail": seed_answering_service_mail,
    "asterisk_queue_log": seed_asterisk_queue_log,
    "mbox": seed_mbox,
    "maildir": seed_maildir,
    "imap": seed_imap,
}


def test_every_registered_kind_has_a_contract_seeder() -> None:
    assert set(SEEDERS) == set(CONNECTORS)


@pytest.fixture(params=sorted(SEEDERS))
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "imap":
        SERVERS["dovecot"] = request.getfixturevalue("dovecot")
    return str(request.param)


def setup(kind: str, folder: Path, database_url: str) -> tuple[Seeded, Settings, Engine]:
    seeded = SEEDERS[kind](folder)
    settings = settings_from_mapping({"database": database_url, "sources": [seeded.source]}, folder)
    engine = make_engine(database_url, folder)
    prepare(engine)
    return seeded, settings, engine


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (MESSAGES, CALLS, INQUIRIES)
        )  # type: ignore[return-value]


def tallies(engine: Engine) -> dict[tuple[str, str, str, str], float]:
    with engine.connect() as conn:
        return {
            (r.metric, r.source, r.labels, r.le): r.value
            for r in conn.execute(select(TALLIES))
            if r.value
        }


def test_first_poll_stores_everything_and_a_second_adds_nothing(
    kind: str, tmp_path: Path, database_url: str
) -> None:
    seeded, settings, engine = setup(kind, tmp_path, database_url)
    first = poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
    assert first.ok and first.messages + first.calls == seeded.events
    again = poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
    assert again.ok and again.messages + again.calls == 0
    assert sum(counts(engine)[:2]) == seeded.events


def test_the_cursor_round_trips_through_json(kind: str, tmp_path: Path, database_url: str) -> None:
    seeded, settings, _ = setup(kind, tmp_path, database_url)
    connector = build_connector(settings, settings.sources[0])
    for batch in connector.fetch(None, NOW):
        assert json.loads(json.dumps(batch.cursor)) == batch.cursor


def test_events_have_aware_utc_times_and_unique_ids(
    kind: str, tmp_path: Path, database_url: str
) -> None:
    seeded, settings, _ = setup(kind, tmp_path, database_url)
    ids: list[str] = []
    for batch in build_connector(settings, settings.sources[0]).fetch(None, NOW):
        for event in batch.events:
            ids.append(event.external_id)
            moments = [event.at] if isinstance(event, MessageEvent) else [event.entered_at]
            assert all(m.utcoffset() == timedelta(0) for m in moments)
            assert isinstance(event, MessageEvent | CallEvent)
    assert len(ids) == len(set(ids)) == seeded.events


def test_an_interruption_after_any_batch_loses_and_duplicates_nothing(
    kind: str, tmp_path: Path, database_url: str
) -> None:
    import threading

    seeded, settings, engine = setup(kind, tmp_path, database_url)
    stop = threading.Event()
    stop.set()  # every poll stops after its first batch, as if killed right after the commit
    polls = 0
    while True:
        result = poll_source(
            engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW, stop=stop
        )
        assert result.ok
        polls += 1
        if result.messages + result.calls == 0:
            break
    assert polls >= 3, "the seeded data must span several batches"

    reference = tmp_path / "reference"
    reference.mkdir()
    _, ref_settings, ref_engine = setup(kind, reference, f"sqlite:///{reference / 'ref.db'}")
    poll_source(ref_engine, ref_settings, ref_settings.sources[0], now=NOW, clock=lambda: NOW)
    assert counts(engine) == counts(ref_engine)
    assert tallies(engine) == tallies(ref_engine)


def test_new_data_is_picked_up_by_the_next_poll(
    kind: str, tmp_path: Path, database_url: str
) -> None:
    seeded, settings, engine = setup(kind, tmp_path, database_url)
    poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
    added = seeded.grow()
    later = NOW + timedelta(hours=12)  # what grew was written after the first poll
    result = poll_source(engine, settings, settings.sources[0], now=later, clock=lambda: later)
    assert result.messages + result.calls == added


def test_tallies_always_equal_a_recount_of_the_store(
    kind: str, tmp_path: Path, database_url: str
) -> None:
    seeded, settings, engine = setup(kind, tmp_path, database_url)
    poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
    seeded.grow()
    poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
    incremental = tallies(engine)
    with engine.begin() as conn:
        recount(conn, settings, layout_for(settings))
    assert tallies(engine) == pytest.approx(incremental)
