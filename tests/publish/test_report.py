"""`report` of sources that were not read: named before the tables, their rows marked, and
`complete` with the reading state on every JSON and CSV row: a 0 is never a quiet period."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from tests.servers import unreachable_mailbox
from tests.test_cli import write_chat_config

PERIOD = ["--since", "2026-11-19", "--until", "2026-11-20"]


@pytest.fixture
def config(tmp_path: Path) -> str:
    """The chat source, read; an IMAP mailbox nobody listens for, polled and failed."""
    path = write_chat_config(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["sources"].append(unreachable_mailbox())
    path.write_text(yaml.safe_dump(raw))
    assert main(["--config", str(path), "poll"]) == 1
    return str(path)


def test_the_table_names_the_source_not_read_first_and_marks_its_rows(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["--config", config, "report", *PERIOD]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[2] == "Not read: the figures of the sources marked * are incomplete"
    assert lines[3].startswith("  helpdesk-mail: never read: 1 failed poll since ")
    assert lines[4].startswith("    last error: 127.0.0.1:") and "refused" in lines[4]
    rows = {line.split()[0]: line for line in lines if line.startswith(("website", "helpdesk"))}
    assert set(rows) == {"website-chat", "helpdesk-mail*"}


def test_json_and_csv_rows_say_whether_their_figures_are_complete(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["--config", config, "report", *PERIOD, "--format", "json"]) == 0
    chat, mail = json.loads(capsys.readouterr().out)["sources"]
    assert (chat["complete"], chat["health"], chat["failed_polls"]) == (True, "ok", 0)
    assert (mail["complete"], mail["health"], mail["failed_polls"]) == (False, "never_read", 1)
    assert mail["inquiries_received"] == 0 and mail["last_success_at"] is None
    assert "refused" in mail["last_error"] and mail["failing_since"]
    assert main(["--config", config, "report", *PERIOD, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["source"], r["complete"], r["health"]) for r in rows] == [
        ("website-chat", "True", "ok"),
        ("helpdesk-mail", "False", "never_read"),
    ]
