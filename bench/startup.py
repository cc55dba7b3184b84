"""Start-up: `support-monitor --help`, and `metrics`, `report` and `digest` on an empty site.

    .venv/bin/python bench/startup.py [--quick] [--rounds R]

Times, each in a child process of its own and alternating for R rounds (11; `--quick` 5), the
bare interpreter starting and exiting (`python -c pass`: the floor) and the console script
`support-monitor` with `--help` and with the commands people run by hand or from cron, on the
site of bench/_history.py with nothing stored (so what is timed is the start-up: imports, the
configuration, the database opened; not the data): `metrics`, `report` and
`digest --date D --preview F`. Our package is byte-compiled first, as an installation is.

Targets (issue 25): `--help` under 0.3 s; `metrics`, `report` and `digest` "well
under a second", taken here as under 0.5 s. The last line is `RESULT {json}` for bench/run.py:
ours = the median `--help`, baseline = the interpreter's, `target` null and `extra["ok"]` true
when every command meets its target (`extra` has each one's median and verdict).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from _children import Child, byte_compile, run_child
from _history import command, digest_day, empty_site

LIMITS_S = {"--help": 0.3, "metrics": 0.5, "report": 0.5, "digest": 0.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="of each command (11; quick 5)")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 11)
    byte_compile()
    runs: dict[str, list[Child]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
        folder = Path(scratch)
        config = ["--config", str(empty_site(folder, "empty"))]
        preview = str(folder / "digest.html")
        commands = {
            "interpreter": [sys.executable, "-c", "pass"],
            "--help": [*command(), "--help"],
            "metrics": [*command(), *config, "metrics"],
            "report": [*command(), *config, "report"],
            "digest": [*command(), *config, "digest", "--date", str(digest_day()), "--preview"],
        }
        commands["digest"].append(preview)
        for _ in range(rounds):
            for name, argv in commands.items():
                runs.setdefault(name, []).append(run_child(argv))
    medians = {name: statistics.median(c.wall_s for c in found) for name, found in runs.items()}
    # CPU time (user + system) says what a command costs whatever else the machine runs; the
    # targets are wall times, as a user waits for them.
    cpu = {name: statistics.median(c.cpu_s for c in found) for name, found in runs.items()}
    verdicts = {name: medians[name] < limit for name, limit in LIMITS_S.items()}
    for name, seconds in medians.items():
        each = " ".join(f"{c.wall_s:.2f}" for c in runs[name])
        if name in LIMITS_S:
            what = f"target < {LIMITS_S[name]:g} s: {'yes' if verdicts[name] else 'no'}"
        else:
            what = "the floor"
        print(f"{name:12} {seconds:6.3f} s  cpu {cpu[name]:6.3f} s  ({what}; runs {each})")
    result = {
        "name": "start-up: --help; metrics, report, digest",
        "ours_s": round(medians["--help"], 4),
        "baseline_s": round(medians["interpreter"], 4),
        "ratio": round(medians["--help"] / medians["interpreter"], 3),
        "target": None,
        "extra": {
            "median_s": {name: round(s, 4) for name, s in medians.items()},
            "cpu_s": {name: round(s, 4) for name, s in cpu.items()},
            "runs_s": {name: [round(c.wall_s, 3) for c in found] for name, found in runs.items()},
            **{f"{name.strip('-')}_ok": ok for name, ok in verdicts.items()},
            "target": "--help < 0.3 s; metrics, report, digest < 0.5 s",
            "ok": all(verdicts.values()),
            "targets": {name: f"under {limit:g} s" for name, limit in LIMITS_S.items()},
        },
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
