"""The connector contract: how a source becomes batches of normalized events.

A connector only extracts. `fetch(cursor, now)` reads what is new since `cursor` and yields
`Batch`es; each batch carries the cursor that covers exactly the events in it and before it. The
ingest loop stores a batch's events and its cursor in one transaction, so a poll interrupted
anywhere resumes from the last stored batch and neither loses nor duplicates anything. A
connector never touches the database and never changes anything at the source.

Bad records are not exceptions: they travel in `Batch.rejected` with a location and a reason,
are counted and logged by the ingest loop, and the rest of the source is still read. Exceptions
are for a source that cannot be read at all (`ConnectorError`). Records left out on purpose
(an internal call, an outbound call that is no queue call, a verb that is not measured) are
counted per reason in `Batch.skipped`, so a poll can say why it found nothing to measure.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from monitor.config import Agents, SourceSettings
from monitor.events import Channel, Event

# Small, JSON-serializable, versioned ({"v": 1, ...}): it is stored as JSON with the rows.
Cursor = dict[str, Any]


class ConnectorError(Exception):
    """The source cannot be read now. `permanent` errors (bad credentials, a missing file that
    is configured) will not heal by retrying; transient ones (network, a locked file) may."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that was skipped: where it is (`file:line`, `INBOX uid 42`) and why."""

    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Batch:
    events: list[Event]
    cursor: Cursor  # valid once these events (and all earlier batches') are stored
    rejected: list[Rejection] = field(default_factory=list)
    # Records read and left out on purpose, or not measured yet, per reason in a few words
    # ("internal calls": 12). Reasons are fixed words of the connector, never data.
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ConnectorContext:
    """What a connector may know beyond its own settings."""

    agents: Agents
    base_dir: Path  # relative paths in the config are relative to this folder
    timezone: ZoneInfo  # the configured default zone for timestamps without an offset

    def path(self, value: str | Path) -> Path:
        return (self.base_dir / Path(value).expanduser()).resolve()

    def is_agent_address(self, address: str) -> bool:
        address = address.strip().lower()
        domain = address.rpartition("@")[2]
        return address in self.agents.addresses or domain in self.agents.domains


class Connector:
    """Base class: one small subclass per source kind, listed in `connectors.CONNECTORS`."""

    kind: ClassVar[str]
    channel: ClassVar[Channel]
    settings: ClassVar[type[SourceSettings]] = SourceSettings
    # Kinds whose sources are files may be backfilled with `support-monitor import`.
    imports_files: ClassVar[bool] = False
    # A source that mostly waits for a server (IMAP): ingest reads its next batch in a thread
    # while storing the last (monitor.ingest.read_ahead). Not for CPU-bound parsers of local
    # files: with one GIL, the thread only adds switching (measured on queue_log imports).
    reads_ahead: ClassVar[bool] = False

    def __init__(self, source: SourceSettings, context: ConnectorContext) -> None:
        self.source = source
        self.context = context

    def check(self) -> str:
        """Try the source without reading it all; return a short description of what was found.

        Raises ConnectorError with one readable line when the source cannot be used."""
        raise NotImplementedError

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        """Yield batches of what is new since `cursor` (None: from the beginning)."""
        raise NotImplementedError

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        """Read the given files once, for `import` (backfill). Cursors of these batches are
        ignored: an import never moves the source's own cursor."""
        raise ConnectorError(f"kind {self.kind!r} cannot import files", permanent=True)
