"""Running a command in a child process with a deadline, and measuring its peak memory.

The memory and hang tests run the real thing (the CLI) in a child, so that a regression shows
as a number (the child's peak resident memory, from wait4's rusage, which belongs to that
child alone) or as a failed test once the deadline passes, never as a test suite that swaps
or hangs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Finished:
    status: int
    stdout: str
    stderr: str
    peak_mb: float  # peak resident memory of the child, MB
    seconds: float


class Overran(AssertionError):
    """The child ran past its deadline (it was killed)."""


# The child is started by a small launcher, not forked from pytest itself: a process's peak
# resident memory counts what it had between fork and exec, which for a child forked straight
# from a test run hundreds of megabytes into the suite is the test run's size, not the child's.
# The launcher (a few MB) forks the real child, waits for it with wait4 (its own rusage alone)
# and writes its peak to a file.
_LAUNCHER = """
import os, resource, sys
limit, report, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
os.setsid()
pid = os.fork()
if pid == 0:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.execv(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(
    argv: list[str],
    *,
    deadline: float,
    memory_mb: int = 2048,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Finished:
    """Run `argv` to its end within `deadline` seconds (else kill it and raise Overran).

    `memory_mb` caps the child's address space, so a runaway allocation fails the child
    quickly instead of taking the machine's memory."""
    started = time.monotonic()
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as report,
    ):
        launcher = [sys.executable, "-c", _LAUNCHER, str(memory_mb << 20), report.name, *argv]
        child = subprocess.Popen(
            launcher,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=cwd,
            env={**os.environ, **(env or {})},
        )
        try:
            child.wait(deadline)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise Overran(
                f"{' '.join(argv[-3:])} still running after {deadline} s: killed"
            ) from None
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        peak_kb = int(report.read() or 0)
    return Finished(child.returncode, stdout, stderr, peak_kb / 1024, seconds)


def python(code: str) -> list[str]:
    """argv running `code` with this interpreter."""
    return [sys.executable, "-c", code]


def cli(*args: str) -> list[str]:
    """argv of `support-monitor ARGS` with this interpreter."""
    return [sys.executable, "-m", "monitor", *args]
