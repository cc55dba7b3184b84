"""Polling a year of a Slack export, then the same export with one new day file.

    .venv/bin/python bench/slack_export_poll.py [--quick] [--days N] [--keep DIR]

Writes an unpacked workspace export (users.json, channels.json, #support with one day file a
day of 300 messages: a partner's question, an agent's reply in its thread, a bot's
acknowledgement) and measures, in this process:

- ours: a first `slack_export` poll into a new SQLite database (messages, inquiries, tallies,
  batch by batch), against
- baseline: a minimal script's work for the same export: `json.load` every day file and insert
  one row per message with sqlite3 `executemany` in one transaction;
- then one more day file is added and the source polled again: this re-poll must cost what is
  new, not the history (target: under one second; every older day file is only fingerprinted).

The last line is `RESULT {json}` for bench/run.py. `--quick` uses 30 days.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.config_file import settings_from_mapping
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import poll_source

START = datetime(2025, 11, 20, 8, 0, tzinfo=UTC)
PER_DAY = 300
REPOLL_LIMIT_S = 1.0


def write_day(export: Path, number: int) -> None:
    records = []
    for n in range(PER_DAY):
        at = START + timedelta(days=number, seconds=90 * n)
        record = {"type": "message", "text": "x", "ts": f"{int(at.timestamp())}.000100"}
        if n % 3 == 0:
            record["user"] = f"U7PARTNER{n % 7}"
        else:
            parent = at - timedelta(seconds=90 * (n % 3))
            record["thread_ts"] = f"{int(parent.timestamp())}.000100"
            record["user"] = "U0AGENT01" if n % 3 == 1 else "U0BOT0001"
        records.append(record)
    day = (START + timedelta(days=number)).strftime("%Y-%m-%d")
    (export / "support" / f"{day}.json").write_text(json.dumps(records, indent=4))


def generate(export: Path, days: int) -> None:
    (export / "support").mkdir(parents=True)
    users = [
        {"id": "U0AGENT01", "team_id": "T0SHOP", "name": "sam"},
        {"id": "U0BOT0001", "team_id": "T0SHOP", "name": "bot", "is_bot": True},
        *({"id": f"U7PARTNER{n}", "team_id": "T7PEAK", "is_stranger": True} for n in range(7)),
    ]
    (export / "users.json").write_text(json.dumps(users))
    (export / "channels.json").write_text(json.dumps([{"id": "C0SUPPORT", "name": "support"}]))
    for number in range(days):
        write_day(export, number)


def baseline(export: Path, database: Path) -> int:
    db = sqlite3.connect(database)
    db.execute("CREATE TABLE messages (id TEXT PRIMARY KEY, conversation TEXT, at REAL, user TEXT)")
    rows = []
    for path in sorted((export / "support").glob("*.json")):
        for m in json.loads(path.read_bytes()):
            thread = m.get("thread_ts", m["ts"])
            rows.append((f"C0SUPPORT:{m['ts']}", f"C0SUPPORT:{thread}", float(m["ts"]), m["user"]))
    with db:
        db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)", rows)
    db.close()
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 days")
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder")
    args = parser.parse_args()
    days = args.days or (30 if args.quick else 365)
    with tempfile.TemporaryDirectory(prefix="bench-slack-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        export = folder / "export"
        generate(export, days)
        size = sum(p.stat().st_size for p in export.rglob("*.json")) / 1e6
        print(f"{days} day files, {days * PER_DAY:,} messages ({size:.0f} MB)")

        started = time.perf_counter()
        count = baseline(export, folder / "baseline.db")
        baseline_s = time.perf_counter() - started

        source = {"name": "slack", "kind": "slack_export", "path": str(export)}
        source["channels"] = ["support"]
        settings = settings_from_mapping({"sources": [source]}, folder)
        engine = make_engine(f"sqlite:///{folder / 'ours.db'}", folder)
        prepare(engine)
        now = START + timedelta(days=days + 1)
        started = time.perf_counter()
        first = poll_source(engine, settings, settings.sources[0], now=now)
        ours_s = time.perf_counter() - started
        assert first.ok and first.messages == count, (first, count)

        write_day(export, days)
        started = time.perf_counter()
        again = poll_source(engine, settings, settings.sources[0], now=now)
        repoll_s = time.perf_counter() - started
        assert again.ok and again.messages == PER_DAY, again
        engine.dispose()
    ratio = ours_s / baseline_s
    print(f"ours:     {ours_s:8.2f} s  (first poll: messages, inquiries, tallies)")
    print(f"baseline: {baseline_s:8.2f} s  (json.load + executemany)")
    print(f"ratio:    {ratio:8.2f}")
    print(f"re-poll:  {repoll_s:8.3f} s  with one new day file (target < {REPOLL_LIMIT_S:g} s)")
    result = {
        "name": f"slack_export poll, {days} days",
        "ours_s": round(ours_s, 3),
        "baseline_s": round(baseline_s, 3),
        "ratio": round(ratio, 3),
        "target": None,
        "extra": {
            "messages": count,
            "repoll_s": round(repoll_s, 3),
            "ok": repoll_s < REPOLL_LIMIT_S,
            "target": f"re-poll with one new day file < {REPOLL_LIMIT_S:g} s",
        },
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
