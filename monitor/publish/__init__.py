"""Publishing: everything that leaves the monitor.

The Prometheus exporter and the HTTP endpoint that serves it (`exporter`, `server`), the
`report` command's tables, the daily digest (`digest/`), alerts (`alerts/`) and their
`notifiers`, and what they share to send: claimed deliveries (`deliveries`), SMTP (`mailer`),
the Jinja2 templates (`templating`) and text made safe to print (`printable`).

Dependency direction: imports `monitor.store` and `monitor.measure` (one metrics engine, so
every output shows the same numbers); imported only by the service, `check` and the CLI.
"""
