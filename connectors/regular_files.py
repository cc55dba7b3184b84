"""Opening what a path or glob names: regular files only, never blocking, never unbounded.

A path in the config, a glob match or a file inside an unpacked export may be a FIFO (opening
it waits for a writer, reading it waits for ever), a device (`/dev/zero` never ends), a socket,
or a symlink to any of these. Each is refused as "not a regular file" before a byte is read:
the file is opened without blocking (O_NONBLOCK: a FIFO opens at once), and what was opened,
not what the name pointed to a moment before, is checked with fstat. Callers turn the error
into a located rejection, so the other files are still read.

Globs (`glob_files`) never follow a symlinked folder when expanding `**` (pathlib's rule), so
two symlinks to a parent folder cannot make a glob endless; a symlink to a file, or a
symlinked folder named by a path or a `*` component, is followed as usual.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

GLOB_CHARS = frozenset("*?[")
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


class NotRegularFile(OSError):
    """The path names a FIFO, a device, a socket or a folder (maybe through a symlink)."""

    def __init__(self, path: Path, mode: int) -> None:
        kind = _KINDS.get(stat.S_IFMT(mode), "not a file")
        super().__init__(errno.EINVAL, f"not a regular file ({kind})", str(path))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading in binary; NotRegularFile (an OSError) unless it is a regular
    file, and the OSError of `open` (missing, permission denied) as usual."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def why_unreadable(path: Path) -> str | None:
    """None when `path` opens as a regular file now; else the reason, for a rejection."""
    try:
        with open_regular(path):
            return None
    except OSError as exc:
        return reason(exc)


def reason(exc: OSError) -> str:
    """The short reason of an open error, without the path (a rejection is located already)."""
    return str(exc.strerror or exc)


def glob_paths(pattern: Path) -> list[Path]:
    """What `pattern` (a path, or a glob with `*`, `?`, `[...]` and `**`) names now, sorted,
    folders included. Like the shell, a `*` does not match names starting with a dot unless
    the pattern says so."""
    if not GLOB_CHARS & set(str(pattern)):
        return [pattern] if pattern.exists() or pattern.is_symlink() else []
    parts = pattern.parts
    first = next(i for i, part in enumerate(parts) if GLOB_CHARS & set(part))
    root = Path(*parts[:first]) if first else Path()
    rest = parts[first:]
    dotted = any(part.startswith(".") for part in rest)
    found = []
    for match in root.glob(str(Path(*rest))):
        relative = match.parts[len(root.parts) :]
        if dotted or not any(part.startswith(".") for part in relative):
            found.append(match)
    return sorted(found)


def glob_files(pattern: Path) -> list[Path]:
    """`glob_paths` without folders: regular files and whatever else is there (a FIFO, a
    device, a dangling symlink), which the reader refuses with a located reason."""
    return [path for path in glob_paths(pattern) if not path.is_dir()]
