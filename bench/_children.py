"""Timing a benchmark's child process: wall time, CPU time and peak memory, from wait4."""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Child:
    wall_s: float
    cpu_s: float  # user + system
    peak_mb: float


def run_child(command: list[str]) -> Child:
    """Run `command` from the project root; SystemExit with its last output line if it fails."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            output.seek(0)
            why = output.read().decode(errors="replace").strip().splitlines()[-1:]
            raise SystemExit(f"{command[:4]} failed with exit status {code}: {' '.join(why)}")
    # Linux reports ru_maxrss in KiB.
    return Child(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def median_child(children: list[Child]) -> Child:
    """The median wall and CPU time of these runs, and the largest peak (the memory bound)."""
    return Child(
        statistics.median(c.wall_s for c in children),
        statistics.median(c.cpu_s for c in children),
        max(c.peak_mb for c in children),
    )


def byte_compile() -> None:
    """Write the project's bytecode (__pycache__) before timing it, as `pip install` does for an
    installed package and as Python does on a first run. Where PYTHONDONTWRITEBYTECODE is set
    (this project's sandbox sets it) every run would otherwise compile our modules from source
    again, some 0.1 s that no installation pays; the baselines are single scripts either way."""
    for package in ("monitor", "connectors"):
        compileall.compile_dir(ROOT / package, quiet=1)
