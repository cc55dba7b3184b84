"""What every connector reading files shares: a `path` that is a file or a glob.

A poll reads the files the path matches *now*; `check` says how many and how large; `import`
(backfill) takes named files instead. Nothing matching is an error that is permanent for `check`
(the config is wrong) but not for a poll, since during a log rotation (between the rename and
the new file's creation) nothing may match for a moment, and the next poll heals it.
"""

from __future__ import annotations

import glob
from pathlib import Path

from connectors.base import Connector, ConnectorError

_GLOB_CHARS = frozenset("*?[")


class FileSource(Connector):
    imports_files = True

    def configured_path(self) -> Path:
        """The configured file or glob, resolved against the config file's folder."""
        raise NotImplementedError

    def matching_files(self) -> list[Path]:
        """The files the configured path matches now (sorted; regular files only)."""
        path = self.configured_path()
        if not _GLOB_CHARS & set(str(path)):
            return [path] if path.is_file() else []
        return [Path(p) for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).is_file()]

    def matched(self, *, permanent: bool) -> list[Path]:
        found = self.matching_files()
        if not found:
            raise ConnectorError(f"no file matches {self.configured_path()}", permanent=permanent)
        return found

    def check(self) -> str:
        found = self.matched(permanent=True)
        size = 0
        for path in found:
            try:
                with path.open("rb") as handle:
                    handle.read(1)
                size += path.stat().st_size
            except OSError as exc:
                raise ConnectorError(unreadable(path, exc), permanent=True) from None
        return f"{len(found)} file{'' if len(found) == 1 else 's'}, {human_size(size)}"

    @staticmethod
    def require_files(paths: list[Path]) -> None:
        """For `import`: every named file exists (a typo fails before anything is read)."""
        for path in paths:
            if not path.is_file():
                raise ConnectorError(f"{path}: no such file", permanent=True)


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
