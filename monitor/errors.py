"""The errors of Support Monitor: one root, and one base for each way a caller handles them.

    SupportMonitorError                 the root: every error the monitor raises on purpose
    ├── OperationError(permanent)       reading a source, sending, or the database failed
    │   ├── connectors.base.ConnectorError      a source cannot be read now
    │   ├── monitor.publish.deliveries.DeliveryError   a digest or notification not delivered
    │   └── StoreError                   the database cannot be used (monitor.store.database)
    ├── BadRecord                       one record cannot be used: skip it, located and counted
    │   └── RowError, RecordError, MailError, ... (each reader's own)
    ├── monitor.config_file.ConfigError the configuration is invalid
    ├── monitor.publish.server.ListenError  `metrics.listen` cannot be had (a config error)
    ├── monitor.starter.StarterError    `init --kinds` names no known kind (a usage error)
    └── monitor.cli.UsageError          the command line is

`permanent` says whether retrying can help: bad credentials, a missing configured file, a 4xx
answer will fail the same way next time; the network, a locked file or a 5xx may not. A
`BadRecord` is no failure of the source: the rest of it is read (connectors.base.Records). It is
also a `ValueError`, as the parsers' own errors are, so a value check can raise either.

Stdlib only and below every layer (like monitor.config), so connectors may use it too.
"""

from __future__ import annotations


class SupportMonitorError(Exception):
    """The root of the errors the monitor raises on purpose; each carries one readable line."""


class OperationError(SupportMonitorError):
    """An operation on the outside world failed: reading a source, sending, the database.
    `permanent` errors will not heal by retrying; transient ones may."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class BadRecord(SupportMonitorError, ValueError):
    """A record that cannot be used; the message is the rejection reason. Reasons name a field
    or a type, never the record's contents (they are logged)."""


class StoreError(OperationError):
    """The database cannot be used (unreachable, locked, newer schema). One readable line.
    Raised by the store (monitor.store.database); defined here so that the CLI can catch it
    without importing the store, and SQLAlchemy with it, before a command needs either."""
