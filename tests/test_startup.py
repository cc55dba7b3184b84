"""A command imports what it runs and no more (start-up is most of what `metrics`, `report` or a
digest preview cost on a small site): each command runs in a child interpreter of its own, as
a user runs it, and the modules it loaded are read at its exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_cli import write_chat_config

# Runs the command line as the console script does; at exit, prints the loaded modules.
CHILD = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
from monitor.cli import main
sys.exit(main(sys.argv[1:]))
"""

# Modules no reading command needs: SQLModel's classes and SQLAlchemy's ORM (the queries use the
# tables as Core, monitor.store.schema), the PostgreSQL dialect on SQLite, the scheduler and the
# service, IMAP, rich's progress bar.
NEVER = {
    "sqlmodel",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.postgresql",
    "monitor.store.tables",
    "apscheduler",
    "monitor.service",
    "imapclient",
    "rich",
}
FORBIDDEN = {
    # `--help` is argparse alone: none of the application.
    "--help": NEVER | {"sqlalchemy", "pydantic", "yaml", "jinja2", "monitor.config"},
    "metrics": NEVER | {"jinja2"},
    "report": NEVER | {"jinja2", "prometheus_client"},
    "digest": NEVER | {"prometheus_client"},
}


def _loaded(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return set(loaded)


@pytest.mark.parametrize("command", sorted(FORBIDDEN))
def test_a_command_imports_none_of_what_it_does_not_run(command: str, tmp_path: Path) -> None:
    config = str(write_chat_config(tmp_path))
    args = {
        "--help": ["--help"],
        "metrics": ["--config", config, "metrics"],
        "report": ["--config", config, "report"],
        "digest": ["--config", config, "digest", "--preview", str(tmp_path / "digest.html")],
    }[command]
    loaded = _loaded(*args)
    assert sorted(FORBIDDEN[command] & loaded) == []
    if command != "--help":  # it did run: the database was opened
        assert "monitor.store.schema" in loaded


# Runs the command line; a process forked from it writes, as it starts, what was imported then.
FORKED = """
import json, os, sys
path = sys.argv.pop(1)
def note() -> None:
    with open(path, "a") as out:
        out.write(json.dumps(sorted(sys.modules)) + "\\n")
os.register_at_fork(after_in_child=note)
from monitor.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_poll_reads_its_first_source_before_it_imports_the_store(tmp_path: Path) -> None:
    """SQLAlchemy and the store's modules are most of a poll's start-up: the first source's
    reading child is forked before them (the database URL is checked after the fork, and the
    cursor read from the SQLite file itself), so that it reads while they are imported."""
    # A queue_log read from a file is a source of its own; its settings load every source's
    # kind, and a queue_log's table reader (SQLAlchemy's) is imported only if it reads a table.
    (tmp_path / "queue_log").write_text("")
    queue_log = [{"name": "pbx", "kind": "asterisk_queue_log", "path": "queue_log"}]
    config = str(write_chat_config(tmp_path))
    data = yaml.safe_load(Path(config).read_text())
    data["sources"] += queue_log
    Path(config).write_text(yaml.safe_dump(data))
    forks = tmp_path / "forks.jsonl"
    said, first_forks = [], []
    for _ in range(2):  # a new database, then one holding the sources' cursors
        forks.write_text("")
        done = subprocess.run(
            [sys.executable, "-c", FORKED, str(forks), "--config", config, "poll"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        said.append(done.stdout.splitlines()[0].split(" in ")[0])
        first_forks.append(set(json.loads(forks.read_text().splitlines()[0])))
    assert said == ["website-chat: 6 new messages, 0 calls, 0 rejected"] + [
        "website-chat: 0 new messages, 0 calls, 0 rejected"
    ]
    store = {"sqlalchemy", "monitor.store.database", "monitor.store.ingest"}
    for loaded in first_forks:
        assert "connectors.chat.jsonl" in loaded  # the source's kind: it reads
        assert sorted(loaded & store) == []
