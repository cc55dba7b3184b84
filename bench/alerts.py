"""Alert evaluation time with a year of history against an empty database (issue 8).

    .venv/bin/python bench/alerts.py [--quick] [--calls N] [--inquiries N] [--evaluations 30]

Builds the databases of `bench/scrape.py` (the same generators: a million finished calls and a
million inquiries over a year, a few dozen inquiries still open and long overdue, a handful of
callers waiting) and times `monitor.publish.alerts.run.run_once` — what `run` does every
`alerts.every` — on each: first the evaluation that finds everything firing and claims its notices,
then the steady state (everything still firing, nothing new to send), median of `--evaluations`. No
notifier is configured, so no network time is counted. The target: an evaluation well inside
the default 1-minute interval whatever the history, here under 1 s. Not part of the test suite.

The last line is `RESULT {json}` for bench/run.py: ours = the year's median steady-state
evaluation, baseline = the empty database's; `target` is null and `extra["ok"]` says whether the
year's median is under 1 s. `--quick` uses 20,000 calls and inquiries.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from scrape import NOW, fill, settings
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.publish.alerts.run import run_once
from monitor.store.database import make_engine, prepare

LIMIT_S = 1.0


def evaluations(engine: Engine, config: Settings, count: int) -> tuple[float, float, int]:
    """(first evaluation s, median steady-state s, alerts firing)."""
    start = time.perf_counter()
    first = run_once(engine, config, NOW)
    took = time.perf_counter() - start
    times = []
    for n in range(1, count + 1):
        start = time.perf_counter()
        run_once(engine, config, NOW + timedelta(seconds=n))
        times.append(time.perf_counter() - start)
    return took, statistics.median(times), first.firing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--inquiries", type=int, default=1_000_000)
    parser.add_argument("--evaluations", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="20,000 rows each, 10 evaluations")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.inquiries, args.evaluations = 20_000, 20_000, 10
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = settings(folder)
        empty = make_engine(f"sqlite:///{folder}/empty.db", folder)
        year = make_engine(f"sqlite:///{folder}/year.db", folder)
        for engine in (empty, year):
            prepare(engine)
        start = time.perf_counter()
        fill(year, config, args.calls, args.inquiries)
        print(
            f"filled {args.calls:,} calls and {args.inquiries:,} inquiries "
            f"in {time.perf_counter() - start:.0f} s"
        )
        results = {}
        for name, engine in (("empty database", empty), ("a year", year)):
            results[name] = evaluations(engine, config, args.evaluations)
            first, median, firing = results[name]
            print(
                f"{name + ':':16} first evaluation {first * 1000:7.1f} ms ({firing} firing), "
                f"then median {median * 1000:6.1f} ms"
            )
        year_s, empty_s = results["a year"][1], results["empty database"][1]
        print(f"ratio year/empty: {year_s / empty_s:.2f}")
        result = {
            "name": "alert evaluation (a year of history)",
            "ours_s": year_s,
            "baseline_s": empty_s,
            "ratio": year_s / empty_s,
            "target": None,
            "extra": {
                "calls": args.calls,
                "inquiries": args.inquiries,
                "first_evaluation_s": round(results["a year"][0], 4),
                "firing": results["a year"][2],
                "target": f"under {LIMIT_S:g} s",
                "ok": year_s < LIMIT_S,
            },
        }
        print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
