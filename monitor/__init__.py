"""Support Monitor: response and hold times of every support channel, published.

Layers, each importing only those below it (checked by `make lint`):

- `cli`, `service`, `checks`: the command line, the long-running service, `check`;
- `publish/`: exporter and HTTP endpoint, report, digest, alerts, notifiers, mail;
- `store/`: tables, the database, ingest, tallies, retention, leases, figures;
- `measure/`: the pure rules (events, inquiries, calendars, summaries).

`config` (the settings models and the file's loading), `cron` and `deadlines` (a deadline per
network exchange, stdlib only) are read by every layer.
Connectors (the top-level `connectors` package) import only `measure.events`, `config` and
the top of `connectors/`.
"""

__version__ = "0.1.0"
