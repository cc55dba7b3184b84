"""`make compat SAMPLES=DIR`: do real exports load as they are?

    python -m monitor.compat DIR [--config examples/compat/samples.yaml]

Runs each entry of the compatibility file (examples/compat/samples.yaml: a file or folder under
DIR, the source a user would write for it, and what it should give) through its connector into
a database of its own, and prints one line per entry: what was read, rejected and measured, and
what was left out on purpose and why. An entry may also name a column in which the file states
each call's wait itself (`agree:`, a CSV with a header): every call's stored wait must equal it,
except the calls listed with the reason the file contradicts itself there. Exit status 1 when
an entry that should load does not (it fails its poll, rejects a record, or measures nothing;
or, for `left out`, measures something; or a wait disagrees), or when a file in DIR is named by
no entry; 2 for a usage or configuration problem.
"""

from __future__ import annotations

import argparse
import csv
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
from sqlalchemy import Engine, select

from monitor.config_file import ConfigError, settings_from_mapping
from monitor.publish.printable import line
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import PollResult, poll_source, utcnow
from monitor.store.schema import CALLS

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "examples" / "compat" / "samples.yaml"
IGNORED = frozenset({"SOURCES.md", "README.md"})  # the folder's own notes, not exports
WIDTH = 600  # an output line's bound (it names files, counts and reasons, nothing else)


class Agreement(BaseModel):
    """Where a CSV file states each call's wait itself, to check the stored waits against."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str  # the column naming the call (a stored call's id starts with it)
    wait: str  # the column holding the file's own wait, in seconds
    where: dict[str, list[str]] = Field(min_length=1)  # the rows that end a call: column -> values
    differs: dict[str, str] = {}  # calls where the file contradicts itself: id -> how


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str  # relative to DIR: a file, or a folder a source reads whole
    expect: Literal["measured", "left out", "not loadable"]
    why: str | None = None
    source: dict[str, Any] | None = None
    agree: Agreement | None = None


@dataclass(frozen=True)
class Agreed:
    """Stored waits against the file's own, call by call."""

    column: str
    equal: int
    known: int  # differ where the file contradicts itself (the entry says how)
    wrong: list[str]  # differ otherwise, or the file's call was not stored

    @property
    def text(self) -> str:
        checked = self.equal + self.known + len(self.wrong)
        text = f"waits equal {self.column} for {self.equal} of {checked} calls"
        if self.known:
            text += f", {self.known} differ where the file contradicts itself"
        if self.wrong:
            text += f"; {len(self.wrong)} disagree: {', '.join(self.wrong[:3])}"
        return text


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
        if entry.agree is not None and entry.expect != "measured":
            raise ValueError(f"{entry.file}: `agree` goes with `measured` only")
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
            agreed = None
            if entry.agree is not None and result.error is None:
                agreed = agree(entry.agree, target, stored_waits(engine))
        finally:
            engine.dispose()
    return judge(entry, target, result, agreed)


def stored_waits(engine: Engine) -> dict[str, float | None]:
    """Each stored call's wait by the call's own id (the first part of its external id)."""
    with engine.connect() as conn:
        rows = conn.execute(select(CALLS.c.external_id, CALLS.c.wait_seconds))
        return {external.split("@")[0]: wait for external, wait in rows}


def agree(agreement: Agreement, target: Path, stored: dict[str, float | None]) -> Agreed:
    """The stored waits against the file's column, on the rows that end a call (the last one
    of a call counts)."""
    stated: dict[str, str] = {}
    with target.open(encoding="utf-8", errors="replace", newline="") as handle:
        for row in csv.DictReader(handle):
            if all(row.get(column) in values for column, values in agreement.where.items()):
                stated[row.get(agreement.id) or ""] = row.get(agreement.wait) or ""
    equal = known = 0
    wrong: list[str] = []
    for call, text in stated.items():
        try:
            expected: float | None = float(text)
        except ValueError:
            expected = None
        if call in stored and expected is not None and stored[call] == expected:
            equal += 1
        elif call in agreement.differs:
            known += 1
        else:
            wrong.append(f"{call} stored {stored.get(call, 'nothing')}, the file {text or 'none'}")
    return Agreed(agreement.wait, equal, known, wrong)


def judge(entry: Entry, target: Path, result: PollResult, agreed: Agreed | None = None) -> Outcome:
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
    if agreed is not None:
        text += f"; {agreed.text}"
        if agreed.wrong or not agreed.equal:
            return Outcome(False, text)
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
