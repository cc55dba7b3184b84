"""Line tailing for file sources: complete lines, their `file:line` locations and a cursor.

Chat exports and Asterisk's `queue_log` are append-only text files that get rotated. This module
reads them incrementally so that a poll costs what is new, not the history, and in bounded
memory whatever the file size.

Files are known by identity, not by name: the cursor keys each file by `<dev>:<inode>` and keeps
a fingerprint of its head, so that
- rotation by rename (`queue_log` -> `queue_log.1`, a new `queue_log` created) finishes the rest
  of the old file if it is still matched, and reads the new one from its start;
- copytruncate (the file shrinks below the stored offset, or its head changes) and a reused
  inode (a new file with different head bytes) restart that file from the beginning.

Cursor shape (`FileCursor`: small, JSON-serialisable)::

    {"v": 1, "files": {"<dev>:<inode>": {"path": str, "offset": int, "line": int,
                                         "head": "<sha1 hex>"}}}

`offset` is the byte just after the last consumed line, `line` the number of lines consumed
(so locations stay right across polls) and `head` the sha1 of the file's first
min(256, offset) bytes: only bytes already consumed, which an append-only writer never changes,
so a file that was shorter than 256 bytes at the last poll does not look replaced when it grows.

Only complete lines (ending in `\\n`) are consumed while tailing: a writer may be mid-line. Lines
are bytes without their line ending; decoding them is the caller's business.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from connectors.base import CURSOR_VERSION, Count, Cursor, Number, Rejection, Text, checked_cursor
from connectors.regular_files import NotRegularFile, open_regular, reason

DEFAULT_MAX_LINES = 5000
DEFAULT_MAX_LINE_BYTES = 1024 * 1024
HEAD_BYTES = 256
_BLOCK = 64 * 1024


class Line(NamedTuple):
    location: str  # "website.jsonl:1042" (file name and 1-based line number)
    data: bytes  # without the trailing "\n" (or "\r\n")


class Run(NamedTuple):
    """Consecutive lines of one file: `lines[i]` is line `first + i` of `name`. A chunk keeps
    its lines this way because a million `Line`s with their location strings cost more than
    the parsing that follows; `Run.location(i)` makes the string when one is needed."""

    name: str
    first: int
    lines: list[bytes]

    def location(self, index: int) -> str:
        return f"{self.name}:{self.first + index}"


@dataclass(frozen=True, slots=True)
class Chunk:
    """Up to `max_lines` lines (and skipped ones) and the cursor that covers them and all before."""

    runs: list[Run]
    cursor: Cursor
    rejected: list[Rejection]

    @property
    def lines(self) -> list[Line]:
        """Every line with its location (the simple way; `runs` is the fast one)."""
        return [
            Line(run.location(i), data) for run in self.runs for i, data in enumerate(run.lines)
        ]


def tail(
    paths: Sequence[Path],
    cursor: Cursor | None,
    *,
    max_lines: int = DEFAULT_MAX_LINES,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[Chunk]:
    """Yield what is new in `paths` since `cursor` (None: everything), in chunks.

    The last chunk always carries the final cursor, even with no lines, whenever the cursor
    changed (a file restarted, a vanished file forgotten). Raises ValueError for a cursor that
    is not of this shape. A matched file that is not a regular file or cannot be opened is a
    rejection located by its name; the others are read.
    """
    return _read(paths, load_cursor(cursor), max_lines, max_line_bytes, final=False)


def read_all(
    paths: Sequence[Path],
    *,
    max_lines: int = DEFAULT_MAX_LINES,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[Chunk]:
    """Read `paths` once from the beginning (for `import`): no cursor, and the files are taken
    as finished, so a last line without a final newline is read too."""
    return _read(paths, {}, max_lines, max_line_bytes, final=True)


@with_config(ConfigDict(extra="forbid"))
class FileEntry(TypedDict):
    path: Text  # where the file was last seen
    offset: Count  # the byte after the last line consumed
    line: Count  # lines consumed
    head: Text  # sha1 of the first min(256, offset) bytes


@with_config(ConfigDict(extra="forbid"))
class FileCursor(TypedDict):
    v: Number
    files: dict[str, FileEntry]  # by "<dev>:<inode>"


def load_cursor(cursor: Cursor | None) -> dict[str, dict[str, Any]]:
    """The per-file entries of a stored cursor, checked; ValueError if it is not ours."""
    if cursor is None:
        return {}
    checked = checked_cursor(FileCursor, cursor, "file")
    return {key: dict(entry) for key, entry in checked["files"].items()}


def _dump(files: dict[str, dict[str, Any]]) -> Cursor:
    # A copy: chunks already handed out must not change as reading goes on.
    return {"v": CURSOR_VERSION, "files": {key: dict(entry) for key, entry in files.items()}}


def _ordered(paths: Iterable[Path]) -> tuple[list[tuple[Path, os.stat_result]], list[Rejection]]:
    """Regular files, oldest modification first, then by name: a rotated file (older) is
    finished before the one that replaced it. A path that vanished meanwhile is skipped; one
    that is not a regular file (a FIFO, a device, a socket, a symlink to one) is a rejection
    located by its name, and the others are read."""
    found: list[tuple[Path, os.stat_result]] = []
    refused: list[Rejection] = []
    for path in paths:
        try:
            info = path.stat()
        except FileNotFoundError:
            continue  # rotated away between the glob and now; seen under its new name if matched
        except OSError as exc:
            refused.append(Rejection(path.name, reason(exc)))
            continue
        if stat.S_ISREG(info.st_mode):
            found.append((path, info))
        elif not stat.S_ISDIR(info.st_mode):
            refused.append(Rejection(path.name, reason(NotRegularFile(path, info.st_mode))))
    found.sort(key=lambda item: (item[1].st_mtime_ns, str(item[0])))
    return found, refused


def _read(
    paths: Sequence[Path],
    previous: dict[str, dict[str, Any]],
    max_lines: int,
    max_line_bytes: int,
    *,
    final: bool,
) -> Iterator[Chunk]:
    if max_lines < 1 or max_line_bytes < 1:
        raise ValueError("max_lines and max_line_bytes must be positive")
    # Only files matched now stay in the cursor: it stays small however often logs rotate.
    files: dict[str, dict[str, Any]] = {}
    runs: list[Run] = []
    ordered, rejected = _ordered(paths)
    count = len(rejected)  # lines and rejections in the chunk being filled
    emitted = _dump(previous)
    for path, _ in ordered:
        try:
            handle = open_regular(path)
        except FileNotFoundError:
            continue
        except OSError as exc:  # unreadable, or replaced by a FIFO since: this file alone
            rejected.append(Rejection(path.name, reason(exc)))
            count += 1
            continue
        with handle:
            info = os.fstat(handle.fileno())  # the file actually opened, even if renamed since
            key = f"{info.st_dev}:{info.st_ino}"
            if key in files:
                continue  # the same file twice (a hard link, a path given twice)
            entry = _resume(previous.get(key), handle, info.st_size)
            entry["path"] = str(path)
            files[key] = entry
            head = _Head(handle, entry)
            pieces = _pieces(
                handle, entry["offset"], info.st_size, max_line_bytes, final, head.feed
            )
            for piece in pieces:
                if isinstance(piece, _Long):
                    entry["offset"] += piece.consumed
                    entry["line"] += 1
                    why = f"line of {piece.length} bytes is longer than the limit"
                    rejected.append(Rejection(f"{path.name}:{entry['line']}", why))
                    count += 1
                else:
                    # Cut the piece where the chunk fills; the cursor must cover exactly the
                    # lines handed out, so the offset moves by the bytes of those lines only.
                    start, total = 0, len(piece.lines)
                    while start < total:
                        take = min(total - start, max_lines - count)
                        lines = piece.lines if take == total else piece.lines[start : start + take]
                        entry["offset"] += sum(map(len, lines)) + take * piece.newline
                        runs.append(Run(path.name, entry["line"] + 1, _no_cr(lines, piece.cr)))
                        entry["line"] += take
                        count += take
                        start += take
                        if count >= max_lines:
                            head.refresh()
                            emitted = _dump(files | _later(previous, files))
                            yield Chunk(runs, emitted, rejected)
                            runs, rejected, count = [], [], 0
                    continue
                if count >= max_lines:
                    head.refresh()
                    emitted = _dump(files | _later(previous, files))
                    yield Chunk(runs, emitted, rejected)
                    runs, rejected, count = [], [], 0
            head.refresh()
    # Entries of files still to come are kept in every cursor above (`_later`); at the end only
    # the files matched this time remain.
    final_cursor = _dump(files)
    if runs or rejected or final_cursor != emitted:
        yield Chunk(runs, final_cursor, rejected)


def _later(previous: dict[str, dict[str, Any]], done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Entries of files not reached yet in this pass: a mid-pass cursor must not forget them."""
    return {key: entry for key, entry in previous.items() if key not in done}


def _resume(stored: dict[str, Any] | None, handle: BinaryIO, size: int) -> dict[str, Any]:
    """Where to continue in this file: the stored position, or 0 when it is new or replaced."""
    fresh = {"offset": 0, "line": 0, "head": _head_hash(handle, 0)}
    if stored is None:
        return fresh
    offset = int(stored["offset"])
    if size < offset:
        return fresh  # truncated in place (copytruncate): everything in it now is new
    if _head_hash(handle, offset) != stored["head"]:
        return fresh  # another file under a reused inode, or rewritten from the start
    return {"offset": offset, "line": int(stored["line"]), "head": stored["head"]}


def _head_hash(handle: BinaryIO, offset: int) -> str:
    handle.seek(0)
    return hashlib.sha1(handle.read(min(HEAD_BYTES, offset))).hexdigest()


class _Head:
    """Keeps `entry["head"]` the hash of the first min(HEAD_BYTES, offset) bytes as it grows.

    The bytes hashed are the ones this pass verified or read, not the file's head re-read later:
    a file truncated and rewritten while being read (copytruncate mid-poll) would otherwise get
    the new content's fingerprint with the old content's offset, and the next poll would resume
    mid-file in the new content, skipping its first lines."""

    def __init__(self, handle: BinaryIO, entry: dict[str, Any]) -> None:
        self.entry = entry
        self.covered = min(HEAD_BYTES, entry["offset"])
        handle.seek(0)
        self.prefix = handle.read(self.covered)  # the bytes `_resume` has just checked

    def feed(self, position: int, block: bytes) -> None:
        """`block` was read at `position`: keep what extends the first HEAD_BYTES bytes."""
        have = len(self.prefix)
        if have < HEAD_BYTES and position <= have < position + len(block):
            self.prefix += block[have - position : HEAD_BYTES - position]

    def refresh(self) -> None:
        # Once HEAD_BYTES are covered the fingerprint is fixed.
        if self.covered < HEAD_BYTES and self.entry["offset"] > self.covered:
            self.covered = min(HEAD_BYTES, self.entry["offset"])
            self.entry["head"] = hashlib.sha1(self.prefix[: self.covered]).hexdigest()


class _Piece(NamedTuple):
    """Complete lines read together, raw: each took its bytes plus a newline (`newline`), and
    may end in "\r" (`cr`: only checked when the block had one)."""

    lines: list[bytes]
    cr: bool
    newline: bool


class _Long(NamedTuple):
    """A line longer than the limit: `consumed` bytes (with its newline) skipped."""

    consumed: int
    length: int


def _no_cr(lines: list[bytes], cr: bool) -> list[bytes]:
    return [line[:-1] if line.endswith(b"\r") else line for line in lines] if cr else lines


def _pieces(
    handle: BinaryIO,
    offset: int,
    size: int,
    max_line_bytes: int,
    final: bool,
    seen: Callable[[int, bytes], None],
) -> Iterator[_Piece | _Long]:
    """The complete lines from `offset` up to `size` (the size when the file was opened, so a
    busy writer cannot keep a poll going forever), a block's worth at a time.

    Memory stays within about `max_line_bytes` plus one block: a longer line is dropped as it
    is read and reported once its end is found.
    """
    handle.seek(offset)
    remaining = size - offset
    pending = b""  # the start of a line whose end has not been read yet
    skipping = 0  # bytes of an over-long line dropped so far (0: not skipping)
    while remaining > 0:
        position = handle.tell()
        block = handle.read(min(_BLOCK, remaining))
        if not block:
            break  # truncated while reading: the next poll notices and restarts
        seen(position, block)
        remaining -= len(block)
        parts = block.split(b"\n")
        parts[0] = pending + parts[0]
        pending = parts.pop()
        if parts and skipping:  # the first part ends the over-long line
            yield _Long(skipping + len(parts[0]) + 1, skipping + len(parts[0]))
            skipping = 0
            del parts[0]
        if parts:
            cr = b"\r" in block
            if max(map(len, parts)) <= max_line_bytes:
                yield _Piece(parts, cr, True)
            else:
                yield from _split_long(parts, cr, max_line_bytes)
        if skipping or len(pending) > max_line_bytes:
            skipping += len(pending)
            pending = b""
    if final and (pending or skipping):
        # A finished file may lack the last newline; while tailing, that line is left for later.
        if skipping:
            yield _Long(skipping, skipping)
        else:
            yield _Piece([pending], True, False)


def _split_long(parts: list[bytes], cr: bool, max_line_bytes: int) -> Iterator[_Piece | _Long]:
    good: list[bytes] = []
    for part in parts:
        if len(part) > max_line_bytes:
            if good:
                yield _Piece(good, cr, True)
                good = []
            yield _Long(len(part) + 1, len(part))
        else:
            good.append(part)
    if good:
        yield _Piece(good, cr, True)
