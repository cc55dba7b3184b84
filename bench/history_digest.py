"""`support-monitor digest --date D --preview F` with a year of history and a large open backlog.

    .venv/bin/python bench/history_digest.py [--quick] [--rounds R] [--rebuild]

Takes the history of bench/_history.py (600,000 chat inquiries, 277,000 calls, some 83,000
open callback inquiries and 1,500 stale e-mails; built once a day and cached) and times, each in
a child process of its own and alternating for R rounds (5; `--quick` 3):

- the bare interpreter starting and exiting (`python -c pass`): the floor of any command;
- the digest of the latest weekday before today (`digest --date D --preview F`, the HTML
  written to a file) on a copy of that history, and on the same site with nothing stored
  (what the command costs without data: its imports, the configuration, the database opened,
  the template rendered);
- for the record, `metrics` and `report` (the last seven days) on the history too.

Target (the quality bar: reports cost what they show, not the history or the backlog): the
digest for one day under 0.5 s beyond the interpreter's start-up, with that history. The last
line is `RESULT {json}` for bench/run.py: ours = the history's digest beyond the interpreter
(the median of the rounds' differences), baseline = the empty site's, `target` null and
`extra["ok"]` the verdict; `extra` holds every median and run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from _children import Child, byte_compile, run_child
from _history import command, digest_day, empty_site, history, working_copy

LIMIT_S = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small history, 3 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="of each command (5; quick 3)")
    parser.add_argument("--rebuild", action="store_true", help="build the history again")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    built = history(args.quick, rebuild=args.rebuild)
    byte_compile()
    day = str(digest_day())
    runs: dict[str, list[Child]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-digest-") as scratch:
        folder = Path(scratch)
        year = working_copy(built, folder, "year")
        empty = empty_site(folder, "empty")
        commands = {
            "interpreter": [sys.executable, "-c", "pass"],
            "digest": [*command(), "--config", str(year), "digest", "--date", day, "--preview"],
            "digest, empty site": [*command(), "--config", str(empty), "digest", "--date", day],
            "metrics": [*command(), "--config", str(year), "metrics"],
            "report": [*command(), "--config", str(year), "report"],
        }
        commands["digest"].append(str(folder / "year.html"))
        commands["digest, empty site"] += ["--preview", str(folder / "empty.html")]
        for _ in range(rounds):
            for name, argv in commands.items():
                runs.setdefault(name, []).append(run_child(argv))
        html = (folder / "year.html").stat().st_size
    floor = [c.wall_s for c in runs["interpreter"]]

    def beyond(name: str) -> float:
        """The median of the rounds' differences from the interpreter's start-up."""
        return float(
            statistics.median(c.wall_s - f for c, f in zip(runs[name], floor, strict=True))
        )

    interpreter = statistics.median(floor)
    figures = {name: beyond(name) for name in commands if name != "interpreter"}
    counts = built.counts
    print(
        f"history: {counts['inquiries']:,} inquiries ({counts['open_inquiries']:,} open, "
        f"{counts['open_callbacks']:,} of them callbacks), {counts['calls']:,} calls, "
        f"{counts['messages']:,} messages; digest of {day} ({html:,} bytes of HTML)"
    )
    print(f"{'interpreter start-up':28} {interpreter:7.3f} s  (python -c pass)")
    for name, seconds in figures.items():
        each = " ".join(f"{c.wall_s:.2f}" for c in runs[name])
        peak = max(c.peak_mb for c in runs[name])
        print(f"{name:28} {seconds:+7.3f} s beyond it  (runs {each}; peak {peak:.0f} MB)")
    ours, baseline = figures["digest"], figures["digest, empty site"]
    ok = ours < LIMIT_S
    print(f"target: the digest under {LIMIT_S:g} s beyond the interpreter's start-up")
    scale = "a small history" if args.quick else f"a year, {counts['open_inquiries']:,} open"
    result = {
        "name": f"digest --date D --preview F ({scale})",
        "ours_s": round(ours, 3),
        "baseline_s": round(baseline, 3),
        "ratio": round(ours / max(baseline, 0.001), 3),
        "target": None,
        "extra": {
            "day": day,
            "interpreter_s": round(interpreter, 3),
            "beyond_interpreter_s": {name: round(s, 3) for name, s in figures.items()},
            "runs_s": {name: [round(c.wall_s, 3) for c in runs[name]] for name in runs},
            "digest_peak_mb": round(max(c.peak_mb for c in runs["digest"]), 1),
            "history": counts,
            "target": f"under {LIMIT_S:g} s beyond the interpreter",
            "ok": ok,
            "digest_ok": ok,
            "targets": {"digest": f"under {LIMIT_S:g} s beyond the interpreter's start-up"},
        },
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
