"""Running a command in a child process with a deadline, and measuring its peak memory.

The memory and hang tests run the real thing (the CLI, a connector) in a child, so that a
regression shows as a number (the child's peak resident memory, from wait4's rusage, which
belongs to that child alone) or as a failed test once the deadline passes, never as a test
suite that swaps or hangs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
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
    limit = memory_mb * 1024 * 1024

    def cap() -> None:  # runs in the child before exec
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        os.setsid()

    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            preexec_fn=cap,
        )
        # wait4 reaps this child alone and gives its own rusage (RUSAGE_CHILDREN would sum
        # every child the test process ever had). It blocks, so it waits in a thread while
        # this one keeps the deadline.
        reaped: list[tuple[int, os.struct_rusage]] = []
        waiter = threading.Thread(
            target=lambda: reaped.append(os.wait4(child.pid, 0)[1:]), daemon=True
        )
        waiter.start()
        waiter.join(deadline)
        if waiter.is_alive():
            os.killpg(child.pid, signal.SIGKILL)
            waiter.join()
            child.returncode = -9
            raise Overran(f"{' '.join(argv[-3:])} still running after {deadline} s: killed")
        status, usage = reaped[0]
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return Finished(child.returncode, stdout, stderr, usage.ru_maxrss / 1024, seconds)


def python(code: str) -> list[str]:
    """argv running `code` with this interpreter."""
    return [sys.executable, "-c", code]


def cli(*args: str) -> list[str]:
    """argv of `support-monitor ARGS` with this interpreter."""
    return [sys.executable, "-m", "monitor", *args]
