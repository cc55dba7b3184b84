"""E-mail connectors: `imap` (a live mailbox, with `imap_session` and `imap_fetch`), `mbox` and
`maildir` (archives on disk), and what the three share: header blocks to values (`headers`)
and one message's headers to one event (`message`).

Dependency direction: like every connector, imports only `monitor.measure.events`,
`monitor.config`'s settings models and the top of `connectors/` (`base`, the file readers);
never another channel, the store or a publisher.
"""
