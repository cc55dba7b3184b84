"""`GET /metrics` from a running service with a year of history and a large open backlog.

    .venv/bin/python bench/history_metrics.py [--quick] [--seconds S] [--rebuild]

Takes the history of bench/_history.py (600,000 chat inquiries, 277,000 calls, some 83,000
open callback inquiries and 1,500 stale e-mails; built once a day and cached) and starts
`support-monitor run` twice, as a site runs it (its sources polled every minute, the alert rules
evaluated every minute): on a copy of that history, and on the same site with nothing stored
(the like-for-like baseline: the same series, no rows). For S seconds (90; `--quick` 10: long
enough to see the alert evaluation `run` starts a minute after its start) it scrapes each in
turn, as Prometheus would (a new connection, the whole body), a few times a second, and takes
`/healthz` of the history's service beside them (the server's own round trip, the floor of any
answer). Target (reports cost what they show, not the history or the backlog): a median
scrape under 20 ms with that history.

The last line is `RESULT {json}` for bench/run.py: ours = the history's median scrape,
baseline = the empty site's, `target` null and `extra["ok"]` the verdict; `extra` also holds the
90th percentile and the slowest scrape, the median of the scrapes in the service's first 45
seconds (before `run` evaluates the alert rules) and after, and the time the first alert
evaluation took when the history was built.

The hook for the status page (issue 27, target 50 ms): a script of its own calling
`measure_page("/", 0.050, "status page")`, which runs all of this for another path.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from _children import byte_compile
from _history import empty_site, free_listen, get, history, service, working_copy

LIMIT_S = 0.020
QUIET_S = 45.0  # `run` first evaluates the alert rules a minute after it starts
PAUSE_S = 0.2


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def ms(value: float) -> str:
    return f"{value * 1000:6.1f} ms"


def main() -> None:
    measure_page("/metrics", LIMIT_S, "GET /metrics from run")


def measure_page(path: str, limit_s: float, label: str) -> None:
    """The benchmark for GET `path` (a median under `limit_s`), printed as row `label`."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small history, 10 s")
    parser.add_argument("--seconds", type=float, default=None, help="of scraping (90; quick 10)")
    parser.add_argument("--rebuild", action="store_true", help="build the history again")
    args = parser.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 90.0)
    built = history(args.quick, rebuild=args.rebuild)
    byte_compile()
    with tempfile.TemporaryDirectory(prefix="bench-page-") as scratch:
        folder = Path(scratch)
        year_at, empty_at = free_listen(), free_listen()
        year_config = working_copy(built, folder, "year", year_at)
        empty_config = empty_site(folder, "empty", empty_at)
        samples: dict[str, list[tuple[float, float]]] = {"year": [], "empty": [], "health": []}
        sizes = {}
        with (
            service(year_config, year_at, folder / "year.log") as started,
            service(empty_config, empty_at, folder / "empty.log"),
        ):
            for listen in (year_at, empty_at):
                for _ in range(3):  # warm-up: connections, caches
                    get(listen, path)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for name, listen, asked in (
                    ("year", year_at, path),
                    ("empty", empty_at, path),
                    ("health", year_at, "/healthz"),
                ):
                    took, size = get(listen, asked)
                    samples[name].append((time.monotonic() - started, took))
                    sizes[name] = size
                time.sleep(PAUSE_S)
    times = {name: [took for _, took in values] for name, values in samples.items()}
    year, empty = statistics.median(times["year"]), statistics.median(times["empty"])
    quiet = [took for at, took in samples["year"] if at < QUIET_S]
    later = [took for at, took in samples["year"] if at >= QUIET_S]
    health = statistics.median(times["health"])
    counts = built.counts
    print(
        f"history: {counts['inquiries']:,} inquiries ({counts['open_inquiries']:,} open, "
        f"{counts['open_callbacks']:,} of them callbacks), {counts['calls']:,} calls, "
        f"{counts['messages']:,} messages; built {built.built_at} in {built.seconds:.0f} s"
    )
    print(
        f"{path}, a year:    median {ms(year)}  p90 {ms(percentile(times['year'], 0.9))}  "
        f"slowest {ms(max(times['year']))}  ({len(times['year'])} requests, "
        f"{sizes['year']:,} bytes)"
    )
    if quiet and later:
        print(
            f"  in the service's first {QUIET_S:g} s: median {ms(statistics.median(quiet))}; "
            f"after (the alert rules evaluated every minute): {ms(statistics.median(later))}"
        )
    print(f"{path}, empty site: median {ms(empty)}  ({sizes['empty']:,} bytes)")
    print(f"/healthz:          median {ms(health)}  (the server's round trip)")
    print(f"target: a median under {limit_s * 1000:g} ms with the history")
    ok = year < limit_s
    scale = "a small history" if args.quick else f"a year, {counts['open_inquiries']:,} open"
    result = {
        "name": f"{label} ({scale})",
        "ours_s": round(year, 5),
        "baseline_s": round(empty, 5),
        "ratio": round(year / empty, 3),
        "target": None,
        "extra": {
            "requests": len(times["year"]),
            "p90_s": round(percentile(times["year"], 0.9), 5),
            "slowest_s": round(max(times["year"]), 5),
            "quiet_median_s": round(statistics.median(quiet), 5) if quiet else None,
            "later_median_s": round(statistics.median(later), 5) if later else None,
            "healthz_s": round(health, 5),
            "bytes": sizes["year"],
            "history": counts,
            "first_alert_evaluation_s": built.alerts_s,
            "target": f"median under {limit_s * 1000:g} ms",
            "ok": ok,
            "median_ok": ok,
            "targets": {"median": f"under {limit_s * 1000:g} ms"},
        },
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
