"""bench/run.py on a folder of tiny fake benchmarks: parsing, failures, the table, --quick."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).resolve().parent.parent / "bench" / "run.py"

FAST = """
import json, sys
quick = "--quick" in sys.argv
print("human-readable figures first")
result = {"name": "fast thing", "ours_s": 0.5 if quick else 2.0, "baseline_s": 0.25,
          "ratio": 2.0 if quick else 8.0, "target": 3, "extra": {"quick": quick}}
print("RESULT " + json.dumps(result))
"""

ABSOLUTE = """
import json
result = {"name": "scrape", "ours_s": 0.04, "baseline_s": 0.01, "ratio": 4.0, "target": None,
          "extra": {"ok": True, "target": "under 100 ms"}}
print("RESULT " + json.dumps(result))
"""

CRASHES = """
raise SystemExit("cannot reach the IMAP server")
"""

SILENT = """
print("finished, but forgot the protocol")
"""


def write_benches(folder: Path, **scripts: str) -> Path:
    folder.mkdir()
    for name, text in scripts.items():
        (folder / f"{name}.py").write_text(text)
    return folder


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUNNER), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_quick_run_passes_quick_and_prints_one_row_per_benchmark(tmp_path: Path) -> None:
    folder = write_benches(tmp_path / "bench", a_fast=FAST, b_scrape=ABSOLUTE)
    done = run("--dir", folder, "--quick")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["benchmark", "ours", "baseline", "ratio", "target", "ok"]
    assert lines[2].split() == [
        "fast",
        "thing",
        "500.0",
        "ms",
        "250.0",
        "ms",
        "2.00x",
        "<=",
        "3x",
        "yes",
    ]
    scrape = ["scrape", "40.0", "ms", "10.0", "ms", "4.00x", "under", "100", "ms", "yes"]
    assert lines[3].split() == scrape


def test_a_ratio_over_its_target_is_not_ok_and_fails_the_run(tmp_path: Path) -> None:
    folder = write_benches(tmp_path / "bench", fast=FAST)
    done = run("--dir", folder)
    assert done.returncode == 1
    assert done.stdout.splitlines()[2].split()[-4:] == ["<=", "3x", "no", "(ratio)"]


def test_a_quick_run_shows_a_missed_target_without_failing(tmp_path: Path) -> None:
    """Targets are set at full sizes: at the smoke size a miss is reported, not a failure."""
    slow = FAST.replace('"ratio": 2.0 if quick else 8.0', '"ratio": 4.0')
    folder = write_benches(tmp_path / "bench", slow=slow)
    done = run("--dir", folder, "--quick")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].split()[-4:] == ["<=", "3x", "no", "(ratio)"]
    assert "--quick: fast thing: target missed at the small size" in done.stderr


def test_a_crashing_or_silent_script_is_a_failed_row_and_the_others_still_run(
    tmp_path: Path,
) -> None:
    folder = write_benches(tmp_path / "bench", crashes=CRASHES, fast=FAST, silent=SILENT)
    report = tmp_path / "bench.md"
    done = run("--dir", folder, "--quick", "--markdown", report)
    assert done.returncode == 1
    assert report.read_text().splitlines() == [
        "| benchmark | ours | baseline | ratio | target | ok |",
        "|---|---|---|---|---|---|",
        "| crashes | failed: exit 1: cannot reach the IMAP server |  |  |  | no |",
        "| fast thing | 500.0 ms | 250.0 ms | 2.00x | <= 3x | yes |",
        "| silent | failed: no RESULT line at the end of its output |  |  |  | no |",
    ]


def test_the_runner_does_not_run_itself(tmp_path: Path) -> None:
    folder = write_benches(tmp_path / "bench", fast=FAST)
    (folder / "run.py").write_text(RUNNER.read_text())
    done = run("--dir", folder, "--quick")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3


MEMORY_MISSED = """
import json
result = {"name": "big import", "ours_s": 3.0, "baseline_s": 1.5, "ratio": 2.0, "target": 3,
          "extra": {"memory_ok": False, "poll_ok": True, "ours_peak_mb": 900}}
print("RESULT " + json.dumps(result))
"""
POLL_MISSED = MEMORY_MISSED.replace("big import", "slow poll").replace(
    '"memory_ok": False, "poll_ok": True', '"memory_ok": True, "poll_ok": False'
)


def test_a_row_that_keeps_its_ratio_but_misses_its_memory_or_poll_target_fails(
    tmp_path: Path,
) -> None:
    """The queue_log import has three targets: its ratio, bounded memory and a cheap
    incremental poll. Missing either of the last two fails the row as missing the ratio does,
    and the row says which."""
    folder = write_benches(tmp_path / "bench", a=MEMORY_MISSED, b=POLL_MISSED, c=FAST)
    done = run("--dir", folder)
    assert done.returncode == 1
    big, slow, fast = done.stdout.splitlines()[2:]
    assert big.split()[-4:] == ["<=", "3x", "no", "(memory)"]
    assert slow.split()[-4:] == ["<=", "3x", "no", "(poll)"]
    assert fast.split()[-4:] == ["<=", "3x", "no", "(ratio)"]
    report = tmp_path / "bench.md"
    run("--dir", folder, "--markdown", report)
    assert "| big import | 3.00 s | 1.50 s | 2.00x | <= 3x | no (memory) |" in report.read_text()


def test_a_miss_is_named_once_whichever_verdicts_name_it(tmp_path: Path) -> None:
    """The benchmarks of real sites give their ratio's verdict as `ratio_ok` too, and an
    overall `ok` beside named verdicts: a row says each target it missed once, by name."""
    twice = FAST.replace('"extra": {"quick": quick}', '"extra": {"ratio_ok": False}')
    summed = ABSOLUTE.replace(
        '"extra": {"ok": True,', '"extra": {"ok": False, "help_ok": False, "report_ok": True,'
    )
    folder = write_benches(tmp_path / "bench", a=twice, b=summed)
    done = run("--dir", folder)
    assert done.returncode == 1
    ratio, help_ = done.stdout.splitlines()[2:]
    assert ratio.split()[-4:] == ["<=", "3x", "no", "(ratio)"]
    assert help_.split()[-2:] == ["no", "(help)"]
