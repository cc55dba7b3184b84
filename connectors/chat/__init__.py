"""Chat connectors: a generic JSON-lines log (`jsonl`), and the exports of Slack, Zendesk Chat
and LiveChat (`slack_export`, `zendesk_chat`, `livechat`) with what those share
(`json_exports`, `slack_workspace`).

Dependency direction: like every connector, imports only `monitor.measure.events`,
`monitor.config`'s settings models and the top of `connectors/` (`base`, the file and JSON
readers); never another channel, the store or a publisher.
"""
