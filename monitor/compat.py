"""`make compat SAMPLES=DIR`: do real exports load as they are?

    python -m monitor.compat DIR [--config examples/compat/samples.yaml]

Runs each entry of the compatibility file (examples/compat/samples.yaml: a file or folder under
DIR, the source a user would write for it, and what it should give) through its connector into
a database of its own, and prints one line per entry: what was read, rejected and measured, and
what was left out on purpose and why. Exit status 1 when an entry that should load does not (it
fails its poll, rejects a record, or measures nothing; or, for `left out`, measures something),
or when a file in DIR is named by no entry; 2 for a usage or configuration problem.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.config import ConfigError, settings_from_mapping
from monitor.publish.printable import line
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import PollResult, poll_source, utcnow

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "examples" / "compat" / "samples.yaml"
IGNORED = frozenset({"SOURCES.md", "README.md"})  # the folder's own notes, not exports
WIDTH = 600  # an output line's bound (it names files, counts and reasons, nothing else)


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str  # relative to DIR: a file, or a folder a source reads whole
    expect: Literal["measured", "left out", "not loadable"]
    why: str | None = None
    source: dict[str, Any] | None = None


class CompatFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    files: list[Entry] = Field(min_length=1)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    text: str


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="monitor.compat", description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path, help="the folder of real files (SAMPLES=DIR)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    args = parser.parse_args(argv)
    try:
        entries = load(args.config)
    except (OSError, ValueError, ValidationError) as exc:
        print(f"{args.config}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    if not args.samples.is_dir():
        print(f"{args.samples}: not a folder (make compat SAMPLES=DIR)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.CRITICAL)  # rejections are summed up on each line
    started = time.monotonic()
    now = utcnow()
    failed = 0
    for entry in entries:
        outcome = run(entry, args.samples, now)
        failed += not outcome.ok
        print(line(f"{'ok  ' if outcome.ok else 'FAIL'}  {entry.file}: {outcome.text}", WIDTH))
    for path in uncovered(args.samples, entries):
        failed += 1
        print(line(f"FAIL  {path}: no entry in {args.config.name} says how to read it", WIDTH))
    seconds = time.monotonic() - started
    print(f"{len(entries)} entries, {failed} failed, {seconds:.1f} s")
    return 1 if failed else 0


def load(path: Path) -> list[Entry]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = CompatFile.model_validate(data).files
    for entry in entries:
        if (entry.source is None) != (entry.expect == "not loadable"):
            raise ValueError(f"{entry.file}: a source goes with `measured` or `left out` only")
        if entry.expect != "measured" and not entry.why:
            raise ValueError(f"{entry.file}: `{entry.expect}` needs a `why`")
    return entries


def run(entry: Entry, samples: Path, now: datetime) -> Outcome:
    """Poll `entry`'s source over its file into a database of its own; what it gave."""
    target = samples / entry.file
    if entry.source is None:
        return Outcome(True, f"not meant to load: {entry.why}")
    if not target.exists():
        return Outcome(True, "absent from this folder (nothing to check)")
    source = {**entry.source, "name": "sample", "path": str(target.resolve())}
    with tempfile.TemporaryDirectory(prefix="compat-") as scratch:
        folder = Path(scratch)
        try:
            settings = settings_from_mapping({"sources": [source]}, folder)
        except ConfigError as exc:
            return Outcome(False, f"the source is not a valid config: {exc}")
        engine = make_engine(f"sqlite:///{folder / 'compat.db'}", folder)
        try:
            prepare(engine)
            result = poll_source(engine, settings, settings.sources[0], now=now)
        finally:
            engine.dispose()
    return judge(entry, target, result)


def judge(entry: Entry, target: Path, result: PollResult) -> Outcome:
    kind = str((entry.source or {}).get("kind"))
    read = describe_read(target)
    if result.error is not None:
        return Outcome(False, f"{kind}: {read}, poll failed: {result.error}")
    measured = f"{result.calls} calls and {result.messages} messages measured"
    text = f"{kind}: {read}, {result.rejected} rejected, {measured}"
    if result.left_out:
        reasons = ", ".join(f"{n:,} {why}" for why, n in sorted(result.left_out.items()))
        text += f"; left out on purpose: {reasons}"
    if result.rejected:
        first = result.rejections[0]
        return Outcome(False, f"{text}; first rejection {first}")
    nothing = not (result.calls or result.messages)
    if entry.expect == "measured" and nothing:
        return Outcome(False, f"{text}; expected calls or messages")
    if entry.expect == "left out":
        if not nothing:
            return Outcome(False, f"{text}; expected every record left out ({entry.why})")
        text += f" ({entry.why})"
    return Outcome(True, text)


def describe_read(target: Path) -> str:
    """What the source had to read: lines of a file, or the files of a folder."""
    if target.is_dir():
        count = sum(1 for path in target.rglob("*") if path.is_file())
        return f"{count:,} files read"
    if target.suffix.lower() == ".json":  # one document, whatever its line breaks
        return f"{target.stat().st_size:,} bytes read"
    with target.open("rb") as handle:
        lines = sum(1 for data in handle if data.strip())
    return f"{lines:,} line{'' if lines == 1 else 's'} read"


def uncovered(samples: Path, entries: list[Entry]) -> list[str]:
    """The files under `samples` that no entry names (itself or a folder holding it)."""
    named = [Path(entry.file) for entry in entries]
    found: list[str] = []
    for path in sorted(samples.rglob("*")):
        relative = path.relative_to(samples)
        if not path.is_file() or path.name in IGNORED:
            continue
        if not any(relative == n or n in relative.parents for n in named):
            found.append(str(relative))
    return found


if __name__ == "__main__":
    sys.exit(main())
