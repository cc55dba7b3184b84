"""Support Monitor: response and hold times of every support channel, published.

Layers, each importing only those below it (checked by `make lint`):

- `cli`, `service`, `checks`, `config_file`: the command line, the long-running service,
  `check`, and reading the configuration file (where the settings meet the connector registry);
- `publish/`: exporter and HTTP endpoint, report, digest, alerts, notifiers, mail;
- `store/`: tables, the database, ingest, tallies, retention, leases, figures;
- `measure/`: the pure rules (events, inquiries, calendars, summaries).

`config` (the settings models), `cron`, `deadlines` (a deadline per network exchange) and
`errors` (the roots of the error hierarchy) are read by every layer and import none.
Connectors (the top-level `connectors` package) import only `measure.events`, `config`,
`deadlines`, `errors` and the top of `connectors/`.
"""

__version__ = "0.1.0"
