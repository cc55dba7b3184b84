"""Measurement: the pure rules of what is measured.

Normalized events (what every connector produces), inquiry pairing, business calendars and the
metrics engine (`summaries`). Functions of (rows, now, settings): no database, no clock, no I/O,
so the exporter, digest, report and alerts compute their numbers the same way.

Dependency direction: the bottom layer. It imports only `monitor.config`'s settings models and
libraries; the store, the publishers, the service and the connectors import it, never the
reverse (checked by `make lint`: import-linter's contracts in pyproject.toml).
"""
