"""The registry of connector kinds.

Kinds map to `module:Class` strings and are imported on first use, so a kind's dependencies
(and its import time) cost nothing until a source of that kind is configured.

Layout: one package per channel (`mail/`, `phone/`, `chat/`); what kinds share sits here at
the top: the contract (`base`) and the readers (`regular_files`, `files`, `file_source`,
`csv_rows`, `json_records`, `json_stream`). Connectors import only `monitor.measure.events`,
`monitor.config`'s settings models and this top; never each other's channel, the store or a
publisher.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING

from connectors.base import Connector, ConnectorContext

if TYPE_CHECKING:
    from monitor.config import Settings, SourceSettings

CONNECTORS: dict[str, str] = {
    "chat_jsonl": "connectors.chat.jsonl:ChatJsonlConnector",
    "slack_export": "connectors.chat.slack_export:SlackExportConnector",
    "zendesk_chat": "connectors.chat.zendesk_chat:ZendeskChatConnector",
    "livechat": "connectors.chat.livechat:LiveChatConnector",
    "asterisk_cdr": "connectors.phone.asterisk_cdr:AsteriskCdrConnector",
    "call_csv": "connectors.phone.call_csv:CallCsvConnector",
    "answering_service_csv": "connectors.phone.answering_service_csv:AnsweringServiceCsvConnector",
    "answering_service_mail": "connectors.mail.answering_service:AnsweringServiceMailConnector",
    "asterisk_queue_log": "connectors.phone.asterisk_queue_log:AsteriskQueueLogConnector",
    "imap": "connectors.mail.imap:ImapConnector",
    "mbox": "connectors.mail.mbox:MboxConnector",
    "maildir": "connectors.mail.maildir:MaildirConnector",
}


@cache
def connector_class(kind: str) -> type[Connector]:
    """The class for `kind`; KeyError if no such kind is registered."""
    module_name, _, class_name = CONNECTORS[kind].partition(":")
    cls: type[Connector] = getattr(import_module(module_name), class_name)
    assert issubclass(cls, Connector) and cls.kind == kind, CONNECTORS[kind]
    return cls


def build_connector(settings: Settings, source: SourceSettings) -> Connector:
    """The connector of `source`, with what every kind is given from the settings."""
    context = ConnectorContext(
        agents=settings.file.agents,
        base_dir=settings.base_dir,
        timezone=settings.timezone,
        plausible=settings.file.plausible_times,
    )
    return connector_class(source.kind)(source, context)
