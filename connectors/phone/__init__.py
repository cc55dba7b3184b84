"""Phone connectors: call logs (`asterisk_cdr`, `call_csv`), Asterisk's queue_log
(`asterisk_queue_log`, with `queue_log_lines`, `queue_log_rows` and `queue_log_calls`) and the
message logs of answering services (`answering_service_csv`).

Dependency direction: like every connector, imports only `monitor.measure.events`,
`monitor.config`'s settings models and the top of `connectors/` (`base`, `files`,
`file_source`, `csv_rows`); never another channel, the store or a publisher.
"""
