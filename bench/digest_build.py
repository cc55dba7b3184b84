"""Building the daily digest with a year of history against a database holding only that day.

    .venv/bin/python bench/digest_build.py [--quick] [--calls N] [--inquiries N] [--builds 5]

Fills SQLite databases in a temporary folder with the rows of bench/scrape.py (the same
sources and generators, inserted directly in bulk): one with a year of history (a million
finished calls and a million inquiries, a few dozen still open or waiting); the baseline with
only the rows of the digest's day (Thursday 19 November 2026) and the open/waiting ones, so
the day's figures are the same; and, to tell the cost of history from the cost of the work, one
with the three days the digest reads (the day, the day before, the same weekday a week
before). Then it times building the digest of that day — every figure from the
metrics engine for the day, the day before and the same weekday a week before, the lists and
the hours, rendered to subject, text and HTML (`build_digest` + `render`; no sending) — and
prints the medians and their ratio. Target (issue 7): under 1 s with a year of
history. Not part of the test suite.

The last line is `RESULT {json}` for bench/run.py: ours = the year's median build, baseline =
the one-day database's; the target is absolute (1 s), so `target` is null and `extra["ok"]`
says whether it is met. `--quick` uses 20,000 calls and inquiries and 3 builds.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from scrape import NOW, calls, inquiries, settings  # NOW: noon the day after DAY
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.publish.digest.build import build_digest
from monitor.publish.digest.mail import render
from monitor.store.database import make_engine, prepare
from monitor.store.figures import day_bounds
from monitor.store.tables import CALLS, INQUIRIES

DAY = date(2026, 11, 19)
CHUNK = 20_000
LIMIT_S = 1.0
NAMES = {"day": "the day alone", "days": "the three days it compares alone"}


def fill(
    year: Engine, alone: dict[str, Engine], config: Settings, n_calls: int, n_inquiries: int
) -> dict[str, tuple[int, int]]:
    """The year's rows into `year`; into each of `alone` only the rows of its days (`day`: the
    digest's day; `days`: it, the day before and a week before) and every open or waiting one."""
    spans = {
        "day": [day_bounds(DAY, config.timezone)],
        "days": [day_bounds(DAY - timedelta(days=n), config.timezone) for n in (0, 1, 7)],
    }
    rng = random.Random(7)
    kept = {name: [0, 0] for name in alone}
    for index, (table, rows, column, current) in enumerate(
        [
            (INQUIRIES, inquiries(n_inquiries, rng), "opened_at", _open),
            (CALLS, calls(n_calls, rng), "entered_at", _waiting),
        ]
    ):
        for batch in _batches(rows):
            with year.begin() as conn:
                conn.execute(table.insert(), batch)
            for name, engine in alone.items():
                ours = [
                    r
                    for r in batch
                    if current(r) or any(a <= r[column] < b for a, b in spans[name])
                ]
                if ours:
                    with engine.begin() as conn:
                        conn.execute(table.insert(), ours)
                kept[name][index] += len(ours)
    return {name: (n[0], n[1]) for name, n in kept.items()}


def _batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _open(row: dict[str, Any]) -> bool:
    return bool(row["status"] == "open")


def _waiting(row: dict[str, Any]) -> bool:
    return bool(row["outcome"] == "waiting")


def median_build_s(engine: Engine, config: Settings, builds: int) -> tuple[float, int]:
    size = len(render(build_digest(engine, config, DAY, NOW)).html)  # warm-up
    times = []
    for _ in range(builds):
        start = time.perf_counter()
        render(build_digest(engine, config, DAY, NOW))
        times.append(time.perf_counter() - start)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--inquiries", type=int, default=1_000_000)
    parser.add_argument("--builds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20,000 rows each, 3 builds")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.inquiries, args.builds = 20_000, 20_000, 3
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = settings(folder)
        year = make_engine(f"sqlite:///{folder}/year.db", folder)
        alone = {name: make_engine(f"sqlite:///{folder}/{name}.db", folder) for name in NAMES}
        for engine in (year, *alone.values()):
            prepare(engine)
        start = time.perf_counter()
        kept = fill(year, alone, config, args.calls, args.inquiries)
        print(
            f"filled {args.calls:,} calls and {args.inquiries:,} inquiries "
            f"in {time.perf_counter() - start:.0f} s "
            f"({(folder / 'year.db').stat().st_size / 1e6:.0f} MB); "
            + "; ".join(
                f"{NAMES[name]}: {c:,} calls, {i:,} inquiries" for name, (i, c) in kept.items()
            )
            + " (and those open or waiting)"
        )
        timings = {"a year of history": median_build_s(year, config, args.builds)}
        for name, engine in alone.items():
            timings[NAMES[name]] = median_build_s(engine, config, args.builds)
        for label, (seconds, size) in timings.items():
            print(f"{label + ':':34} median build {seconds * 1000:7.1f} ms ({size:,} bytes HTML)")
        year_s = timings["a year of history"][0]
        day_s, days_s = (timings[NAMES[name]][0] for name in ("day", "days"))
        print(
            f"ratio year/day: {year_s / day_s:.2f}   ratio year/three days: {year_s / days_s:.2f}"
        )
        result = {
            "name": "digest build (a year of history)",
            "ours_s": year_s,
            "baseline_s": day_s,
            "ratio": year_s / day_s,
            "target": None,
            "extra": {
                "calls": args.calls,
                "inquiries": args.inquiries,
                "three_days_s": round(days_s, 4),
                "limit_s": LIMIT_S,
                "target": f"under {LIMIT_S:g} s",
                "ok": year_s < LIMIT_S,
            },
        }
        print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
