"""The `zendesk_chat` connector: Zendesk Chat (Live Chat API v2) transcripts.

Reads chats as the Chat API gives them (`GET /api/v2/chats`, the incremental export
`/api/v2/chat/incremental/chats`): a JSON document (`{"chats": [...]}`, an array of chats or one
chat), or JSONL with one chat a line; Airbyte's `{"stream": "chats", "data": {...}}` records are
unwrapped and its other streams skipped.

A chat (`type: chat`) is one conversation. Its `history[]` entries become events:

- `chat.msg` and `chat.file` are messages. Who wrote one comes from `nick` (`visitor:…` is the
  customer; `agent:trigger` a trigger, `agent:system` the system, other `agent:…` a human
  agent), else `sender_type` (Fivetran's column), else the name matched against the chat's
  `agent_names` or the visitor's name. Triggers (the automatic "First Reply" among them), bots
  and system messages are automatic: they never answer anyone.
- The visitor leaving (`chat.memberleave` by the visitor) and the chat's `end_timestamp` end the
  conversation: a visitor still waiting then is a missed chat.
- Every other `chat.*` entry (member joins, ratings, comments, rating requests, transfers) is an
  automatic event; a type outside `chat.*` is rejected as unknown.

An offline message (`type: offline_msg`, left while nobody was online) is an inquiry of its own
in a conversation per visitor (`visitor:<email or id>`); the first human agent message of any
later chat with that visitor answers it. Times are ISO 8601 (UTC when no offset is given, as
Zendesk writes them) or Unix epochs. Message text is never read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from connectors.base import Rejection
from connectors.chat.json_exports import ExportFileSource, Parsed
from connectors.json_records import (
    RecordError,
    array,
    identifier,
    json_type,
    mapping,
    nested,
    parse_time,
    short,
    stable_id,
    text,
)
from monitor.measure.events import Event, MessageEvent, MessageKind, Side, responder

MESSAGE_TYPES = {"chat.msg", "chat.file"}
VISITOR, AGENT, AUTOMATIC = "visitor", "agent", "automatic"
_SENDER_TYPES = {
    "visitor": VISITOR,
    "agent": AGENT,
    "trigger": AUTOMATIC,
    "system": AUTOMATIC,
    "bot": AUTOMATIC,
    "chatbot": AUTOMATIC,
    "answerbot": AUTOMATIC,
}


class ZendeskChatConnector(ExportFileSource):
    kind = "zendesk_chat"

    def records(self, value: Any, path: str) -> Iterator[tuple[str, Any]]:
        if isinstance(value, dict) and "stream" in value and "data" in value:  # an Airbyte record
            if value["stream"] == "chats":
                yield from self.records(value["data"], f"{path}.data")
        else:
            yield from super().records(value, path)

    def parse_record(self, value: Any, location: str) -> Parsed:
        try:
            chat = _Chat(value)
        except RecordError as exc:
            return [], [Rejection(location, str(exc))]
        if chat.type == "offline_msg":
            try:
                return [chat.offline_message()], []
            except RecordError as exc:
                return [], [Rejection(location, str(exc))]
        return chat.events(location)


class _Chat:
    """One chat object, checked at the top level; its history is read entry by entry."""

    def __init__(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise RecordError(f"expected a chat object, got {json_type(value)}")
        self.record = value
        self.id = identifier(value, "id", required=True) or ""
        self.type = text(value, "type") or ("chat" if "history" in value else None)
        if self.type not in ("chat", "offline_msg"):
            raise RecordError(
                f"unknown chat type {short(self.type)} (expected chat or offline_msg)"
            )
        visitor = mapping(value, "visitor")
        self.visitor_name = text(visitor, "name")
        email = text(visitor, "email")
        visitor_id = identifier(visitor, "id")
        # Offline messages and later chats meet in one conversation per visitor.
        key = email.strip().lower() if email and email.strip() else visitor_id
        self.visitor_conversation = f"visitor:{key}" if key else None
        self.customer = self.visitor_name or email or None
        self.agent_names = {n for n in array(value, "agent_names") if isinstance(n, str)}

    def offline_message(self) -> MessageEvent:
        return MessageEvent(
            external_id=self.id,
            # Without a visitor to recognise later, nothing can answer it but it is still counted.
            conversation=self.visitor_conversation or f"offline:{self.id}",
            at=parse_time(self.record.get("timestamp"), "timestamp"),
            side=Side.CUSTOMER,
            customer=self.customer,
        )

    def events(self, location: str) -> Parsed:
        events: list[Event] = []
        rejected: list[Rejection] = []
        seen: dict[str, int] = {}
        first_reply: MessageEvent | None = None
        try:
            history = array(self.record, "history")
        except RecordError as exc:
            return [], [Rejection(location, str(exc))]
        for index, entry in enumerate(history):
            try:
                event = self._entry(entry, seen)
            except RecordError as exc:
                rejected.append(Rejection(nested(location, f".history[{index}]"), str(exc)))
                continue
            events.append(event)
            human_reply = event.side is Side.AGENT and not (event.automatic or event.internal)
            if human_reply and event.kind is MessageKind.MESSAGE:
                if first_reply is None or event.at < first_reply.at:
                    first_reply = event
        if self.record.get("end_timestamp") not in (None, ""):
            try:
                end = parse_time(self.record["end_timestamp"], "end_timestamp")
            except RecordError as exc:
                rejected.append(Rejection(location, str(exc)))
            else:
                events.append(self._event(f"{self.id}:end", end, Side.CUSTOMER, ended=True))
        if first_reply is not None and self.visitor_conversation is not None:
            # The chat's first human reply is also a contact with the visitor: it answers their
            # offline messages left before it.
            contact = MessageEvent(
                external_id=f"{self.id}:contact",
                conversation=self.visitor_conversation,
                at=first_reply.at,
                side=Side.AGENT,
                agent=first_reply.agent,
                # What `report --items` says of it when there was no offline message to answer.
                left_out="the first reply of a chat, standing for a contact with the visitor",
            )
            events.append(contact)
        return events, rejected

    def _entry(self, entry: Any, seen: dict[str, int]) -> MessageEvent:
        if not isinstance(entry, dict):
            raise RecordError(f"expected a history entry object, got {json_type(entry)}")
        kind = text(entry, "type", required=True) or ""
        at = parse_time(entry.get("timestamp"), "timestamp")
        role = self._role(entry)
        nick = entry.get("nick") if isinstance(entry.get("nick"), str) else None
        msg_id = identifier(entry, "msg_id")
        external_id = (
            f"{self.id}:{msg_id}"
            if msg_id
            else stable_id(self.id, [at.isoformat(), kind, nick, entry.get("name")], seen)
        )
        if kind in MESSAGE_TYPES:
            if role is None:
                raise RecordError("cannot tell who wrote it (no nick, sender_type or known name)")
            side = Side.CUSTOMER if role == VISITOR else Side.AGENT
            return self._event(
                external_id,
                at,
                side,
                automatic=role == AUTOMATIC,
                agent=self._author(entry) if side is Side.AGENT else None,
                left_out=_who(entry) if role == AUTOMATIC else None,
            )
        if kind == "chat.memberleave" and role == VISITOR:
            return self._event(external_id, at, Side.CUSTOMER, ended=True)
        if not kind.startswith("chat."):
            raise RecordError(f"unknown history type {short(kind)}")
        # Joins, ratings, comments, rating requests, transfers: stored, never pairs.
        side = Side.CUSTOMER if role == VISITOR else Side.AGENT
        return self._event(external_id, at, side, automatic=True, left_out=f"type: {short(kind)}")

    @staticmethod
    def _author(entry: dict[str, Any]) -> str | None:
        """Who wrote an agent's entry: the name shown, and the nick (`agent:<id>`); read
        leniently (a name of another type is no name, not a bad entry)."""

        def string(key: str) -> str | None:
            value = entry.get(key)
            return value if isinstance(value, str) else None

        return responder(string("display_name") or string("name"), string("nick"))

    def _role(self, entry: dict[str, Any]) -> str | None:
        nick = text(entry, "nick")
        if nick:
            lowered = nick.lower()
            if lowered.startswith("visitor"):
                return VISITOR
            if lowered in ("agent:trigger", "agent:system") or not lowered.startswith("agent"):
                return AUTOMATIC
            return AGENT
        sender = text(entry, "sender_type")
        if sender and sender.lower() in _SENDER_TYPES:
            return _SENDER_TYPES[sender.lower()]
        # Names are the last resort, and a visitor chooses their own: a name that is both an
        # agent's and the visitor's tells nothing (a visitor calling themselves "Ann" from
        # support must not answer their own question).
        name = entry.get("name")
        if isinstance(name, str) and name:
            agent, visitor = name in self.agent_names, name == self.visitor_name
            if agent != visitor:
                return AGENT if agent else VISITOR
        return None

    def _event(
        self,
        external_id: str,
        at: datetime,
        side: Side,
        *,
        automatic: bool = False,
        ended: bool = False,
        agent: str | None = None,
        left_out: str | None = None,
    ) -> MessageEvent:
        return MessageEvent(
            external_id=external_id,
            conversation=self.id,
            at=at,
            side=side,
            kind=MessageKind.ENDED if ended else MessageKind.MESSAGE,
            automatic=automatic,
            customer=self.customer if side is Side.CUSTOMER and not ended else None,
            agent=agent,
            left_out=left_out,
        )


def _who(entry: dict[str, Any]) -> str:
    """What made a message automatic: its nick (`agent:trigger`) or sender type (`bot`)."""
    nick = entry.get("nick")
    if isinstance(nick, str) and nick:
        return f"nick: {short(nick)}"
    return f"sender_type: {short(entry.get('sender_type'))}"
