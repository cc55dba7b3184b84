"""Importing a queue_log of 1,000,000 lines against a minimal parse-and-insert script.

    .venv/bin/python bench/queue_log_import.py [--quick] [--lines N] [--rounds R] [--keep DIR]

Writes a generated Asterisk queue_log shaped like a busy call centre's (bench/_queue_log_site.py:
30% of callers leave unanswered through ABANDON, EXITWITHTIMEOUT, EXITWITHKEY or EXITEMPTY, 30%
rang before, 6% are transferred with BLINDTRANSFER or ATTENDEDTRANSFER, callers' lines
interleave in time order; a million lines hold about 281,000 calls and 82,000 unanswered ones
from a number that can be called back) and imports it with each of these, in child processes of
their own, alternating for R rounds (5, `--quick` 3; each run into a new database):

- ours: `support-monitor import` of an `asterisk_queue_log` source into a new SQLite database
  (calls, a callback inquiry for each unanswered caller with a number, tallies, batch by batch);
- baseline: a minimal script that splits lines on `|`, pairs ENTERQUEUE with the caller's
  terminal event in a dict and inserts one row per call (the same calls: id, queue, entered,
  answered and left times, outcome, wait, talk, caller) with sqlite3 `executemany` in one
  transaction. It keeps times as epoch seconds and no index but the id's; our indexes (calls by
  id and by time, besides the table) are our overhead, like tallies and callback inquiries.

Our package is byte-compiled first (`_children.byte_compile`: as an installation is). It prints
both median times (wall clock; CPU time beside it, as the machine may be shared) and each run's,
the ratio (target <= 2.0: the median of the rounds' own ratios, each of two runs seconds apart,
as this machine's speed drifts by a third from minute to minute) and each child's peak memory
(ru_maxrss from wait4; target under 500 MB whatever the file size). Then it checks that both
stored the same calls, field by field, so the comparison is of the same work, and counts our
callback messages and the callback inquiries still open.

Then the poll bar, "a poll that finds 50 new calls after a million-line file costs
well under a second beyond start-up": `support-monitor poll` once over the imported file (the
rows are stored already; this brings the source's cursor to the end of the file), then three
times a poll with nothing new (start-up: imports, config, database, one look at the file) and
a poll after 50 more calls were appended. It prints the medians and their difference, and
the median time of `poll_source` itself for 50 new calls, timed inside its process.

The last line is `RESULT {json}` for bench/run.py. The row has three targets: the ratio, the
memory and the poll; `extra` holds a verdict for each (`ratio_ok`, `memory_ok`, `poll_ok`) and
their words (`targets`). `--quick` uses 50,000 lines.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import yaml
from _children import Child, byte_compile, median_child, run_child
from _queue_log_site import append_calls, generate

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 2.0
MEMORY_LIMIT_MB = 500
NEW_CALLS = 50
POLL_ROUNDS = 3
POLL_LIMIT_S = 1.0

BASELINE = r"""
import sqlite3, sys
path, database = sys.argv[1], sys.argv[2]
db = sqlite3.connect(database)
db.execute("CREATE TABLE calls (id TEXT PRIMARY KEY, queue TEXT, entered REAL, answered REAL, "
           "left REAL, outcome TEXT, wait REAL, talk REAL, caller TEXT)")
ENDS = {"COMPLETECALLER": "answered", "COMPLETEAGENT": "answered",
        "BLINDTRANSFER": "transferred", "ATTENDEDTRANSFER": "transferred",
        "ABANDON": "abandoned", "EXITWITHTIMEOUT": "timeout", "EXITWITHKEY": "exit_key",
        "EXITEMPTY": "exit_empty"}
entered = {}
rows = []
with open(path, encoding="utf-8") as handle:
    for line in handle:
        f = line.rstrip("\n").split("|")
        event = f[4]
        if event == "ENTERQUEUE":
            entered[(f[1], f[2])] = (float(f[0]), f[6] or None)
        elif event in ENDS:
            left = float(f[0])
            outcome = ENDS[event]
            if outcome == "answered":
                wait, talk = float(f[5]), float(f[6])
            elif outcome == "transferred":  # holdtime | calltime | origpos, from the right
                wait, talk = float(f[-3]), float(f[-2])
            else:
                wait, talk = float(f[8] if event == "EXITWITHKEY" else f[7]), None
            at, caller = entered.pop((f[1], f[2]), (left - wait - (talk or 0), None))
            answered = None if talk is None else at + wait
            rows.append((f"{f[1]}@{f[2]}@{int(at)}", f[2], at, answered, left, outcome, wait,
                         talk, caller))
with db:
    db.executemany("INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
"""


# One poll in a process of its own, timed from inside: what the poll itself costs once the
# program has started (imports, config, database opened).
TIMED_POLL = r"""
import sys, time
from pathlib import Path
from monitor.cli import open_store
from monitor.config_file import load_settings
from monitor.store.ingest import poll_source, utcnow
settings = load_settings(Path(sys.argv[1]))
engine = open_store(settings)
started = time.perf_counter()
result = poll_source(engine, settings, settings.source("queue"), now=utcnow())
print(f"{time.perf_counter() - started:.6f} {result.calls}")
"""


def timed_poll(config: Path) -> tuple[float, int]:
    """(seconds the poll took inside its process, calls it stored)."""
    done = subprocess.run(
        [sys.executable, "-c", TIMED_POLL, str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, stored = done.stdout.split()
    return float(seconds), int(stored)


def runs(children: list[Child]) -> str:
    return " ".join(f"{c.wall_s:.2f}" for c in children)


def same_calls(ours: Path, baseline: Path) -> int:
    """Check that both databases hold the same calls, field by field; return how many."""

    def moment(epoch: float | None) -> int | None:
        # Our times are stored as microseconds since the epoch (monitor.store.instants).
        return None if epoch is None else round(epoch * 1_000_000)

    with closing(sqlite3.connect(ours)) as db:
        mine = set(
            db.execute(
                "SELECT external_id, queue, entered_at, answered_at, left_at, outcome, "
                "wait_seconds, talk_seconds, caller FROM call"
            )
        )
    with closing(sqlite3.connect(baseline)) as db:
        theirs = {
            (id_, queue, moment(entered), moment(answered), moment(left), *rest)
            for id_, queue, entered, answered, left, *rest in db.execute(
                "SELECT id, queue, entered, answered, left, outcome, wait, talk, caller FROM calls"
            )
        }
    if mine != theirs:
        differ = sorted(mine ^ theirs, key=str)[:3]
        raise SystemExit(
            f"ours and the baseline stored different calls ({len(mine)} and {len(theirs)}; "
            f"e.g. {differ})"
        )
    return len(mine)


def callback_counts(ours: Path) -> tuple[int, int]:
    """(callback messages, callback inquiries still open) in our database."""
    with closing(sqlite3.connect(ours)) as db:
        messages = db.execute("SELECT count(*) FROM message WHERE channel = 'voicemail'")
        inquiries = db.execute(
            "SELECT count(*) FROM inquiry WHERE channel = 'voicemail' AND status = 'open'"
        )
        return messages.fetchone()[0], inquiries.fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 lines")
    parser.add_argument("--lines", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder")
    parser.add_argument("--rounds", type=int, default=None, help="runs of each side (5; quick 3)")
    args = parser.parse_args()
    lines = args.lines or (50_000 if args.quick else 1_000_000)
    args.rounds = args.rounds or (3 if args.quick else 5)
    with tempfile.TemporaryDirectory(prefix="bench-queue-log-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.db*"):
            old.unlink()  # a kept folder from an earlier run
        log = folder / "queue_log"
        site = generate(log, lines)
        calls = site.calls
        print(
            f"{site.lines:,} lines ({log.stat().st_size / 1e6:.0f} MB), {calls:,} calls: "
            f"{site.unanswered:,} unanswered ({site.unanswered / calls:.0%}), "
            f"{site.callbacks:,} of them from a number to call back; "
            f"{site.repeat_calls:,} from callers who rang before"
        )
        source = {"name": "queue", "kind": "asterisk_queue_log", "path": str(log)}
        script = folder / "baseline.py"
        script.write_text(BASELINE)
        byte_compile()
        # Rounds of the two side by side, each into new databases: this machine's speed drifts
        # from minute to minute (the same run's CPU time by 30% and more), so the ratio is the
        # median of each round's own, taken seconds apart.
        ours_runs: list[Child] = []
        baseline_runs: list[Child] = []
        for round_ in range(args.rounds):
            ours_db, baseline_db = folder / f"ours-{round_}.db", folder / f"baseline-{round_}.db"
            config = folder / f"bench-{round_}.yaml"
            config.write_text(
                yaml.safe_dump({"database": f"sqlite:///{ours_db}", "sources": [source]})
            )
            baseline_runs.append(
                run_child([sys.executable, str(script), str(log), str(baseline_db)])
            )
            monitor = [sys.executable, "-m", "monitor", "--config", str(config)]
            ours_runs.append(run_child([*monitor, "import", "queue", str(log)]))
        # After the timed runs: reading both databases grows this process, and a child forked
        # from it would count that memory as its own peak.
        checked = same_calls(ours_db, baseline_db)
        callbacks, still_open = callback_counts(ours_db)
        # The poll bar: the cursor to the end of the file, then (a few times, for the median)
        # a poll with nothing new, the start-up, and a poll of 50 new calls.
        first_poll = run_child([*monitor, "poll", "queue"])
        idle_s, new_s, inside_s = [], [], []
        for round_ in range(POLL_ROUNDS):
            idle_s.append(run_child([*monitor, "poll", "queue"]).wall_s)
            append_calls(log, calls + 1 + round_ * NEW_CALLS, NEW_CALLS)
            new_s.append(run_child([*monitor, "poll", "queue"]).wall_s)
        for round_ in range(POLL_ROUNDS, 2 * POLL_ROUNDS):
            append_calls(log, calls + 1 + round_ * NEW_CALLS, NEW_CALLS)
            seconds, stored_now = timed_poll(config)
            if stored_now != NEW_CALLS:
                raise SystemExit(f"a poll stored {stored_now} calls, not {NEW_CALLS}")
            inside_s.append(seconds)
        with closing(sqlite3.connect(ours_db)) as db:
            stored = db.execute("SELECT count(*) FROM call").fetchone()[0]
        if stored != calls + 2 * POLL_ROUNDS * NEW_CALLS:
            raise SystemExit(f"the polls stored {stored - calls} new calls, not {NEW_CALLS} each")
    ours, baseline = median_child(ours_runs), median_child(baseline_runs)
    ratios = [o.wall_s / b.wall_s for o, b in zip(ours_runs, baseline_runs, strict=True)]
    ratio = statistics.median(ratios)
    idle, new = statistics.median(idle_s), statistics.median(new_s)
    beyond, inside = new - idle, statistics.median(inside_s)
    print(
        f"ours:     {ours.wall_s:8.2f} s  cpu {ours.cpu_s:6.2f} s  peak {ours.peak_mb:6.0f} MB"
        f"  (support-monitor import; runs {runs(ours_runs)})"
    )
    print(
        f"baseline: {baseline.wall_s:8.2f} s  cpu {baseline.cpu_s:6.2f} s  "
        f"peak {baseline.peak_mb:6.0f} MB  (split + pair + executemany; runs {runs(baseline_runs)})"
    )
    print(
        f"ratio:    {ratio:8.2f}   target <= {TARGET_RATIO}: the median of the rounds' "
        f"{' '.join(f'{r:.2f}' for r in ratios)} (cpu {ours.cpu_s / baseline.cpu_s:.2f})\n"
        f"memory:   target < {MEMORY_LIMIT_MB} MB (the peaks above)"
    )
    print(f"same calls stored by both: {checked:,}")
    print(
        f"ours also stored {callbacks:,} callback messages; {still_open:,} callback inquiries open"
    )
    print(
        f"poll:     {first_poll.wall_s:8.2f} s  the whole file again (rows already stored)\n"
        f"          {idle:8.2f} s  nothing new: the start-up (median of {POLL_ROUNDS})\n"
        f"          {new:8.2f} s  {NEW_CALLS} new calls: {beyond:+.2f} s beyond start-up"
        f" (target well under {POLL_LIMIT_S:g} s)\n"
        f"          {inside:8.3f} s  {NEW_CALLS} new calls, timed inside the process (poll_source)"
    )
    poll_s = max(beyond, inside)
    result = {
        "name": f"queue_log import, {lines:,} lines",
        "ours_s": round(ours.wall_s, 3),
        "baseline_s": round(baseline.wall_s, 3),
        "ratio": round(ratio, 3),
        "target": TARGET_RATIO,
        "extra": {
            "lines": site.lines,
            "calls": calls,
            "unanswered": site.unanswered,
            "callback_messages": callbacks,
            "callback_inquiries_open": still_open,
            "repeat_calls": site.repeat_calls,
            "ratios": [round(r, 3) for r in ratios],
            "ours_runs_s": [round(r.wall_s, 3) for r in ours_runs],
            "baseline_runs_s": [round(r.wall_s, 3) for r in baseline_runs],
            "ours_cpu_s": round(ours.cpu_s, 3),
            "baseline_cpu_s": round(baseline.cpu_s, 3),
            "ours_peak_mb": round(ours.peak_mb, 1),
            "baseline_peak_mb": round(baseline.peak_mb, 1),
            "poll_whole_file_s": round(first_poll.wall_s, 3),
            "poll_idle_s": round(idle, 3),
            "poll_50_new_calls_s": round(new, 3),
            "poll_beyond_startup_s": round(beyond, 3),
            "poll_inside_s": round(inside, 3),
            "ratio_ok": ratio <= TARGET_RATIO,
            "memory_ok": ours.peak_mb < MEMORY_LIMIT_MB,
            "poll_ok": poll_s < POLL_LIMIT_S,
            "targets": {
                "ratio": f"<= {TARGET_RATIO:g}x",
                "memory": f"peak < {MEMORY_LIMIT_MB} MB",
                "poll": f"{NEW_CALLS} new calls < {POLL_LIMIT_S:g} s beyond start-up",
            },
        },
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
