"""Run every benchmark and print one table of ratios against their baselines (issue #9).

    .venv/bin/python bench/run.py [--quick] [--markdown FILE] [--dir bench] [--timeout 3600]

Each `bench/*.py` script but this one runs in its own subprocess (`--quick` is passed on for the
small CI-smoke size) and must print as its last line `RESULT {json}` with the keys `name`,
`ours_s`, `baseline_s`, `ratio` (ours/baseline), `target` (the largest acceptable ratio, or
null) and `extra` (other figures). A script that is missing its RESULT line, exits non-zero or
times out becomes a row "failed: <one line>" instead of stopping the others.

The `ok` column says whether every target of the row was met: ratio <= target, and each verdict
a script puts in `extra` as a boolean named `ok` or `..._ok` (the queue_log import's
`memory_ok`, "peak memory under 500 MB whatever the file size", and `poll_ok`, "a poll of 50
new calls costs well under a second": a bench that keeps its ratio but misses one of these has
missed its target all the same). A miss names what was missed: `no (memory)`. With no ratio
target, `extra["target"]` holds the words of the script's own (e.g. the scrape's absolute
"under 100 ms"). The exit status is 1 when a benchmark failed or missed a target, else 0.
With `--quick` a missed target is shown but does not fail the run: the performance targets are
set at the full sizes, and at the small ones start-up (imports, a server's first answer) weighs
more than the work measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PREFIX = "RESULT "
COLUMNS = ("benchmark", "ours", "baseline", "ratio", "target", "ok")


@dataclass
class Row:
    script: str
    name: str
    ours_s: float | None = None
    baseline_s: float | None = None
    ratio: float | None = None
    target: float | None = None
    ok: bool | None = None
    took_s: float = 0.0
    failure: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)  # the targets missed: ratio, memory, poll

    def cells(self) -> tuple[str, ...]:
        if self.failure is not None:
            return (self.name, f"failed: {self.failure}", "", "", "", "no")
        verdict = {True: "yes", False: "no", None: "-"}[self.ok]
        if self.missed:
            verdict += f" ({', '.join(self.missed)})"
        return (
            self.name,
            seconds(self.ours_s),
            seconds(self.baseline_s),
            "" if self.ratio is None else f"{self.ratio:.2f}x",
            str(self.extra.get("target", "")) if self.target is None else f"<= {self.target:g}x",
            verdict,
        )

    def judge(self) -> None:
        """`ok` and `missed` from the ratio's target and every `ok` / `..._ok` verdict."""
        verdicts = []
        if self.target is not None and self.ratio is not None:
            verdicts.append(("ratio", self.ratio <= self.target))
        for key, value in self.extra.items():
            if isinstance(value, bool) and (key == "ok" or key.endswith("_ok")):
                verdicts.append((key.removesuffix("_ok") if key != "ok" else "target", value))
        self.ok = all(met for _, met in verdicts) if verdicts else None
        # Each target named once: a script's `ratio_ok` is the ratio's own verdict, and its
        # `ok` beside named verdicts is their sum, so it is named only when alone.
        missed = list(dict.fromkeys(name for name, met in verdicts if not met))
        if len(missed) > 1 and "target" in missed:
            missed.remove("target")
        self.missed = missed


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def scripts(folder: Path) -> list[Path]:
    """The benchmark scripts of `folder`: every *.py but this runner and private modules."""
    return sorted(
        path
        for path in folder.glob("*.py")
        if path.name != Path(__file__).name and not path.name.startswith("_")
    )


def parse_result(script: str, output: str) -> Row:
    """The Row of a script's output; a Row with `failure` when its last line is not a RESULT."""
    lines = [line for line in output.splitlines() if line.strip()]
    name = Path(script).stem
    if not lines or not lines[-1].startswith(PREFIX):
        return Row(script, name, failure="no RESULT line at the end of its output")
    try:
        data = json.loads(lines[-1][len(PREFIX) :])
        if not isinstance(data, dict):
            raise ValueError("RESULT is not a JSON object")
        row = Row(
            script,
            str(data.get("name") or name),
            ours_s=_number(data, "ours_s"),
            baseline_s=_number(data, "baseline_s"),
            ratio=_number(data, "ratio"),
            target=_number(data, "target", optional=True),
            extra=dict(data.get("extra") or {}),
        )
    except (ValueError, TypeError) as exc:
        return Row(script, name, failure=f"bad RESULT line ({exc})")
    if row.ratio is None and row.ours_s is not None and row.baseline_s:
        row.ratio = row.ours_s / row.baseline_s
    row.judge()
    return row


def _number(data: dict[str, Any], key: str, *, optional: bool = False) -> float | None:
    value = data.get(key)
    if value is None:
        if optional:
            return None
        raise ValueError(f"{key} is missing")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} is not a number")
    return float(value)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def run_script(path: Path, *, quick: bool, timeout: float) -> Row:
    argv = [sys.executable, str(path), *(["--quick"] if quick else [])]
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=path.parent.parent,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Row(path.name, path.stem, failure=f"timed out after {timeout:g} s")
    took = time.monotonic() - started
    if done.returncode != 0:
        why = last_line(done.stderr) if done.stderr.strip() else last_line(done.stdout)
        row = Row(path.name, path.stem, failure=f"exit {done.returncode}: {why}")
    else:
        row = parse_result(path.name, done.stdout)
    row.took_s = took
    return row


def table(rows: list[Row]) -> str:
    """A plain-text table for the terminal."""
    cells = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    out = []
    for n, line in enumerate(cells):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if n == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in out) + "\n"


def markdown(rows: list[Row]) -> str:
    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    out = [line(COLUMNS), "|" + "|".join("---" for _ in COLUMNS) + "|"]
    out.extend(line(row.cells()) for row in rows)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the table here")
    parser.add_argument("--dir", type=Path, default=HERE, help="the folder of benchmark scripts")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark")
    args = parser.parse_args(argv)
    found = scripts(args.dir)
    if not found:
        print(f"no benchmark scripts in {args.dir}", file=sys.stderr)
        return 1
    rows = []
    for path in found:
        print(f"running {path.name}{' --quick' if args.quick else ''} ...", file=sys.stderr)
        row = run_script(path, quick=args.quick, timeout=args.timeout)
        print(f"  {row.cells()[1] or row.failure} ({row.took_s:.0f} s)", file=sys.stderr)
        rows.append(row)
    sys.stdout.write(table(rows))
    if args.markdown is not None:
        args.markdown.write_text(markdown(rows))
    if any(row.failure is not None for row in rows):
        return 1
    missed = [row.name for row in rows if row.ok is False]
    if missed and args.quick:
        print(f"--quick: {', '.join(missed)}: target missed at the small size", file=sys.stderr)
        return 0
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
