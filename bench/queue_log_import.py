"""Importing a queue_log of 1,000,000 lines against a minimal parse-and-insert script (SPEC §10).

    .venv/bin/python bench/queue_log_import.py [--quick] [--lines N] [--keep DIR]

Writes a generated Asterisk queue_log (two queues; each caller: ENTERQUEUE, a few RINGNOANSWER,
then CONNECT + COMPLETECALLER/COMPLETEAGENT or a transfer, or ABANDON / EXITWITHTIMEOUT;
agent PAUSE lines between) and imports it twice, each in its own child process:

- ours: `support-monitor import` of an `asterisk_queue_log` source into a new SQLite database
  (calls, callback inquiries for abandoned callers, tallies, batch by batch);
- baseline: a minimal script that splits lines on `|`, pairs ENTERQUEUE with the caller's
  terminal event in a dict and inserts one row per call with sqlite3 `executemany` in one
  transaction.

It prints both times, the ratio (target <= 3.0) and each child's peak memory (ru_maxrss from
wait4; target under 500 MB whatever the file size). The last line is `RESULT {json}` for
bench/run.py. `--quick` uses 50,000 lines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
START = 1_795_165_200  # 2026-11-20 09:00 UTC
TARGET_RATIO = 3.0
MEMORY_LIMIT_MB = 500

BASELINE = r"""
import sqlite3, sys
path, database = sys.argv[1], sys.argv[2]
db = sqlite3.connect(database)
db.execute("CREATE TABLE calls (id TEXT PRIMARY KEY, queue TEXT, entered REAL, "
           "outcome TEXT, wait REAL, talk REAL, caller TEXT)")
ENDS = {"COMPLETECALLER": "answered", "COMPLETEAGENT": "answered",
        "BLINDTRANSFER": "transferred", "ABANDON": "abandoned", "EXITWITHTIMEOUT": "timeout"}
entered = {}
rows = []
with open(path, encoding="utf-8") as handle:
    for line in handle:
        f = line.rstrip("\n").split("|")
        event = f[4]
        if event == "ENTERQUEUE":
            entered[(f[1], f[2])] = (float(f[0]), f[6])
        elif event in ENDS:
            at, caller = entered.pop((f[1], f[2]), (float(f[0]), ""))
            if event == "BLINDTRANSFER":
                wait, talk = float(f[7]), float(f[8])
            elif event.startswith("COMPLETE"):
                wait, talk = float(f[5]), float(f[6])
            else:
                wait, talk = float(f[7]), None
            rows.append((f"{f[1]}@{f[2]}@{int(at)}", f[2], at, ENDS[event], wait, talk, caller))
with db:
    db.executemany("INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
"""


def generate(path: Path, lines: int) -> int:
    """Write about `lines` lines; return how many calls they hold."""
    rnd = random.Random(4)
    written = calls = 0
    at = START
    with path.open("w") as out:
        while written < lines:
            calls += 1
            callid, queue = f"{at}.{calls}", ("support", "sales")[calls % 2]
            caller = f"+4420{calls % 10_000_000:07d}"  # repeat callers are rare
            wait = int(rnd.expovariate(1 / 60)) + 1
            block = [f"{at}|{callid}|{queue}|NONE|ENTERQUEUE||{caller}|1"]
            for ring in range(min(wait // 15, 3)):
                block.append(f"{at + 15 * ring + 15}|{callid}|{queue}|PJSIP/201|RINGNOANSWER|15000")
            end = at + wait
            roll = rnd.random()
            if roll < 0.08:
                block.append(f"{end}|{callid}|{queue}|NONE|ABANDON|1|1|{wait}")
            elif roll < 0.10:
                block.append(f"{end}|{callid}|{queue}|NONE|EXITWITHTIMEOUT|1|1|{wait}")
            else:
                talk = rnd.randint(30, 600)
                block.append(f"{end}|{callid}|{queue}|PJSIP/202|CONNECT|{wait}|{end}.9|3")
                if roll < 0.13:
                    block.append(
                        f"{end + talk}|{callid}|{queue}|PJSIP/202|BLINDTRANSFER"
                        f"|300|from-internal|{wait}|{talk}|1"
                    )
                else:
                    verb = ("COMPLETECALLER", "COMPLETEAGENT")[calls % 2]
                    block.append(f"{end + talk}|{callid}|{queue}|PJSIP/202|{verb}|{wait}|{talk}|1")
            if calls % 50 == 0:
                block.append(f"{at}|NONE|support|PJSIP/203|PAUSE|break")
            out.write("\n".join(block) + "\n")
            written += len(block)
            at += rnd.randint(1, 20)
    return calls


def run_child(command: list[str]) -> tuple[float, float]:
    """Run `command`; return its wall time (s) and peak resident memory (MB)."""
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{command[:3]} failed with exit status {child.returncode}")
    return elapsed, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 lines")
    parser.add_argument("--lines", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder")
    args = parser.parse_args()
    lines = args.lines or (50_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-queue-log-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "queue_log"
        calls = generate(log, lines)
        print(f"{lines:,} lines ({log.stat().st_size / 1e6:.0f} MB), {calls:,} calls")
        config = folder / "bench.yaml"
        source = {"name": "queue", "kind": "asterisk_queue_log", "path": str(log)}
        ours_db = folder / "ours.db"
        config.write_text(yaml.safe_dump({"database": f"sqlite:///{ours_db}", "sources": [source]}))
        script = folder / "baseline.py"
        script.write_text(BASELINE)
        baseline_s, baseline_mb = run_child(
            [sys.executable, str(script), str(log), str(folder / "baseline.db")]
        )
        ours_s, ours_mb = run_child(
            [sys.executable, "-m", "monitor", "--config", str(config), "import", "queue", str(log)]
        )
    ratio = ours_s / baseline_s
    print(f"ours:     {ours_s:8.2f} s  peak {ours_mb:6.0f} MB  (support-monitor import)")
    print(
        f"baseline: {baseline_s:8.2f} s  peak {baseline_mb:6.0f} MB  (split + pair + executemany)"
    )
    print(
        f"ratio:    {ratio:8.2f}   target <= {TARGET_RATIO}; memory target < {MEMORY_LIMIT_MB} MB"
    )
    result = {
        "name": f"queue_log import, {lines:,} lines",
        "ours_s": round(ours_s, 3),
        "baseline_s": round(baseline_s, 3),
        "ratio": round(ratio, 3),
        "target": TARGET_RATIO,
        "extra": {
            "lines": lines,
            "calls": calls,
            "ours_peak_mb": round(ours_mb, 1),
            "baseline_peak_mb": round(baseline_mb, 1),
            "memory_ok": ours_mb < MEMORY_LIMIT_MB,
        },
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
