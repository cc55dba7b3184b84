"""The `livechat` connector: LiveChat archives, REST API v2 and Agent Chat API v3.

Reads archive responses as JSON documents (`{"chats": [...]}`, an array of chats, one chat, or
`{"chat": {...}}`) or JSONL with one chat a line. Each chat says which version it is:

- **v2** (`messages[]` / `events[]` with `user_type`): one chat is one conversation. `events`
  is used when present (it holds the messages too), else `messages`. `user_type` `visitor` is
  the customer, `agent` us, `supervisor` a whisper to the agent (internal: never an inquiry).
  Event `type` `message`, `attachment`, `file` or `rich_message` is a message; `event` (system
  lines such as "closed the chat") is automatic. Times are the epoch `timestamp`; without one
  the `date` string (`Wed, 01/23/13 11:40:53 am`) is read in the chat's `timezone`. The chat ended
  at `ended_timestamp`.
- **v3** (`threads[]` or `thread` with `events[]` and `author_id`): each thread is one
  conversation (a chat's threads are separate visits). Authors are resolved through the chat's
  `users[]` (`customer`, `agent`, `bot`), else the top-level `agents` addresses; an author found
  in neither is rejected. `system_message`, `filled_form` and `custom` events are automatic;
  `visibility: agents` (a note or whisper) is internal; a thread that is no longer `active` ended
  at its last event.

In both, greetings are automatic: a message flagged `welcome_message`, and any agent message
before the visitor's first one (LiveChat sends greetings and invitations on an agent's behalf).
Message text is never read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.base import ConnectorContext, Rejection
from connectors.chat.json_exports import ExportFileSettings, ExportFileSource, Parsed
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
from monitor.config import SourceSettings, TimezoneName
from monitor.measure.events import Event, MessageEvent, MessageKind, Side, responder

V2_MESSAGES = {"message", "attachment", "file", "rich_message"}
V2_AUTOMATIC = {"event", "system"}
V3_MESSAGES = {"message", "file", "rich_message"}
V3_AUTOMATIC = {"system_message", "filled_form", "custom"}
V2_DATE = "%a, %m/%d/%y %I:%M:%S %p"  # "Wed, 01/23/13 11:40:53 am" (strptime ignores case)
CUSTOMER, AGENT, INTERNAL, AUTOMATIC = "customer", "agent", "internal", "automatic"
V2_ROLES = {"visitor": CUSTOMER, "agent": AGENT, "supervisor": INTERNAL}  # by user_type
V3_ROLES = {"customer": CUSTOMER, "agent": AGENT, "bot": AUTOMATIC}  # by users[].type


class LiveChatSettings(ExportFileSettings):
    # Zone of v2 `date` strings of chats without a `timezone` (default: the config's timezone).
    timezone: TimezoneName | None = None


@dataclass
class _Item:
    """One message or event, before greetings are known."""

    external_id: str
    at: datetime
    role: str
    ended: bool = False
    greeting: bool = False
    agent: str | None = None  # who wrote an agent's message (a name, an id or address)
    left_out: str | None = None  # why an automatic or internal one never pairs


class LiveChatConnector(ExportFileSource):
    kind = "livechat"
    settings = LiveChatSettings

    def __init__(self, source: SourceSettings, context: ConnectorContext, **options: int) -> None:
        super().__init__(source, context, **options)
        assert isinstance(source, LiveChatSettings), type(source)
        self.zone = ZoneInfo(source.timezone) if source.timezone else context.timezone

    def records(self, value: Any, path: str) -> Iterator[tuple[str, Any]]:
        if isinstance(value, dict) and "chats" not in value and isinstance(value.get("chat"), dict):
            yield f"{path}.chat", value["chat"]  # `{"chat": {...}}` (get chat)
        else:
            yield from super().records(value, path)

    def parse_record(self, value: Any, location: str) -> Parsed:
        if not isinstance(value, dict):
            return [], [Rejection(location, f"expected a chat object, got {json_type(value)}")]
        try:
            chat_id = identifier(value, "id", required=True) or ""
            if "threads" in value or "thread" in value:
                return self._v3(chat_id, value, location)
            if "events" in value or "messages" in value:
                return self._v2(chat_id, value, location)
        except RecordError as exc:
            return [], [Rejection(location, str(exc))]
        return [], [Rejection(location, "neither threads (v3) nor messages or events (v2)")]

    # --- v2 ---

    def _v2(self, chat_id: str, chat: dict[str, Any], location: str) -> Parsed:
        zone = self.zone
        if isinstance(chat.get("timezone"), str):
            try:
                zone = ZoneInfo(chat["timezone"])
            except (ZoneInfoNotFoundError, ValueError):
                pass  # an unknown zone name: the configured zone is the best guess
        key = "events" if "events" in chat else "messages"
        items: list[_Item] = []
        rejected: list[Rejection] = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(array(chat, key)):
            try:
                items.append(self._v2_item(chat_id, entry, zone, seen))
            except RecordError as exc:
                rejected.append(Rejection(nested(location, f".{key}[{index}]"), str(exc)))
        try:
            ended = _v2_time(chat, "ended_timestamp", "ended", zone, required=False)
        except RecordError as exc:
            rejected.append(Rejection(location, str(exc)))
            ended = None
        if ended is not None:
            items.append(_Item(f"{chat_id}:end", ended, CUSTOMER, ended=True))
        visitor = mapping(chat, "visitor")
        customer = text(visitor, "name") or text(visitor, "email")
        return _events(chat_id, items, customer), rejected

    def _v2_item(self, chat_id: str, entry: Any, zone: ZoneInfo, seen: dict[str, int]) -> _Item:
        if not isinstance(entry, dict):
            raise RecordError(f"expected an object, got {json_type(entry)}")
        at = _v2_time(entry, "timestamp", "date", zone, required=True)
        assert at is not None
        kind = text(entry, "type") or "message"
        user_type = text(entry, "user_type")
        parts = [at.isoformat(), kind, user_type, entry.get("agent_id"), entry.get("author_name")]
        external_id = stable_id(chat_id, parts, seen)
        if kind in V2_AUTOMATIC:
            return _Item(external_id, at, AUTOMATIC, left_out=f"type: {kind}")
        if kind not in V2_MESSAGES:
            raise RecordError(f"unknown event type {short(kind)}")
        if user_type not in V2_ROLES:
            raise RecordError(
                f"unknown user_type {short(user_type)} (expected agent, supervisor or visitor)"
            )
        role = V2_ROLES[user_type]
        agent = None
        if role != CUSTOMER:
            agent = responder(_string(entry, "author_name"), _string(entry, "agent_id"))
        left_out = "user_type: supervisor (a whisper)" if role == INTERNAL else None
        return _Item(external_id, at, role, agent=agent, left_out=left_out)

    # --- v3 ---

    def _v3(self, chat_id: str, chat: dict[str, Any], location: str) -> Parsed:
        users: dict[str, tuple[str, str | None]] = {}
        for user in array(chat, "users"):
            if isinstance(user, dict) and isinstance(user.get("id"), str):
                name = user.get("name") or user.get("email")
                users[user["id"]] = (str(user.get("type")), name if isinstance(name, str) else None)
        customers = [name for kind, name in users.values() if kind == "customer" and name]
        customer = customers[0] if customers else None
        if "threads" in chat:
            threads = [(f".threads[{i}]", t) for i, t in enumerate(array(chat, "threads"))]
        else:
            threads = [(".thread", chat["thread"])]
        events: list[Event] = []
        rejected: list[Rejection] = []
        for path, thread in threads:
            where = nested(location, path)
            if not isinstance(thread, dict):
                rejected.append(
                    Rejection(where, f"expected a thread object, got {json_type(thread)}")
                )
                continue
            try:
                found, bad = self._thread(chat_id, thread, users, customer, where)
            except RecordError as exc:
                rejected.append(Rejection(where, str(exc)))
                continue
            events.extend(found)
            rejected.extend(bad)
        return events, rejected

    def _thread(
        self,
        chat_id: str,
        thread: dict[str, Any],
        users: dict[str, tuple[str, str | None]],
        customer: str | None,
        where: str,
    ) -> Parsed:
        conversation = f"{chat_id}/{identifier(thread, 'id', required=True)}"
        items: list[_Item] = []
        rejected: list[Rejection] = []
        seen: dict[str, int] = {}
        for index, event in enumerate(array(thread, "events")):
            try:
                items.append(self._v3_item(conversation, event, users, seen))
            except RecordError as exc:
                rejected.append(Rejection(nested(where, f".events[{index}]"), str(exc)))
        if thread.get("active") is False and items:
            last = max(item.at for item in items)
            items.append(_Item(f"{conversation}:end", last, CUSTOMER, ended=True))
        return _events(conversation, items, customer), rejected

    def _v3_item(
        self,
        conversation: str,
        event: Any,
        users: dict[str, tuple[str, str | None]],
        seen: dict[str, int],
    ) -> _Item:
        if not isinstance(event, dict):
            raise RecordError(f"expected an event object, got {json_type(event)}")
        at = parse_time(event.get("created_at"), "created_at")
        kind = text(event, "type", required=True)
        author = text(event, "author_id")
        event_id = identifier(event, "id")
        external_id = (
            f"{conversation}/{event_id}"
            if event_id
            else stable_id(conversation, [at.isoformat(), kind, author], seen)
        )
        if kind in V3_AUTOMATIC:
            return _Item(external_id, at, AUTOMATIC, left_out=f"type: {kind}")
        if kind not in V3_MESSAGES:
            raise RecordError(f"unknown event type {short(kind)}")
        if not author:
            raise RecordError("missing author_id")
        user_type = users[author][0] if author in users else None
        if user_type is None and self.context.is_agent_address(author):
            user_type = "agent"  # LiveChat agents' ids are their e-mail addresses
        if user_type not in V3_ROLES:
            raise RecordError("author_id is not among the chat's users")
        role = V3_ROLES[user_type]
        left_out = f"author type: {user_type}" if role == AUTOMATIC else None
        if role == AGENT and event.get("visibility") == "agents":
            role = INTERNAL  # a note or whisper the customer never sees
            left_out = "visibility: agents (a note)"
        lc2 = mapping(mapping(event, "properties"), "lc2")
        name = users[author][1] if author in users else None
        return _Item(
            external_id,
            at,
            role,
            greeting=lc2.get("welcome_message") is True,
            agent=responder(name, author) if role != CUSTOMER else None,
            left_out=left_out,
        )


def _v2_time(
    record: dict[str, Any], epoch_key: str, date_key: str, zone: ZoneInfo, *, required: bool
) -> datetime | None:
    """The epoch field when present (it is exact); else the local date string in `zone`."""
    if record.get(epoch_key) not in (None, ""):
        return parse_time(record[epoch_key], epoch_key)
    date = text(record, date_key)
    if not date:
        if required:
            raise RecordError(f"missing {epoch_key} and {date_key}")
        return None
    try:
        local = datetime.strptime(date.strip(), V2_DATE)  # noqa: DTZ007 (zone added below)
    except ValueError:
        example = "'Wed, 01/23/13 11:40:53 am'"
        raise RecordError(f"{date_key} is not a LiveChat date such as {example}") from None
    try:
        return local.replace(tzinfo=zone).astimezone(UTC)
    except OverflowError:
        raise RecordError(f"{date_key} is out of range") from None


def _events(conversation: str, items: list[_Item], customer: str | None) -> list[Event]:
    """Items as events; agent messages before the visitor's first message are greetings."""
    ordered = sorted(items, key=lambda item: item.at)  # stable: the export's order on ties
    visitor_spoke = False
    events: list[Event] = []
    for item in ordered:
        if item.role == CUSTOMER and not item.ended:
            visitor_spoke = True
        greeting = item.role == AGENT and (item.greeting or not visitor_spoke)
        left_out = item.left_out
        if greeting:
            left_out = "welcome_message" if item.greeting else "a greeting before the visitor spoke"
        events.append(
            MessageEvent(
                external_id=item.external_id,
                conversation=conversation,
                at=item.at,
                side=Side.CUSTOMER if item.role == CUSTOMER else Side.AGENT,
                kind=MessageKind.ENDED if item.ended else MessageKind.MESSAGE,
                automatic=item.role == AUTOMATIC or greeting,
                internal=item.role == INTERNAL,
                customer=customer if item.role == CUSTOMER and not item.ended else None,
                agent=item.agent,
                left_out=left_out,
            )
        )
    return events


def _string(record: dict[str, Any], key: str) -> str | None:
    """A string field, or None (an author read leniently: another type is no name)."""
    value = record.get(key)
    return value if isinstance(value, str) else None
