"""What every connector reading files shares: a `path` that is a file or a glob.

A poll reads the files the path matches *now*; `check` says how many and how large; `import`
(backfill) takes named files instead. Nothing matching is an error that is permanent for `check`
(the config is wrong) but not for a poll, since during a log rotation (between the rename and
the new file's creation) nothing may match for a moment, and the next poll heals it.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

from connectors import files
from connectors.base import Connector, ConnectorContext, ConnectorError, Cursor, unusable_cursor
from connectors.regular_files import glob_files, glob_paths, open_regular, reason
from monitor.config import SourceSettings


class FileSource(Connector):
    """A source of files: a kind says where they are (`configured_path`) and how to read them
    (`fetch`); matching, `check` and `import`'s file checks are shared."""

    imports_files = True

    @abstractmethod
    def configured_path(self) -> Path:
        """The configured file or glob, resolved against the config file's folder."""

    def matching_files(self) -> list[Path]:
        """The files the configured path matches now (sorted; folders left out, anything else
        in: a FIFO or a device there is a located rejection when read, not silence)."""
        return matching_files(self.configured_path())

    def matched(self, *, permanent: bool) -> list[Path]:
        found = self.matching_files()
        if not found:
            raise ConnectorError(f"no file matches {self.configured_path()}", permanent=permanent)
        return found

    def check(self) -> str:
        found = self.matched(permanent=True)
        return describe_files(found)

    @staticmethod
    def require_files(paths: list[Path]) -> None:
        """For `import`: every named file exists (a typo fails before anything is read). One
        that is not a regular file or cannot be read is a located rejection when read."""
        for path in paths:
            if not path.exists() and not path.is_symlink():
                raise ConnectorError(f"{path}: no such file", permanent=True)


def matching_paths(path: Path) -> list[Path]:
    """What `path` (a file or folder, or a glob with `**`) matches now, sorted by name; `**`
    never follows a symlinked folder (connectors.regular_files)."""
    return glob_paths(path)


def matching_files(path: Path) -> list[Path]:
    """`matching_paths(path)` without folders."""
    return glob_files(path)


def describe_files(found: list[Path]) -> str:
    """`check`'s line for matched files: how many and how large; ConnectorError naming the
    first that a poll would reject (not a regular file, unreadable) and how many there are."""
    size = 0
    refused: list[str] = []
    for path in found:
        try:
            with open_regular(path) as handle:
                handle.read(1)
                size += os.fstat(handle.fileno()).st_size
        except OSError as exc:
            refused.append(f"{path}: {reason(exc)}")
    if refused:
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise ConnectorError(
            f"{refused[0]}{more}; the other {len(found) - len(refused)} would be read",
            permanent=True,
        )
    return f"{len(found)} file{'' if len(found) == 1 else 's'}, {human_size(size)}"


class LineFileSettings(SourceSettings):
    path: str  # a file or a glob (`**` allowed); relative to the config file's folder


class LineFileSource(FileSource):
    """A source whose files are read line by line (logs, CSV, JSONL): tailed by inode and offset
    on a poll (connectors.files), read whole by `import`. Its settings have a `path` and may
    have a `timezone` for times written without an offset (default: the config's)."""

    def __init__(
        self,
        source: SourceSettings,
        context: ConnectorContext,
        *,
        max_lines: int = files.DEFAULT_MAX_LINES,
        max_line_bytes: int = files.DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        super().__init__(source, context)
        assert isinstance(source, LineFileSettings), type(source)
        self.path = context.path(source.path)
        zone = getattr(source, "timezone", None)
        self.zone = ZoneInfo(zone) if zone else context.timezone
        self.max_lines = max_lines
        self.max_line_bytes = max_line_bytes

    def configured_path(self) -> Path:
        return self.path

    def tail_chunks(
        self, cursor: Cursor | None, matched: list[Path] | None = None
    ) -> Iterator[files.Chunk]:
        """What is new since `cursor` in the files the path matches (or `matched`), in chunks."""
        if matched is None:
            matched = self.matched(permanent=False)
        try:
            return files.tail(
                matched, cursor, max_lines=self.max_lines, max_line_bytes=self.max_line_bytes
            )
        except ValueError as exc:
            raise unusable_cursor(exc) from None

    def read_chunks(self, paths: list[Path]) -> Iterator[files.Chunk]:
        """The named files whole, for `import`."""
        self.require_files(paths)
        return files.read_all(paths, max_lines=self.max_lines, max_line_bytes=self.max_line_bytes)


def unreadable(path: Path, exc: OSError) -> str:
    return f"cannot read {path}: {exc.strerror or exc}"


def read_error(exc: OSError, fallback: Path) -> ConnectorError:
    """A file that vanished or cannot be read mid-poll: one line naming it, not permanent."""
    path = Path(exc.filename) if exc.filename else fallback
    return ConnectorError(unreadable(path, exc))


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
