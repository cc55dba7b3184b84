"""The registry of connector kinds.

Kinds map to `module:Class` strings and are imported on first use, so a kind's dependencies
(and its import time) cost nothing until a source of that kind is configured.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from connectors.base import Connector

CONNECTORS: dict[str, str] = {
    "chat_jsonl": "connectors.chat_jsonl:ChatJsonlConnector",
    "slack_export": "connectors.slack_export:SlackExportConnector",
    "zendesk_chat": "connectors.zendesk_chat:ZendeskChatConnector",
    "livechat": "connectors.livechat:LiveChatConnector",
    "asterisk_cdr": "connectors.asterisk_cdr:AsteriskCdrConnector",
    "call_csv": "connectors.call_csv:CallCsvConnector",
    "answering_service_csv": "connectors.answering_service_csv:AnsweringServiceCsvConnector",
    "asterisk_queue_log": "connectors.asterisk_queue_log:AsteriskQueueLogConnector",
    "imap": "connectors.imap:ImapConnector",
    "mbox": "connectors.mbox:MboxConnector",
    "maildir": "connectors.maildir:MaildirConnector",
}


@cache
def connector_class(kind: str) -> type[Connector]:
    """The class for `kind`; KeyError if no such kind is registered."""
    module_name, _, class_name = CONNECTORS[kind].partition(":")
    cls: type[Connector] = getattr(import_module(module_name), class_name)
    assert issubclass(cls, Connector) and cls.kind == kind, CONNECTORS[kind]
    return cls
