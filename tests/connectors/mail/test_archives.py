"""The `mbox` and `maildir` connectors: mail archives measured like a mailbox, read
incrementally, and backfilled with `support-monitor import`."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.publish.exporter import exposition
from tests.connectors.store import inquiries, messages, open_store, poll
from tests.mailboxes import AGENT, AGENTS, CUSTOMER, deliver, mbox_entry, message, write_mbox

NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def question(n: int, minutes: float, **extra: Any) -> tuple[bytes, datetime]:
    extra.setdefault("subject", f"Order {n}")
    return message(f"q{n}@customer.test", date=at(minutes - 5), **extra), at(minutes)


def reply(n: int, minutes: float, **extra: Any) -> tuple[bytes, datetime]:
    extra.setdefault("in_reply_to", f"q{n}@customer.test")
    extra.setdefault("sender", AGENT)
    raw = message(
        f"r{n}@example.com", to=[CUSTOMER], subject=f"Re: Order {n}", date=at(minutes), **extra
    )
    return raw, at(minutes + 2)


def answered(engine: Any) -> dict[str, float | None]:
    return {i.opened_by: i.response_seconds for i in inquiries(engine)}


# --- mbox --------------------------------------------------------------------------------------


def test_an_mbox_and_its_sent_file_are_measured_like_a_mailbox(tmp_path: Path) -> None:
    write_mbox(tmp_path / "inbox.mbox", [question(1, 0), question(2, 10)])
    write_mbox(tmp_path / "sent.mbox", [reply(1, 30)])
    source = {"name": "archive", "kind": "mbox", "path": "*.mbox", "sent_path": "sent.mbox"}
    settings, engine = open_store(tmp_path, [source], agents=AGENTS)
    assert poll(engine, settings, "archive", NOW).messages == 3
    assert answered(engine) == {"<q1@customer.test>": 1800.0, "<q2@customer.test>": None}
    assert messages(engine)["<q1@customer.test>"].at == at(0)  # the From line, not Date


def test_a_reply_dated_minutes_before_the_question_it_names_still_answers_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An agent's clock 3 minutes slow: the reply's Date is before the question's arrival.
    In-Reply-To says what it answers: the question is answered, at 0 s, and the skew counted."""
    write_mbox(tmp_path / "inbox.mbox", [question(1, 0)])
    write_mbox(tmp_path / "sent.mbox", [reply(1, -3)])  # Date 08:57, question arrived 09:00
    source = {"name": "archive", "kind": "mbox", "path": "*.mbox", "sent_path": "sent.mbox"}
    settings, engine = open_store(tmp_path, [source], agents=AGENTS)
    poll(engine, settings, "archive", NOW)
    (found,) = inquiries(engine)
    assert (found.status, found.response_seconds, found.clamped) == ("answered", 0.0, True)
    assert not found.breached  # three days later, it is not an overdue question
    assert messages(engine)["<r1@example.com>"].at == at(-3)  # stored as dated, never moved
    metrics = exposition(engine, settings, lambda: NOW).decode()
    assert 'support_responses_clamped_total{channel="email",source="archive"} 1.0' in metrics
    assert 'support_open_inquiries{channel="email",source="archive",stage="experience"} 0.0' in (
        metrics
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path}/monitor.db\n"
        "agents: {addresses: [support@example.com]}\n"
        "sources: [{name: archive, kind: mbox, path: '*.mbox', sent_path: sent.mbox}]\n"
    )
    period = ["--since", "2026-11-20", "--until", "2026-11-21"]
    assert main(["--config", str(config), "report", *period, "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["sources"]
    assert (row["inquiries_answered"], row["inquiries_clamped"]) == (1, 1)
    assert main(["--config", str(config), "report", *period]) == 0
    table = capsys.readouterr().out
    assert "clamped" in table and "1 reply dated before its question" in table


def test_a_takeout_mbox_uses_the_sent_label_and_the_gmail_thread_id(tmp_path: Path) -> None:
    ask = message(
        "t1@customer.test",
        subject="Delivery",
        headers={"X-GM-THRID": "1761000000000001", "X-Gmail-Labels": "Inbox,Opened"},
    )
    # Sent from a personal address, no In-Reply-To: only Gmail's thread id links it.
    answer = message(
        "t2@gmail.test",
        sender="lee.helper@gmail.test",
        to=[CUSTOMER],
        subject="Your delivery",
        date=at(20),
        headers={"X-GM-THRID": "1761000000000001", "X-Gmail-Labels": '"Sent","Opened"'},
    )
    write_mbox(
        tmp_path / "All mail Including Spam and Trash.mbox", [(ask, at(0)), (answer, at(21))]
    )
    source = {"name": "takeout", "kind": "mbox", "path": "*.mbox"}
    settings, engine = open_store(tmp_path, [source], agents=AGENTS)
    assert poll(engine, settings, "takeout", NOW).messages == 2  # spam and drafts are not mail
    assert answered(engine) == {"<t1@customer.test>": 1200.0}
    assert messages(engine)["<t2@gmail.test>"].side == "agent"


def test_an_mbox_is_tailed_one_complete_message_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "support"
    body = "Hello,\nFrom the look of it my parcel is lost.\n\nFrom what I read, a refund?\n"
    write_mbox(path, [question(1, 0, body=body)])
    source = {"name": "spool", "kind": "mbox", "path": "support"}
    settings, engine = open_store(tmp_path, [source], agents=AGENTS)
    assert poll(engine, settings, "spool", NOW).messages == 1  # quoted From lines do not split
    entry = mbox_entry(*question(2, 10))
    head, _, rest = entry.partition(b"Subject")
    with path.open("ab") as handle:
        handle.write(head)  # a delivery agent half way through the headers
    assert poll(engine, settings, "spool", NOW).messages == 0
    with path.open("ab") as handle:
        handle.write(b"Subject" + rest)
        handle.write(mbox_entry(*question(3, 20)).replace(b"\n", b"\r\n"))  # CRLF too
    again = poll(engine, settings, "spool", NOW)
    assert (again.messages, again.rejected) == (2, 0)
    assert sorted(messages(engine)) == [f"<q{n}@customer.test>" for n in (1, 2, 3)]
    assert poll(engine, settings, "spool", NOW).messages == 0


def test_import_backfills_archives_once_and_finds_the_sent_file_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "export"
    archive.mkdir()
    write_mbox(archive / "Inbox", [question(1, 0), question(2, 5)])
    write_mbox(archive / "Sent.mbox", [reply(2, 65)])
    (tmp_path / "live").touch()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path}/monitor.db\n"
        "agents: {addresses: [support@example.com]}\n"
        "sources: [{name: archive, kind: mbox, path: live}]\n"
    )
    files = [str(archive / "Inbox"), str(archive / "Sent.mbox")]
    assert main(["--config", str(config), "import", "archive", *files]) == 0
    assert "archive: 3 new messages" in capsys.readouterr().out
    assert main(["--config", str(config), "import", "archive", *files]) == 0
    assert "archive: 0 new messages" in capsys.readouterr().out
    settings, engine = open_store(tmp_path, [{"name": "archive", "kind": "mbox", "path": "live"}])
    assert answered(engine) == {"<q1@customer.test>": None, "<q2@customer.test>": 3600.0}


# --- Maildir -----------------------------------------------------------------------------------


def test_a_maildir_and_its_sent_folder_are_measured(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    deliver(root, *question(1, 0), seq=1)
    deliver(root, *question(2, 10), seq=2, new=True)
    deliver(root / ".Sent", *reply(2, 40), seq=3)
    # Filed by an IMAP APPEND with an old date: named now, mtime the arrival; the earlier wins.
    late = deliver(root, *question(3, 20), seq=4)
    renamed = late.with_name(f"{int(NOW.timestamp())}.M9P1.mx.test:2,S")
    late.rename(renamed)
    source = {"name": "mail", "kind": "maildir", "path": "Maildir"}
    settings, engine = open_store(tmp_path, [source], agents=AGENTS)
    assert poll(engine, settings, "mail", NOW).messages == 4
    assert answered(engine) == {
        "<q1@customer.test>": None,
        "<q2@customer.test>": 1800.0,
        "<q3@customer.test>": None,
    }
    assert messages(engine)["<q3@customer.test>"].at == at(20)


def test_a_maildir_is_read_incrementally_and_renames_add_nothing(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    first = deliver(root, *question(1, 0), seq=1, new=True)
    source = {"name": "mail", "kind": "maildir", "path": "Maildir", "sent_folder": None}
    settings, engine = open_store(tmp_path, [source], agents=AGENTS)
    assert poll(engine, settings, "mail", NOW).messages == 1
    # A mail client reads it: new/ -> cur/ with the Seen flag. Another message arrives.
    os.rename(first, root / "cur" / f"{first.name}:2,S")
    deliver(root, *question(2, 10), seq=2, new=True)
    again = poll(engine, settings, "mail", NOW)
    assert (again.messages, again.rejected) == (1, 0)
    assert poll(engine, settings, "mail", NOW).messages == 0
    assert len(messages(engine)) == 2


def test_bad_maildir_files_are_rejected_with_their_name(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    deliver(root, *question(1, 0), seq=1)
    bad = deliver(root, message("x@customer.test", sender=""), at(1), seq=2)
    huge = deliver(root, b"X-Long: " + b"y" * (1100 * 1024) + b"\n\nbody", at(2), seq=3)
    source = {"name": "mail", "kind": "maildir", "path": "Maildir", "sent_folder": None}
    settings, engine = open_store(tmp_path, [source], agents=AGENTS)
    result = poll(engine, settings, "mail", NOW)
    assert (result.messages, result.rejected) == (1, 2)
    assert {(r.location, r.reason) for r in result.rejections} == {
        (f"Maildir/cur/{bad.name}", "no From header"),
        (f"Maildir/cur/{huge.name}", "header block longer than 1024 kB"),
    }
    assert poll(engine, settings, "mail", NOW).rejected == 0


def test_import_reads_a_copied_maildir_with_its_sent_folder(tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    deliver(backup, *question(1, 0), seq=1)
    deliver(backup / ".Sent Items", *reply(1, 15), seq=2)
    shutil.copytree(backup, tmp_path / "live")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path}/monitor.db\n"
        "sources: [{name: mail, kind: maildir, path: live}]\n"
    )
    assert main(["--config", str(config), "import", "mail", str(backup)]) == 0
    settings, engine = open_store(tmp_path, [{"name": "mail", "kind": "maildir", "path": "live"}])
    assert answered(engine) == {"<q1@customer.test>": 900.0}
    assert poll(engine, settings, "mail", NOW).messages == 0  # the live copy: same ids
