"""The store: tables, the database, and what is written to it and read back.

The tables and the time type of every column (`tables`, `instants`), engine set-up and schema
(`database`), the ingest loop and its batches (`ingest`, `batches`, `bulk`; an import's files
read in a child process, `reader_process`), e-mail threading
(`threads`), the bounded queue labels of calls (`queue_labels`), the monotonic counters
(`tallies`), retention, polling leases (`leases`), and the figures of a period read back for
the publishers (`figures`).

Dependency direction: imports `monitor.measure`, `monitor.config` and, to run a poll, the
connector registry; imported by `monitor.publish` and the service, never by `monitor.measure`
or by a connector.
"""
