"""Fault injection: the process killed at random moments loses and doubles nothing."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, func, select

from monitor.config_file import load_settings
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import poll_source
from monitor.store.tables import INQUIRIES, MESSAGES, TALLIES

LINES = 30_000  # six batches of the tailer's 5,000 lines
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def write_log(path: Path) -> None:
    start = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    with path.open("w") as handle:
        for n in range(LINES):
            role = ("customer", "customer", "agent", "bot", "agent")[n % 5]
            at = start + timedelta(seconds=37 * n)
            record = {"conversation": f"c{n // 10}", "at": at.isoformat(), "author_role": role}
            handle.write(json.dumps(record) + "\n")


def write_config(folder: Path, database: str) -> Path:
    config = {
        "database": database,
        "sources": [{"name": "chat", "kind": "chat_jsonl", "path": "chat.jsonl"}],
    }
    path = folder / f"{database.rsplit('/', 1)[-1]}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def outcome(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            "messages": conn.execute(select(func.count()).select_from(MESSAGES)).scalar_one(),
            "inquiries": sorted(
                (r.conversation, r.opened_by, r.status, r.response_seconds)
                for r in conn.execute(select(INQUIRIES))
            ),
            "tallies": sorted(
                (r.metric, r.labels, r.le, r.value) for r in conn.execute(select(TALLIES))
            ),
        }


def test_polls_killed_at_random_moments_then_resumed_equal_one_clean_poll(
    tmp_path: Path,
) -> None:
    write_log(tmp_path / "chat.jsonl")
    clean_config = load_settings(write_config(tmp_path, "sqlite:///clean.db"))
    clean = make_engine(clean_config.file.database, tmp_path)
    prepare(clean)
    poll_source(clean, clean_config, clean_config.sources[0], now=NOW)
    expected = outcome(clean)
    assert expected["messages"] == LINES

    # How long a whole poll takes on this machine now, start-up included: the kill moments are
    # drawn within it, so the first poll is always cut short, however fast or loaded the
    # machine (fixed moments were all past the end once polls got faster).
    started = time.monotonic()
    timed = write_config(tmp_path, "sqlite:///timed.db")
    subprocess.run([sys.executable, "-m", "monitor", "--config", str(timed), "poll"], check=True)
    whole = time.monotonic() - started
    config = write_config(tmp_path, "sqlite:///killed.db")
    chance = random.Random(20261122)  # fixed seed: a failure can be replayed
    kills = 0
    for attempt in range(5):
        poll = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "poll"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # A random moment of the poll: start-up, mid-batch, between batches, the end (the later
        # polls have less left to read, and may end before theirs).
        moment = whole * chance.uniform(0.15, 0.6 if attempt == 0 else 1.0)
        try:
            poll.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            poll.send_signal(signal.SIGKILL)
            kills += 1
        poll.wait()
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "poll"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert kills > 0, "no poll was interrupted: the kill moments are too late for this machine"
    killed = make_engine("sqlite:///killed.db", tmp_path)
    assert outcome(killed) == expected
