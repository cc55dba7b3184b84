"""Alert evaluation with a year of history and a large open backlog, against the empty site.

    .venv/bin/python bench/history_alerts.py [--quick] [--evaluations N] [--rebuild]

Takes the history of bench/_history.py (600,000 chat inquiries, 277,000 calls, some 83,000
open callback inquiries and 1,500 stale e-mails: built once a day and cached), copies it
without its alert states, and times `monitor.publish.alerts.run.run_once` on the copy as `run`
calls it every `alerts.every`: the first evaluation (a new installation, or one whose states
were lost, on that backlog: everything that fires is new, stored, claimed and told), then the
steady state, the median of N evaluations a second apart (`--evaluations`, 15; quick 7). The
floor: the same evaluations on the same site with nothing stored, in the same run, alternating
rounds. No notifier is configured, so no network time is counted; wall and CPU (user+sys) time
are both reported, and each evaluation's SQLite virtual-machine steps, which do not depend on
the machine's load.

Targets (an operations engineer's): the steady state under 0.25 s, a small part of the default
1-minute interval, so that the scheduler thread it shares with the polls, and the database it
locks while writing, are free nearly all the time; and the first evaluation under 5 s (once, on
a new installation over a backlog; it took 47 s when each overdue inquiry was an alert). The
last line is `RESULT {json}` for bench/run.py: ours = the history's median steady-state
evaluation, baseline = the empty site's; `target` is null and `extra["ok"]` is the verdict
(`steady_ok`, `first_ok`).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _history import empty_site, history, working_copy
from sqlalchemy import Engine, event

from monitor.config import Settings
from monitor.config_file import load_settings
from monitor.publish.alerts.run import run_once
from monitor.store.database import make_engine

STEADY_LIMIT_S = 0.25
FIRST_LIMIT_S = 5.0


class Site:
    """One database and its settings, with a count of SQLite VM steps (thousands)."""

    def __init__(self, config: Path) -> None:
        self.settings: Settings = load_settings(config)
        self.engine: Engine = make_engine(self.settings.file.database, self.settings.base_dir)
        self.steps = 0
        event.listen(self.engine, "before_cursor_execute", self._watch)

    def _watch(self, conn: Any, *_args: Any) -> None:
        conn.connection.dbapi_connection.set_progress_handler(self._tick, 1000)

    def _tick(self) -> int:
        self.steps += 1
        return 0

    def evaluate(self, now: datetime) -> tuple[float, float, int, int]:
        """(wall s, CPU s, VM steps in thousands, alerts firing) of one evaluation."""
        steps = self.steps
        cpu = _cpu()
        start = time.perf_counter()
        outcome = run_once(self.engine, self.settings, now)
        took = time.perf_counter() - start
        return took, _cpu() - cpu, self.steps - steps, outcome.firing


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def median_of(samples: list[tuple[float, float, int, int]], index: int) -> float:
    return statistics.median(s[index] for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small history, 7 evaluations")
    parser.add_argument("--evaluations", type=int, default=None, help="steady state (15)")
    parser.add_argument("--rebuild", action="store_true", help="build the history again")
    args = parser.parse_args()
    count = args.evaluations or (7 if args.quick else 15)
    built = history(args.quick, rebuild=args.rebuild)
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as scratch:
        folder = Path(scratch)
        year = working_copy(built, folder, "year")
        with closing(sqlite3.connect(folder / "year.db")) as db, db:
            db.execute("DELETE FROM alert_state")
        sites = {
            "year": Site(year),
            "empty": Site(empty_site(folder, "empty")),
        }
        now = datetime.now(UTC)
        firsts = {name: site.evaluate(now) for name, site in sites.items()}
        steady: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name in sites}
        for n in range(1, count + 1):
            for name, site in sites.items():  # alternating rounds: the same load for both
                steady[name].append(site.evaluate(now + timedelta(seconds=n)))
    counts = built.counts
    print(
        f"history: {counts['inquiries']:,} inquiries ({counts['open_inquiries']:,} open, "
        f"{counts['open_callbacks']:,} of them callbacks), {counts['calls']:,} calls"
    )
    for name in sites:
        wall, cpu, steps, firing = firsts[name]
        samples = steady[name]
        print(
            f"{name:>5}: first evaluation {wall:8.3f} s (CPU {cpu:.3f} s, {steps:,}k VM steps, "
            f"{firing:,} firing); then median {median_of(samples, 0) * 1000:7.1f} ms "
            f"(CPU {median_of(samples, 1) * 1000:.1f} ms, {median_of(samples, 2):,.0f}k VM steps)"
        )
    year, empty = median_of(steady["year"], 0), median_of(steady["empty"], 0)
    first = firsts["year"][0]
    print(f"ratio year/empty (steady state): {year / empty:.2f}; load {os.getloadavg()[0]:.1f}")
    print(
        f"targets: steady state under {STEADY_LIMIT_S * 1000:g} ms, "
        f"first evaluation under {FIRST_LIMIT_S:g} s"
    )
    steady_ok, first_ok = year < STEADY_LIMIT_S, first < FIRST_LIMIT_S
    scale = "a small history" if args.quick else f"a year, {counts['open_inquiries']:,} open"
    result = {
        "name": f"alert evaluation ({scale})",
        "ours_s": round(year, 5),
        "baseline_s": round(empty, 5),
        "ratio": round(year / empty, 3),
        "target": None,
        "extra": {
            "evaluations": count,
            "first_evaluation_s": round(first, 3),
            "first_cpu_s": round(firsts["year"][1], 3),
            "first_vm_ksteps": firsts["year"][2],
            "steady_cpu_s": round(median_of(steady["year"], 1), 5),
            "steady_vm_ksteps": median_of(steady["year"], 2),
            "empty_vm_ksteps": median_of(steady["empty"], 2),
            "firing": firsts["year"][3],
            "history": counts,
            "target": (
                f"steady state under {STEADY_LIMIT_S * 1000:g} ms, "
                f"first evaluation under {FIRST_LIMIT_S:g} s"
            ),
            "ok": steady_ok and first_ok,
            "steady_ok": steady_ok,
            "first_ok": first_ok,
        },
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
