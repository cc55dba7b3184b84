"""The command line as a user meets it: exit codes, one-line errors, one line per source."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.publish.deliveries import DeliveryError, claim, record, take_due
from monitor.store.database import make_engine
from tests.loopback import LoopbackServer, imap_source
from tests.servers import free_port

T0 = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)


def chat_lines(count: int = 6) -> str:
    lines = []
    for n in range(count):
        conversation = f"c{n // 2}"
        role = "customer" if n % 2 == 0 else "agent"
        at = T0 + timedelta(minutes=3 * n)
        lines.append(
            json.dumps({"conversation": conversation, "at": at.isoformat(), "author_role": role})
        )
    return "\n".join(lines) + "\n"


def write_chat_config(tmp_path: Path, **extra: Any) -> Path:
    """A config with one chat_jsonl source on a small log, a SQLite file, all in tmp_path; the
    metrics on a free port (`check` tries to listen there)."""
    (tmp_path / "chat.jsonl").write_text(chat_lines())
    config = {
        "timezone": "Europe/London",
        "database": "sqlite:///monitor.db",
        "sources": [
            {"name": "website-chat", "kind": "chat_jsonl", "path": "chat.jsonl", "every": "1m"}
        ],
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        **extra,
    }
    path = tmp_path / "support-monitor.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a child process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_typo_in_the_config_names_the_key_and_exits_2_without_a_traceback(
    tmp_path: Path,
) -> None:
    config = write_chat_config(tmp_path, targets={"hold_wran": "5m"})
    done = cli("--config", config, "check")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["config error: targets.hold_wran: unknown key"]
    assert "Traceback" not in done.stderr + done.stdout


def test_a_missing_config_file_is_one_line_and_exits_2(tmp_path: Path) -> None:
    done = cli("--config", tmp_path / "nope.yaml", "poll")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "cannot read the config file" in done.stderr


def test_check_prints_one_line_per_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_chat_config(tmp_path)
    assert main(["--config", str(config), "check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["ok", "ok", "ok", "ok"]
    assert lines[3].startswith("ok    source website-chat (chat_jsonl): 1 file")


def test_check_fails_with_exit_1_when_a_source_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_chat_config(tmp_path)
    (tmp_path / "chat.jsonl").unlink()
    assert main(["--config", str(config), "check"]) == 1
    (failed,) = [line for line in capsys.readouterr().out.splitlines() if "FAIL" in line]
    assert failed.startswith("FAIL  source website-chat (chat_jsonl):")


def test_check_never_shows_the_smtp_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smtp = {"host": "127.0.0.1", "port": 9, "security": "none", "sender": "m@example.com"}
    smtp |= {"username": "monitor", "password": "hunter2-secret"}
    config = write_chat_config(tmp_path, smtp=smtp, digest={"to": ["lead@example.com"]})
    assert main(["--config", str(config), "check"]) == 1  # nothing listens on port 9
    out = capsys.readouterr().out
    assert "FAIL  smtp: 127.0.0.1:9" in out and "hunter2" not in out


def test_poll_prints_what_it_ingested_and_a_second_poll_adds_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_chat_config(tmp_path))
    assert main(["--config", config, "poll"]) == 0
    assert main(["--config", config, "poll", "website-chat"]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("website-chat: 6 new messages")
    assert second.startswith("website-chat: 0 new messages")


def test_poll_of_an_unknown_source_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_chat_config(tmp_path))
    assert main(["--config", config, "poll", "nope"]) == 2
    assert "no source named nope (configured: website-chat)" in capsys.readouterr().err


def test_report_and_metrics_agree_on_the_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_chat_config(tmp_path))
    main(["--config", config, "poll"])
    capsys.readouterr()
    argv = ["--config", config, "report", "--since", "2026-11-01", "--format", "json"]
    assert main(argv) == 0
    (figures,) = json.loads(capsys.readouterr().out)["sources"]
    assert main(["--config", config, "metrics"]) == 0
    exposition = capsys.readouterr().out
    (total,) = [
        line for line in exposition.splitlines() if line.startswith("support_inquiries_total{")
    ]
    assert float(total.rsplit(" ", 1)[1]) == figures["inquiries_received"] == 3
    assert figures["inquiries_answered"] == 3


def test_report_of_an_empty_period_says_where_the_data_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_chat_config(tmp_path))
    main(["--config", config, "poll"])
    capsys.readouterr()
    assert (
        main(["--config", config, "report", "--since", "2027-01-01", "--until", "2027-01-08"]) == 0
    )
    out = capsys.readouterr().out
    groups, header = out.splitlines()[3:5]
    assert "opened in the period" in groups and "open now" in groups
    assert header.split()[:6] == ["source", "channel", "received", "answered", "late", "clamped"]
    assert out.rstrip().endswith(
        "Nothing in this period; the latest activity stored is on 2026-11-19: "
        "try --since 2026-11-13 --until 2026-11-20"
    )


def test_report_keeps_counts_shares_and_times_apart_and_rounds_durations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reply 25 minutes and a microsecond after the question: 1500 s in JSON and CSV, as the
    table's 25m 00s, never 1500.000001. Counts, shares and times sit in their own groups."""
    config = write_chat_config(tmp_path)
    asked = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
    (tmp_path / "chat.jsonl").write_text(
        json.dumps({"conversation": "c", "at": asked.isoformat(), "author_role": "customer"})
        + "\n"
        + json.dumps(
            {
                "conversation": "c",
                "at": (asked + timedelta(minutes=25, microseconds=1)).isoformat(),
                "author_role": "agent",
            }
        )
        + "\n"
    )
    main(["--config", str(config), "poll"])
    period = ["--since", "2026-11-19", "--until", "2026-11-20"]
    capsys.readouterr()
    assert main(["--config", str(config), "report", *period, "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["sources"]
    assert row["inquiries_median_seconds"] == 1500 and row["inquiries_p90_seconds"] == 1500
    assert main(["--config", str(config), "report", *period, "--format", "csv"]) == 0
    assert "1500.000001" not in capsys.readouterr().out
    assert main(["--config", str(config), "report", *period]) == 0
    groups, header, _, line = capsys.readouterr().out.splitlines()[3:7]
    assert groups.split() == [
        "opened", "in", "the", "period", "share", "response", "time", "open", "now"
    ]  # fmt: skip
    cells = line.split()
    # counts: received, answered, late (chat's 2-minute target), clamped
    assert cells[2:6] == ["1", "1", "1", "0"]
    assert cells[6] == "0%"  # the share answered within target, in a group of its own
    assert " ".join(cells[7:9]) == "25m 00s"


def test_report_rejects_an_unreadable_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_chat_config(tmp_path))
    assert main(["--config", config, "report", "--since", "last tuesday"]) == 2
    assert "--since: expected a date like 2026-11-20" in capsys.readouterr().err


def test_an_unreachable_database_is_one_line_and_exits_1(tmp_path: Path) -> None:
    config = write_chat_config(tmp_path, database="sqlite:///chat.jsonl/monitor.db")
    done = cli("--config", config, "poll")
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_poll_connects_to_its_first_source_while_the_store_opens(tmp_path: Path) -> None:
    """The first source's reading child is forked before the store is opened, so connecting
    (and logging in) costs the poll no time. Here the store stays locked until the server has
    seen that connection: opening it first would wait for it in vain, and fail. The server then
    hangs up, and the source's failure is still one line with the poll's exit status."""
    import socket
    import sqlite3
    import threading

    from monitor.store.database import prepare

    config = write_chat_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)
    port = server.getsockname()[1]
    data["sources"] = [
        {"name": "inbox", "kind": "imap", "host": "127.0.0.1", "port": port, "security": "none"}
        | {"username": "u", "password": "p", "timeout": "20s"},
        *data["sources"],
    ]
    config.write_text(yaml.safe_dump(data))
    engine = make_engine("sqlite:///monitor.db", tmp_path)
    prepare(engine)
    engine.dispose()
    lock = sqlite3.connect(tmp_path / "monitor.db", isolation_level=None, check_same_thread=False)
    lock.execute("PRAGMA locking_mode=EXCLUSIVE")
    lock.execute("BEGIN EXCLUSIVE")
    seen: list[bool] = []

    def answer_once() -> None:
        try:
            connection, _ = server.accept()
        except TimeoutError:
            return
        seen.append(True)
        lock.close()  # the store opens now
        connection.close()  # and the source hangs up before its greeting

    answering = threading.Thread(target=answer_once)
    answering.start()
    try:
        done = cli("--config", config, "poll")
    finally:
        answering.join()
        server.close()
        lock.close()
    assert seen == [True]
    inbox, chat = done.stdout.splitlines()
    assert inbox.startswith(f"inbox: FAILED 127.0.0.1:{port}: ") and chat.startswith(
        "website-chat: 6 new messages"
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr


class SilentFetch(LoopbackServer):
    """An IMAP server that logs anyone in, opens INBOX with three messages, and never answers
    their FETCH (until the test ends): a source that hangs while its reading has begun."""

    def serve(self) -> None:
        import socket

        try:
            connection, _ = self.server.accept()
        except OSError:
            return
        with connection, connection.makefile("rb") as lines:
            try:
                connection.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] silent\r\n")
                for line in lines:
                    tag, _, command = line.rstrip(b"\r\n").partition(b" ")
                    verb = command.split(b" ", 1)[0].upper()
                    said = b""
                    if verb == b"CAPABILITY":
                        said = b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"
                    elif verb == b"EXAMINE":
                        said = b"* 3 EXISTS\r\n* OK [UIDVALIDITY 1] ok\r\n* OK [UIDNEXT 4] ok\r\n"
                    elif verb == b"UID" and b"SEARCH" in command.upper():
                        said = b"* SEARCH 1 2 3\r\n"
                    elif verb == b"UID":  # the FETCH: no answer, until the server closes
                        self.server.settimeout(None)
                        connection.recv(1, socket.MSG_PEEK)
                        return
                    connection.sendall(said + tag + b" OK done\r\n")
            except OSError:
                return


def test_a_poll_whose_store_does_not_open_stops_its_reading_at_once(tmp_path: Path) -> None:
    """The first source's reading begins before the store is opened; when the store then
    refuses (a database from a newer version), the child is stopped at once, not after a grace
    period for a reading that nobody will take (here it waits on a server that never answers)."""
    import time

    from monitor.store.database import prepare, set_meta

    engine = make_engine("sqlite:///monitor.db", tmp_path)
    prepare(engine)
    with engine.begin() as conn:
        set_meta(conn, "schema_version", "99")
    engine.dispose()
    with SilentFetch() as server:
        config = tmp_path / "monitor.yaml"
        config.write_text(
            yaml.safe_dump(
                {"database": "sqlite:///monitor.db", "sources": [imap_source(server.port, "60s")]}
            )
        )
        started = time.monotonic()
        done = cli("--config", config, "poll")
        took = time.monotonic() - started
    assert done.returncode == 1 and "newer than this support-monitor" in done.stderr
    assert took < 4.0  # the grace for a child told to stop is 5 s


def test_run_refuses_a_second_instance_on_the_same_sqlite_file(tmp_path: Path) -> None:
    from monitor.store.database import make_engine
    from monitor.store.leases import instance_lock

    config = write_chat_config(tmp_path)
    with instance_lock(make_engine("sqlite:///monitor.db", tmp_path)):
        done = cli("--config", config, "run")
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert "SQLite allows one instance: use PostgreSQL" in line


def test_import_backfills_files_and_leaves_the_cursor_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_chat_config(tmp_path))
    archive = tmp_path / "archive.jsonl"
    archive.write_text(chat_lines(4).replace('"conversation": "c', '"conversation": "old-'))
    assert main(["--config", config, "import", "website-chat", str(archive)]) == 0
    assert main(["--config", config, "import", "website-chat", str(archive)]) == 0
    assert main(["--config", config, "poll"]) == 0  # the live file is still read from its start
    imported, again, polled = capsys.readouterr().out.splitlines()
    assert imported.startswith("website-chat: 4 new messages")
    assert again.startswith("website-chat: 0 new messages")
    assert polled.startswith("website-chat: 6 new messages")


def test_import_of_a_missing_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_chat_config(tmp_path))
    assert main(["--config", config, "import", "website-chat", str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_digest_that_failed_for_good_shows_in_check_and_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_chat_config(tmp_path)
    assert main(["--config", str(config), "poll"]) == 0
    engine = make_engine(f"sqlite:///{tmp_path}/monitor.db", tmp_path)
    with engine.begin() as conn:
        claim(conn, key="digest:2026-11-19", purpose="digest", notifier="email", payload={}, now=T0)
    (taken,) = take_due(engine, T0)
    record(engine, taken, DeliveryError("smtp: 550 mailbox unavailable", permanent=True), T0)
    capsys.readouterr()
    assert main(["--config", str(config), "check"]) == 0  # a warning: SMTP may work again now
    out = capsys.readouterr().out
    assert (
        "warn  deliveries failed (digest by email: 1); latest digest:2026-11-19: smtp: 550" in out
    )
    assert main(["--config", str(config), "metrics"]) == 0
    metrics = capsys.readouterr().out
    assert 'support_deliveries_failed{notifier="email",purpose="digest"} 1.0' in metrics


def test_importing_the_cli_leaves_the_garbage_collector_as_it_was() -> None:
    # The collector is off during the start-up imports only (monitor.cli): a program or test
    # importing the module keeps its own setting.
    check = "import gc, sys; gc.disable() if sys.argv[1] == 'off' else None; import monitor.cli; "
    check += "print(gc.isenabled())"
    for setting, expected in (("on", "True"), ("off", "False")):
        done = subprocess.run(
            [sys.executable, "-c", check, setting], capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == expected


# An outsider's chat: a conversation id that clears the screen, retitles the window and forges
# an alert line, and a name that turns the terminal red and overwrites its line.
FORGED = "firing    forged critical everything/is-fine"
HOSTILE_CONVERSATION = f"c\x1b[2J\x1b]0;pwned\x07\r\n{FORGED}"
HOSTILE_NAME = "Dana\x1b[31m\rRESOLVED\x9b1m\u202eevil"
UNPRINTABLE = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


def test_what_an_outsider_wrote_reaches_the_terminal_printable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_chat_config(tmp_path))
    chat = {"conversation": HOSTILE_CONVERSATION, "author_role": "customer", "author": HOSTILE_NAME}
    with (tmp_path / "chat.jsonl").open("a") as log:
        log.write(json.dumps({**chat, "at": (T0 + timedelta(hours=2)).isoformat()}) + "\n")
    outputs = []
    for args in (
        ["poll"],
        ["alerts", "--dry-run"],
        ["alerts"],
        ["digest", "--date", "2026-11-19"],
        ["report", "--since", "2026-11-19", "--until", "2026-11-20", "--format", "csv"],
    ):
        main(["--config", config, *args])
        captured = capsys.readouterr()
        outputs.append(captured.out + captured.err)
    text = "\n".join(outputs)
    # `alerts` says what changed in words; the conversation's id, an outsider's, is not shown.
    assert "pwned" not in outputs[1] and "reply_overdue critical: Chat inquiry" in outputs[1]
    assert [c for c in UNPRINTABLE if c in text] == []
    assert not [line for line in text.splitlines() if line.startswith(FORGED)]
    assert "Dana\u241b[31m" in outputs[3]  # the digest names who waits, as printable text


def test_log_lines_are_printable_lines() -> None:
    import logging

    from monitor.cli import PrintableFormatter

    formatter = PrintableFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.WARNING, "", 0, "rejected %s", ("a\x1b[2J\nb",), None)
    assert formatter.format(record) == "WARNING rejected a\u241b[2J\u240ab"


def test_check_names_a_refused_file_as_printable_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check` names the first file a poll would refuse (here a FIFO in the glob): that name,
    like any name in a watched folder, is printed as one printable line."""
    import os

    config = write_chat_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["sources"][0]["path"] = "*.jsonl"
    config.write_text(yaml.safe_dump(raw))
    os.mkfifo(tmp_path / "c\x1b[2J\x1b]0;pwned\x07\r\nfiring    forged.jsonl")
    assert main(["--config", str(config), "check"]) == 1
    out = capsys.readouterr().out
    shown = "c\u241b[2J\u241b]0;pwned\u2407\u240d\u240afiring    forged.jsonl: not a regular file"
    assert shown in out
    assert [c for c in UNPRINTABLE if c in out] == []
    assert not [line for line in out.splitlines() if line.startswith("firing")]


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_help_and_version_are_answered_before_the_application_is_imported(option: str) -> None:
    # Start-up is most of what `--help` costs: the database layer, pydantic and the
    # connectors are imported only by commands that use them.
    script = (
        "import sys\n"
        "from monitor.cli import main\n"
        "try:\n"
        f"    main([{option!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('sqlalchemy', 'sqlmodel', 'pydantic', 'yaml', 'connectors', 'imapclient')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
