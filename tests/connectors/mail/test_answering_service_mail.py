"""answering_service_mail: an answering service's notification e-mails, read from a real
Dovecot over IMAP, from an mbox and from a Maildir, measured as answering_service_csv measures
the same messages from the service's log."""

from __future__ import annotations

import base64
import logging
import os
import time
import tracemalloc
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import Engine, MetaData, select

from connectors.base import ConnectorContext
from connectors.mail.answering_service import (
    NOT_FROM_SERVICE,
    UNMATCHED_CALLBACKS,
    AnsweringServiceMailConnector,
)
from monitor.config import Agents
from monitor.config_file import ConfigError, load_settings, settings_from_mapping
from monitor.publish.exporter import exposition
from monitor.store.ingest import PollResult
from tests.connectors.phone.test_answering_service import A_DAY
from tests.connectors.phone.test_answering_service import answering as csv_source
from tests.connectors.phone.test_answering_service import write as write_csv
from tests.connectors.phone.test_asterisk_cdr import cdr
from tests.connectors.phone.test_callbacks import GOT_THROUGH
from tests.connectors.phone.test_queue_log import source as queue_log_source
from tests.connectors.phone.test_queue_log import write as write_queue_log
from tests.connectors.store import NOW, aware, inquiries, messages, open_store, poll
from tests.mailboxes import Mailbox, deliver, write_mbox

ROOT = Path(__file__).resolve().parents[3]
SERVICE = "messages@answering.example"
LONDON = ZoneInfo("Europe/London")
PATTERNS = {
    "id": r"Message ID:[ \t]*(?P<value>\S+)",
    "taken_at": r"Taken:[ \t]*(?P<value>.+)",
    "caller": r"Caller:[ \t]*(?P<value>.+)",
    "callback_number": r"Call back on:[ \t]*(?P<value>[+\d ()-]+)",
    "urgency": r"Urgency:[ \t]*(?P<value>\w+)",
    "callback_at": r"Returned:[ \t]*(?P<value>.+)",
}
SECRET = "the side gate code is 4471"  # what a caller said: never stored, logged or quoted


def local(hm: str, day: int = 20) -> datetime:
    hour, minute = (int(x) for x in hm.split(":"))
    return datetime(2026, 11, day, hour, minute, tzinfo=LONDON)


def notification(
    message_id: str,
    taken: str | None = None,
    caller: str | None = None,
    number: str | None = None,
    urgency: str | None = None,
    returned: str | None = None,
    *,
    sender: str = SERVICE,
    subject: str | None = None,
    subtype: str = "plain",
    cte: str | None = None,
    charset: str = "utf-8",
    said: str = SECRET,
) -> bytes:
    """A notification in the neutral layout ("Caller: ...", one label a line; an HTML one as
    a table), `Message: said` among them. Times are `HH:MM` on 20 Nov 2026, written
    dd/mm/yyyy."""
    fields = [
        ("Message ID", message_id),
        ("Taken", local(taken).strftime("%d/%m/%Y %H:%M") if taken else None),
        ("Caller", caller),
        ("Call back on", number),
        ("Urgency", urgency),
        ("Returned", local(returned).strftime("%d/%m/%Y %H:%M") if returned else None),
        ("Message", said),
    ]
    shown = [(label, value) for label, value in fields if value is not None]
    mail = EmailMessage()
    mail["From"] = f"Front Desk Answering <{sender}>"
    mail["To"] = "support@example.com"
    mail["Subject"] = subject or f"New message: {caller}"
    mail["Date"] = format_datetime(local(taken or returned or "08:00"))
    mail["Message-ID"] = f"<{message_id}.{subtype}@answering.example>"
    if subtype == "html":
        rows = "".join(f"<tr><td><b>{k}:</b></td><td>{v}</td></tr>" for k, v in shown)
        page = f"<html><head><style>td {{}}</style></head><body><table>{rows}</table></body></html>"
        mail.set_content(page, subtype="html", charset=charset, cte=cte)
    else:
        text = "You have a new message.\n\n" + "\n".join(f"{k}: {v}" for k, v in shown)
        mail.set_content(text + "\n", charset=charset, cte=cte)
    return mail.as_bytes()


# The messages of the service's log in answering_service_csv's tests (A_DAY), as notifications
# arriving two minutes after each was taken.
DAY = [
    notification("m1", "09:00", "Dana", "+44 20 7946 0001", "High", "09:25"),
    notification("m2", "10:00", "Lee", "020 7946 0002", "Normal"),
    notification("m3", "11:00", "+44 161 496 0999", "020 7946 0003", "Low"),
    notification("m4", "12:00", "Front desk", "2001", "Normal", "13:00"),
]
ARRIVALS = [local(hm) + timedelta(minutes=2) for hm in ("09:00", "10:00", "11:00", "12:00")]


def source(where: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "answering",
        "kind": "answering_service_mail",
        "senders": [SERVICE],
        "patterns": PATTERNS,
        "time_format": ["%d/%m/%Y %H:%M"],
        "timezone": "Europe/London",
        **where,
        **extra,
    }


def put(
    request: pytest.FixtureRequest, how: str, notes: list[bytes], arrivals: list[datetime]
) -> dict[str, Any]:
    """`notes` where a source reading `how` finds them; the source's reading keys."""
    folder: Path = request.getfixturevalue("tmp_path")
    pairs = list(zip(notes, arrivals, strict=True))
    if how == "mbox":
        write_mbox(folder / "notes.mbox", pairs)
        os.utime(folder / "notes.mbox", (0, 0))  # written long ago: every message is whole
        return {"from": "mbox", "path": "notes.mbox"}
    if how == "maildir":
        for seq, (raw, arrived) in enumerate(pairs):
            deliver(folder / "Maildir", raw, arrived, seq=seq)
        return {"from": "maildir", "path": "Maildir"}
    mailbox: Mailbox = request.getfixturevalue("mailbox")
    mailbox.append("Answering", pairs)
    imap = mailbox.source()
    del imap["name"], imap["kind"]
    return {"from": "imap", **imap, "folders": ["Answering"]}


def status(engine: Engine) -> dict[str, tuple[str, str, float | None]]:
    return {i.conversation: (i.channel, i.status, i.response_seconds) for i in inquiries(engine)}


def stored(engine: Engine) -> list[dict[str, Any]]:
    """Every inquiry as stored, but its row id."""
    return [{k: v for k, v in i._mapping.items() if k != "id"} for i in inquiries(engine)]


READERS = ["mbox", "maildir", "imap"]


@pytest.mark.parametrize("how", READERS)
def test_a_day_of_notifications_measures_as_the_services_log_does(
    request: pytest.FixtureRequest, tmp_path: Path, how: str
) -> None:
    mail_settings, mail = open_store(
        tmp_path, [source(put(request, how, DAY, ARRIVALS))], timezone="Europe/London"
    )
    result = poll(mail, mail_settings, "answering")
    assert (result.messages, result.rejected, dict(result.left_out)) == (6, 0, {})
    log = tmp_path / "log"
    log.mkdir()
    write_csv(log / "messages.csv", *A_DAY)
    csv_settings, csv = open_store(log, [csv_source()], timezone="Europe/London")
    poll(csv, csv_settings, "answering")
    assert status(mail) == {
        "tel:079460001": ("answering_service", "answered", 25 * 60),
        "tel:079460002": ("answering_service", "open", None),
        "tel:079460003": ("answering_service", "open", None),
        "answering:m4": ("answering_service", "answered", 3600),
    }
    assert stored(mail) == stored(csv)
    assert exposition(mail, mail_settings, lambda: NOW) == exposition(
        csv, csv_settings, lambda: NOW
    )
    found = messages(mail)
    assert found["msg:m1"].subject == "urgency: High"
    assert found["msg:m3"].customer == "+44 161 496 0999"
    assert found["callback:m1"].side == "agent"


@pytest.mark.parametrize("how", READERS)
def test_a_notification_that_does_not_match_is_a_located_rejection_and_the_rest_is_stored(
    request: pytest.FixtureRequest, tmp_path: Path, how: str
) -> None:
    notes = [DAY[0], notification("m9", "09:30", said="the layout changed"), DAY[1]]
    notes[1] = notes[1].replace(b"Caller:", b"Name:").replace(b"Call back on:", b"Phone:")
    settings, engine = open_store(tmp_path, [source(put(request, how, notes, ARRIVALS[:3]))])
    result = poll(engine, settings, "answering")
    (rejection,) = result.rejections
    assert rejection.reason == "no match for the callback_number or caller pattern"
    if how == "mbox":
        lines = (tmp_path / "notes.mbox").read_bytes().split(b"\n")
        starts = [n for n, line in enumerate(lines, 1) if line.startswith(b"From ")]
        assert rejection.location == f"notes.mbox:{starts[1]}"
    elif how == "maildir":
        name = f"Maildir/cur/{int(ARRIVALS[1].timestamp())}.M1P4242.mx.test,S="
        assert rejection.location.startswith(name)
    else:
        assert rejection.location == "Answering uid 2"
    assert {"msg:m1", "msg:m2"} <= set(messages(engine))


def test_html_only_base64_and_quoted_printable_notifications_are_read(tmp_path: Path) -> None:
    notes = [
        notification("h1", "09:00", "Dana", "+44 20 7946 0001", "High", subtype="html"),
        notification("b1", "09:10", "Lee", "020 7946 0002", "Low", cte="base64"),
        notification(
            "q1",
            "09:20",
            "Renée",
            "020 7946 0003",
            "Normal",
            cte="quoted-printable",
            charset="iso-8859-1",
        ),
        notification("hb", "09:30", "Kim", "020 7946 0004", "Low", subtype="html", cte="base64"),
    ]
    assert b"Ren=E9e" in notes[2] and b"Caller" not in notes[1].split(b"\n\n", 1)[1]
    arrivals = [local("09:40")] * 4
    settings, engine = open_store(tmp_path, [source(put_mbox(tmp_path, notes, arrivals))])
    result = poll(engine, settings, "answering")
    assert (result.messages, result.rejected) == (4, 0)
    found = messages(engine)
    assert (found["msg:h1"].customer, found["msg:h1"].conversation) == ("Dana", "tel:079460001")
    assert found["msg:h1"].subject == "urgency: High"
    assert aware(found["msg:h1"].at) == local("09:00")
    assert (found["msg:b1"].customer, found["msg:b1"].conversation) == ("Lee", "tel:079460002")
    assert found["msg:q1"].customer == "Renée"
    assert found["msg:hb"].conversation == "tel:079460004"


def put_mbox(folder: Path, notes: list[bytes], arrivals: list[datetime]) -> dict[str, Any]:
    write_mbox(folder / "notes.mbox", list(zip(notes, arrivals, strict=True)))
    os.utime(folder / "notes.mbox", (0, 0))
    return {"from": "mbox", "path": "notes.mbox"}


def test_mail_from_anyone_but_the_service_is_skipped_and_counted(tmp_path: Path) -> None:
    forged = [
        # The service's address as a display name, the real address an attacker's.
        notification("f1", "09:00", "X", "020 7946 0001", sender="attacker@evil.test").replace(
            b"Front Desk Answering <attacker@evil.test>",
            b'"messages@answering.example" <attacker@evil.test>',
        ),
        # A look-alike domain ending in the service's.
        notification("f2", "09:00", "X", "020 7946 0002", sender="m@answering.example.evil.test"),
        notification("f3", "09:00", "X", "020 7946 0003", sender="m@xanswering.example"),
        notification("ok", "09:00", "Dana", "020 7946 0004"),
        notification("sub", "09:00", "Lee", "020 7946 0005", sender="desk@answering.example"),
    ]
    entry = source(put_mbox(tmp_path, forged, [local("09:05")] * 5), senders=["answering.example"])
    settings, engine = open_store(tmp_path, [entry])
    result = poll(engine, settings, "answering")
    assert result.left_out == {NOT_FROM_SERVICE: 3}
    assert set(messages(engine)) == {"msg:ok", "msg:sub"}
    assert f"3 {NOT_FROM_SERVICE}" in result.summary()


@pytest.mark.parametrize("how", READERS)
def test_the_body_is_never_stored_logged_or_quoted(
    request: pytest.FixtureRequest, tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    notes = [
        DAY[0],
        notification("x1", "09:10", subject="New message", said=SECRET),  # no number: rejected
        notification("x2", "09:20", "Kim", "020 7946 0002").replace(
            b"Taken: 20/11/2026",
            b"Taken: 31/02/2026",  # no such day: rejected
        ),
        notification("x3", "09:30", "Sam", "020 7946 0003", sender="someone@else.test"),
    ]
    settings, engine = open_store(tmp_path, [source(put(request, how, notes, ARRIVALS))])
    caplog.set_level(logging.DEBUG)
    caplog.clear()  # what the test itself sent the server, appending the notifications
    result = poll(engine, settings, "answering")
    assert (result.rejected, result.messages) == (2, 2)
    reasons = " ".join(str(r) for r in result.rejections)
    logged = " ".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    engine.dispose()
    database = b"".join(p.read_bytes() for p in tmp_path.glob("monitor.db*"))
    for secret in (SECRET, "gate code", "You have a new message"):
        assert secret not in reasons
        assert secret not in logged
        assert secret.encode() not in database
    assert b"Dana" in database  # what is extracted is stored (the reading worked)
    assert everything_stored(tmp_path) and SECRET not in everything_stored(tmp_path)


def everything_stored(folder: Path) -> str:
    """Every row of every table of the store, as text."""
    settings, engine = open_store(folder, [])
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        rows = [str(tuple(r)) for t in metadata.sorted_tables for r in conn.execute(select(t))]
    engine.dispose()
    return "\n".join(rows)


def test_a_callback_the_service_emails_closes_the_inquiry(tmp_path: Path) -> None:
    notes = [
        notification("m1", "09:00", "Dana", "+44 20 7946 0001", "High"),
        # The service's "call returned" mail: its own layout, its own time.
        notification(
            "m1", None, "Dana", "020 7946 0001", returned="09:40", subject="Call returned: Dana"
        ).replace(b"<m1.plain@", b"<m1-r.plain@"),
        notification("m2", "10:00", "Lee", "020 7946 0002"),
        # A return reported to a number too short to match anything: counted, not guessed.
        notification(
            "m3", None, "Desk", "201", returned="10:30", subject="Call returned: Desk"
        ).replace(b"<m3.plain@", b"<m3-r.plain@"),
    ]
    arrivals = [local("09:02"), local("09:41"), local("10:02"), local("10:31")]
    entry = source(put_mbox(tmp_path, notes, arrivals), returned="^Subject: Call returned")
    settings, engine = open_store(tmp_path, [entry])
    result = poll(engine, settings, "answering")
    assert (result.rejected, dict(result.left_out)) == (0, {UNMATCHED_CALLBACKS: 1})
    assert status(engine) == {
        "tel:079460001": ("answering_service", "answered", 40 * 60),
        "tel:079460002": ("answering_service", "open", None),
    }
    assert messages(engine)["out:m1"].side == "agent"


def test_without_a_returned_pattern_a_return_mail_with_a_time_still_closes_it(
    tmp_path: Path,
) -> None:
    # The Returned: line is the callback_at pattern's: the mail is read as the message with
    # its callback filled in, which closes the same conversation.
    notes = [
        notification("m1", "09:00", "Dana", "020 7946 0001"),
        notification("m1", "09:00", "Dana", "020 7946 0001", returned="09:30").replace(
            b"<m1.plain@", b"<m1-r.plain@"
        ),
    ]
    patterns = PATTERNS | {"id": r"Message-ID: <(?P<value>[^>]+)>"}
    notes = [n.replace(b"Message ID: ", b"Service ref: ") for n in notes]
    entry = source(put_mbox(tmp_path, notes, [local("09:02"), local("09:31")]), patterns=patterns)
    settings, engine = open_store(tmp_path, [entry])
    poll(engine, settings, "answering")
    assert status(engine) == {"tel:079460001": ("answering_service", "answered", 30 * 60)}


def test_an_outbound_call_in_a_phone_source_closes_it(tmp_path: Path) -> None:
    callback = cdr("90.1", "201", "00442079460003", "15:30:00", 8, 60, context="from-internal")
    earlier = cdr("91.1", "201", "00442079460002", "08:00:00", 8, 60, context="from-internal")
    (tmp_path / "Master.csv").write_text(f"{earlier}\n{callback}\n")
    pbx = {"name": "pbx", "kind": "asterisk_cdr", "path": "Master.csv", "timezone": "Europe/Berlin"}
    entry = source(put_mbox(tmp_path, DAY, ARRIVALS), timezone="UTC")
    settings, engine = open_store(tmp_path, [entry, pbx])
    poll(engine, settings, "answering")
    poll(engine, settings, "pbx")
    found = status(engine)
    assert found["tel:079460003"] == ("answering_service", "answered", 3.5 * 3600)
    assert found["tel:079460002"][1] == "open"  # called before the message was taken


@pytest.mark.parametrize("first", ["answering", "queue"])
def test_the_caller_getting_through_on_the_phone_closes_it(tmp_path: Path, first: str) -> None:
    # The caller rings the queue at 09:40 (UTC) and is answered at 09:41: that answers the
    # message taken at 09:00, not the one the service takes from them at 10:00 (written with
    # the number in its international form), whichever source is polled first.
    notes = [
        notification("m1", "09:00", "Dana", "020 7946 0001"),
        notification("m2", "10:00", "Dana", "+44 20 7946 0001"),
    ]
    write_queue_log(tmp_path / "queue_log", *GOT_THROUGH)
    entry = source(put_mbox(tmp_path, notes, [local("09:02"), local("10:02")]))
    settings, engine = open_store(tmp_path, [entry, queue_log_source()])
    for name in (first, {"answering": "queue", "queue": "answering"}[first]):
        poll(engine, settings, name)
    assert {i.source for i in inquiries(engine)} == {"answering"}  # the answered call is none
    found = [
        (i.conversation, aware(i.opened_at), i.status, i.response_seconds)
        for i in inquiries(engine)
    ]
    assert found == [
        ("tel:079460001", local("09:00"), "answered", 41 * 60),
        ("tel:079460001", local("10:00"), "open", None),
    ]


def test_an_outsiders_notification_fails_no_more_than_itself_in_bounded_memory(
    tmp_path: Path,
) -> None:
    zoe = "=?utf-8?b?" + base64.b64encode("Caller: Zoë Martín".encode()).decode() + "?="
    hostile = [
        # The service's address in an encoded word of the display name: the address is evil's.
        notification("e1", "09:00", "X", "020 7946 0001", sender="evil@attacker.test").replace(
            b"Front Desk Answering <evil@attacker.test>",
            b"=?utf-8?q?messages@answering.example?= <evil@attacker.test>",
        ),
        # The caller only in the subject, as an encoded word: matched decoded.
        notification("e2", "09:10", None, "020 7946 0002", subject="x").replace(
            b"Subject: x", f"Subject: {zoe}".encode()
        ),
        # Three megabytes on one line: rejected at its place, never held in memory.
        notification("e3", "09:20", "Kim", "020 7946 0003").replace(
            SECRET.encode(), b"a" * 3 * 2**20
        ),
        # Escape sequences in a value: stored without their control characters.
        notification("e4", "09:30", "Eve\x1b]0;pwned\x07\x1b[2J", "020 7946 0004"),
        notification("e5", "09:40", "Lee", "020 7946 0005"),
    ]
    entry = source(put_mbox(tmp_path, hostile, [local("09:45")] * 5), max_message_bytes=65536)
    settings, engine = open_store(tmp_path, [entry])
    context = ConnectorContext(agents=Agents(), base_dir=tmp_path, timezone=ZoneInfo("UTC"))
    connector = AnsweringServiceMailConnector(settings.sources[0], context)
    tracemalloc.start()
    try:
        assert sum(len(b.events) for b in connector.fetch(None, NOW)) == 3
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # a third of the 3 MB line: it was never held in memory
    result = poll(engine, settings, "answering")
    assert result.left_out == {NOT_FROM_SERVICE: 1}
    lines = (tmp_path / "notes.mbox").read_bytes().split(b"\n")
    starts = [n for n, line in enumerate(lines, 1) if line.startswith(b"From ")]
    assert [(r.location, r.reason) for r in result.rejections] == [
        (f"notes.mbox:{starts[2]}", "message longer than 64 kB (max_message_bytes): not read")
    ]
    found = messages(engine)
    assert set(found) == {"msg:e2", "msg:e4", "msg:e5"}
    assert found["msg:e2"].customer == "Zoë Martín"
    assert found["msg:e4"].customer == "Eve ]0;pwned [2J"


def test_without_a_taken_at_pattern_a_message_is_taken_when_its_notification_arrived(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    patterns = {k: v for k, v in PATTERNS.items() if k != "taken_at"}
    notes = [DAY[1], DAY[2]]
    for how in ("mbox", "imap"):
        folder = tmp_path / how
        folder.mkdir()
        where = put(request, how, notes, ARRIVALS[1:3])
        if how == "mbox":
            (tmp_path / "notes.mbox").rename(folder / "notes.mbox")
        settings, engine = open_store(folder, [source(where, patterns=patterns)])
        poll(engine, settings, "answering")
        assert aware(messages(engine)["msg:m2"].at) == ARRIVALS[1], how


@pytest.mark.parametrize("how", ["mbox", "imap", "maildir"])
def test_a_notification_past_max_message_bytes_is_rejected_unread(
    request: pytest.FixtureRequest, tmp_path: Path, how: str
) -> None:
    big = EmailMessage()
    for name, value in email_headers(DAY[1]).items():
        big[name] = value
    big.set_content("Caller: Lee\nCall back on: 020 7946 0002\nTaken: 20/11/2026 10:00\n")
    big.add_attachment(b"\xff" * 4096, maintype="audio", subtype="mpeg", filename="message.mp3")
    notes = [DAY[0], big.as_bytes(), DAY[2]]
    entry = source(put(request, how, notes, ARRIVALS[:3]), max_message_bytes=4096)
    settings, engine = open_store(tmp_path, [entry])
    result = poll(engine, settings, "answering")
    assert [r.reason for r in result.rejections] == [
        "message longer than 4 kB (max_message_bytes): not read"
    ]
    assert {"msg:m1", "msg:m3"} <= set(messages(engine))


def email_headers(raw: bytes) -> dict[str, str]:
    from email import message_from_bytes

    parsed = message_from_bytes(raw)
    names = ("From", "To", "Subject", "Date", "Message-ID")
    return {name: str(parsed[name]) for name in names}


def test_imap_reads_without_marking_anything_read_and_only_what_is_new(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    mailbox.append("Answering", list(zip(DAY[:2], ARRIVALS[:2], strict=True)))
    imap = mailbox.source()
    del imap["name"], imap["kind"]
    settings, engine = open_store(
        tmp_path, [source({"from": "imap", **imap, "folders": ["Answering"]})]
    )
    assert poll(engine, settings, "answering").messages == 3
    assert all(b"\\Seen" not in flags for flags in mailbox.flags("Answering").values())
    assert poll(engine, settings, "answering").events == 0
    mailbox.append("Answering", [(DAY[2], ARRIVALS[2])])
    again = poll(engine, settings, "answering")
    assert (again.messages, again.events) == (1, 1)
    assert all(b"\\Seen" not in flags for flags in mailbox.flags("Answering").values())


def test_an_mbox_message_still_being_written_is_left_for_the_next_poll(tmp_path: Path) -> None:
    path = tmp_path / "notes.mbox"
    write_mbox(path, list(zip(DAY[:2], ARRIVALS[:2], strict=True)))
    whole = path.read_bytes()
    path.write_bytes(whole[: whole.rindex(b"Call back on")])  # the second one half written
    settings, engine = open_store(tmp_path, [source({"from": "mbox", "path": "notes.mbox"})])
    first = poll(engine, settings, "answering")
    assert (first.messages, first.rejected) == (2, 0)  # m1 and its callback
    path.write_bytes(whole)
    second = poll(engine, settings, "answering")
    assert (second.messages, second.rejected) == (1, 0)
    assert "msg:m2" in messages(engine)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"patterns": {"caller": "Caller: (.+)"}}, "patterns.caller: the pattern has no group"),
        ({"patterns": {"caller": "(?P<value>x"}}, "patterns.caller: not a regular expression"),
        (
            {"patterns": {"caller": r"(?<=Caller: )(?P<value>.+)"}},
            "patterns.caller: not a regular expression RE2 accepts",
        ),
        ({"patterns": {"urgency": "U: (?P<value>.+)"}}, "give callback_number or caller"),
        ({"patterns": {"who": "(?P<value>.+)"}}, "patterns.who"),
        ({"returned": "(unclosed"}, "returned: not a regular expression"),
        ({"senders": []}, "senders: List should have at least 1 item"),
        ({"from": "pop3"}, "from: Input should be 'imap', 'mbox' or 'maildir'"),
        ({"sent_path": "Sent.mbox"}, "sent_path: Input should be None"),
        ({"host": "imap.example.com"}, "host: unknown key"),
        ({"max_message_bytes": 50_000_000}, "max_message_bytes: Input should be less than"),
    ],
)
def test_patterns_and_keys_are_checked_when_the_config_is_loaded(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    entry = source({"from": "mbox", "path": "notes.mbox"}) | change
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"sources": [entry]}, tmp_path)
    # Each problem names its source after the key; the key and the words are what is checked.
    said = [line.replace(" (source answering)", "") for line in raised.value.problems]
    assert any(problem in line for line in said), raised.value.problems


def test_the_worked_example_reads_the_bundled_notifications(tmp_path: Path) -> None:
    (entry,) = yaml.safe_load((ROOT / "examples/phone/answering-service-mail.yaml").read_text())
    settings = settings_from_mapping({"sources": [entry]}, ROOT)
    result = poll_example(tmp_path, settings)
    assert (result.rejected, dict(result.left_out)) == (0, {NOT_FROM_SERVICE: 1})
    assert result.messages == 14  # eight messages, six of them returned
    example = load_settings(ROOT / "config.example.yaml")
    (demo,) = [s for s in example.sources if s.kind == "answering_service_mail"]
    assert demo.model_dump(by_alias=True) == {
        **settings.sources[0].model_dump(by_alias=True),
        **{k: getattr(demo, k) for k in ("name", "stage", "calendar")},
    }


def poll_example(folder: Path, settings: Any) -> PollResult:
    from monitor.store.database import make_engine, prepare
    from monitor.store.ingest import poll_source

    engine = make_engine(f"sqlite:///{folder / 'example.db'}", folder)
    prepare(engine)
    result = poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
    assert result.ok, result.error
    statuses = sorted(i.status for i in inquiries(engine))
    assert statuses == ["answered"] * 6 + ["open"] * 2
    return result


def test_a_settled_mbox_gives_its_last_message_even_without_the_closing_empty_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.mbox"
    write_mbox(path, [(DAY[1], ARRIVALS[1])])
    path.write_bytes(path.read_bytes().rstrip(b"\n") + b"\n")
    settings, engine = open_store(tmp_path, [source({"from": "mbox", "path": "notes.mbox"})])
    assert poll(engine, settings, "answering").messages == 0  # just written: maybe unfinished
    past = time.time() - 60
    os.utime(path, (past, past))
    assert poll(engine, settings, "answering").messages == 1
