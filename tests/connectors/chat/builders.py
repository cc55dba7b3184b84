"""Hand-built chat exports for the tests, shaped like the real files (our own data, written
here; the real samples the shapes were checked against are not copied).

- `SlackExport`: a workspace export folder (users.json, channels.json, a folder per channel of
  day files), zipped on request, with messages written the way Slack writes them;
- `zendesk_chat`, `zendesk_entry`, `zendesk_offline`: Chat API v2 chat objects;
- `livechat_v2`, `livechat_v3`: LiveChat archive chats;
- `killed_after_each_batch`: what polls that each stop after their first batch store.
"""

from __future__ import annotations

import json
import zipfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.base import Connector
from monitor.measure.events import Event

DAY = datetime(2026, 11, 17, tzinfo=UTC)
TEAM = "T0SHOP01"


def at(hours: float, day: int = 0) -> datetime:
    """A time on 17 Nov 2026 (+ `day` days), `hours` after midnight UTC."""
    return DAY + timedelta(days=day, hours=hours)


def ts(moment: datetime, micro: int = 100) -> str:
    """Slack's message id: epoch seconds and microseconds, as a string."""
    return f"{int(moment.timestamp())}.{micro:06d}"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- Slack ------------------------------------------------------------------------------------


def slack_user(uid: str, name: str, **flags: Any) -> dict[str, Any]:
    email = flags.pop("email", None)
    profile: dict[str, Any] = {"real_name": name, "display_name": name.split()[0]}
    if email:
        profile["email"] = email
    return {
        "id": uid,
        "team_id": flags.pop("team_id", TEAM),
        "name": name.lower().replace(" ", "."),
        "deleted": False,
        "real_name": name,
        "tz": "Europe/London",
        "is_admin": False,
        "is_bot": False,
        "is_restricted": False,
        "is_ultra_restricted": False,
        "is_app_user": False,
        "profile": profile,
        **flags,
    }


USERS = [
    slack_user("U01SAM", "Sam Porter", email="sam@shop.example"),
    slack_user("U02LENA", "Lena Kowalski", email="lena@shop.example"),
    slack_user("U09DANA", "Dana Whitfield", team_id="T0ACME99", is_stranger=True),
    slack_user("U08GUEST", "Gus Guest", is_restricted=True),
    slack_user("U07BOT", "Helpbot", is_bot=True),
]
CHANNELS = [
    {
        "id": "C0SUPPORT",
        "name": "support",
        "created": 1763000000,
        "is_archived": False,
        "is_general": False,
        "members": ["U01SAM", "U02LENA"],
        "topic": {"value": ""},
        "purpose": {"value": "customer questions"},
    },
    {
        "id": "C0RANDOM",
        "name": "random",
        "created": 1763000000,
        "is_archived": False,
        "is_general": True,
        "members": ["U01SAM"],
        "topic": {"value": ""},
        "purpose": {"value": ""},
    },
]


def message(
    user: str | None,
    moment: datetime,
    *,
    thread: datetime | None = None,
    micro: int = 100,
    **extra: Any,
) -> dict[str, Any]:
    """A message as a day file holds it; `thread` is the thread parent's time (its ts)."""
    record: dict[str, Any] = {"type": "message", "text": "(text)", "ts": ts(moment, micro)}
    if user is not None:
        record["user"] = user
        record["team"] = TEAM
        record["user_team"] = TEAM
    if thread is not None:
        record["thread_ts"] = ts(thread)
        record["parent_user_id"] = "U09DANA"
    record.update(extra)
    return record


class SlackExport:
    """A Slack export folder being written: `add()` messages, then `write()` it."""

    def __init__(
        self,
        folder: Path,
        users: list[dict[str, Any]] | None = None,
        channels: list[dict[str, Any]] | None = None,
    ) -> None:
        self.folder = folder
        self.users = USERS if users is None else users
        self.channels = CHANNELS if channels is None else channels
        self.days: dict[tuple[str, str], list[Any]] = defaultdict(list)

    def add(self, channel: str, *messages: dict[str, Any], day: str | None = None) -> SlackExport:
        for record in messages:
            when = day or datetime.fromtimestamp(float(record["ts"]), UTC).strftime("%Y-%m-%d")
            self.days[(channel, when)].append(record)
        return self

    def write(self, *, indent: int = 4) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, value in (("users.json", self.users), ("channels.json", self.channels)):
            (self.folder / name).write_text(json.dumps(value, indent=indent))
        for name in ("integration_logs.json", "dms.json", "groups.json", "mpims.json"):
            (self.folder / name).write_text("[]")
        for (channel, day), records in self.days.items():
            (self.folder / channel).mkdir(exist_ok=True)
            # Slack escapes slashes; the reader must not care.
            body = json.dumps(records, indent=indent).replace("/", "\\/")
            (self.folder / channel / f"{day}.json").write_text(body)
        return self.folder

    def zip(self, path: Path, *, prefix: str = "") -> Path:
        """The written folder as a zip (members under `prefix`, e.g. `shop/`)."""
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(self.folder.rglob("*")):
                if file.is_file():
                    archive.write(file, prefix + file.relative_to(self.folder).as_posix())
        return path


# --- Zendesk Chat -----------------------------------------------------------------------------


def zendesk_entry(kind: str, moment: datetime, who: str, **extra: Any) -> dict[str, Any]:
    """A history entry; `who` is `visitor`, `trigger`, `system` or an agent id."""
    nick = {
        "visitor": "visitor:8-6Fz2hKMbQqA1",
        "trigger": "agent:trigger",
        "system": "agent:system",
    }.get(who, f"agent:{who}")
    name = {"visitor": "Dana Whitfield", "trigger": "Customer Service"}.get(who, "Sam Porter")
    entry: dict[str, Any] = {
        "department_id": None,
        "department_name": None,
        "name": name,
        "nick": nick,
        "channel": "#8-6Fz2hKMbQqA1",
        "type": kind,
        "timestamp": iso(moment),
    }
    if kind in ("chat.msg", "chat.file"):
        entry["msg"] = "(text)"
        entry["options"] = ""
    entry.update(extra)
    return entry


def zendesk_chat(
    chat_id: str,
    history: list[dict[str, Any]],
    *,
    email: str = "dana@acme.example",
    ended: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    start = min((e["timestamp"] for e in history), default=iso(DAY))
    chat: dict[str, Any] = {
        "id": chat_id,
        "type": "chat",
        "timestamp": start,
        "update_timestamp": iso(ended) if ended else start,
        "visitor": {
            "id": "8.6Fz2hKMbQqA1",
            "name": "Dana Whitfield",
            "email": email,
            "phone": "",
            "notes": "",
        },
        "agent_ids": ["360786799676"],
        "agent_names": ["Sam Porter"],
        "department_id": None,
        "department_name": None,
        "missed": False,
        "triggered": True,
        "unread": False,
        "tags": [],
        "session": {
            "browser": "Firefox",
            "city": "Leeds",
            "country_code": "GB",
            "start_date": start,
            "end_date": iso(ended) if ended else start,
        },
        "history": history,
    }
    if ended is not None:
        chat["end_timestamp"] = iso(ended)
    chat.update(extra)
    return chat


def zendesk_offline(chat_id: str, moment: datetime, email: str, name: str) -> dict[str, Any]:
    return {
        "id": chat_id,
        "type": "offline_msg",
        "timestamp": iso(moment),
        "update_timestamp": iso(moment),
        "message": "(text)",
        "unread": True,
        "deleted": False,
        "tags": [],
        "webpath": [],
        "department_id": None,
        "department_name": None,
        "zendesk_ticket_id": None,
        "visitor": {"id": "3.99120", "name": name, "email": email, "phone": "", "notes": ""},
        "session": {"browser": "Safari", "start_date": iso(moment), "end_date": iso(moment)},
    }


# --- LiveChat ---------------------------------------------------------------------------------


def livechat_v2_event(
    moment: datetime, user_type: str, kind: str = "message", **extra: Any
) -> dict[str, Any]:
    names = {"agent": "Sam Porter", "visitor": "Mary Brown", "supervisor": "Jane Lead"}
    event: dict[str, Any] = {
        "author_name": names.get(user_type, ""),
        "text": "(text)",
        "date": moment.strftime("%a, %m/%d/%y %I:%M:%S %p").lower(),
        "timestamp": int(moment.timestamp()),
        "user_type": user_type,
        "type": kind,
    }
    if user_type in ("agent", "supervisor"):
        event["agent_id"] = "sam@shop.example" if user_type == "agent" else "jane@shop.example"
    event.update(extra)
    return event


def livechat_v2(
    chat_id: str, events: list[dict[str, Any]], *, ended: datetime | None, **extra: Any
) -> dict[str, Any]:
    started = min((e["timestamp"] for e in events), default=int(DAY.timestamp()))
    chat: dict[str, Any] = {
        "type": "chat",
        "id": chat_id,
        "visitor": {
            "id": "S1763370000.49b89407",
            "name": "Mary Brown",
            "city": "Leeds",
            "country": "United Kingdom",
            "timezone": "Europe/London",
        },
        "agents": [{"display_name": "Sam Porter", "email": "sam@shop.example"}],
        "rate": "not_rated",
        "group": [0],
        "timezone": "Europe/London",
        "started_timestamp": started,
        "messages": [e for e in events if e.get("type") == "message"],
        "events": events,
        "tags": [],
    }
    if ended is not None:
        chat["ended_timestamp"] = int(ended.timestamp())
        chat["duration"] = int(ended.timestamp()) - started
    chat.update(extra)
    return chat


V3_USERS = [
    {
        "id": "b7eff798-f8df-4364-8059-649c35c9ed0c",
        "type": "customer",
        "name": "Mary Brown",
        "email": "mary@example.net",
        "present": False,
    },
    {
        "id": "sam@shop.example",
        "type": "agent",
        "name": "Sam Porter",
        "email": "sam@shop.example",
        "present": False,
    },
    {"id": "f1a0c0de-bot", "type": "bot", "name": "ChatBot", "present": False},
]
CUSTOMER_ID = "b7eff798-f8df-4364-8059-649c35c9ed0c"


def v3_event(
    event_id: str, moment: datetime, author: str | None, kind: str = "message", **extra: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": event_id,
        "created_at": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "visibility": "all",
        "type": kind,
    }
    if author is not None:
        event["author_id"] = author
    if kind == "message":
        event["text"] = "(text)"
    event.update(extra)
    return event


def livechat_v3(chat_id: str, threads: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": chat_id,
        "users": V3_USERS,
        "properties": {},
        "access": {"group_ids": [0]},
        "threads": threads,
        "is_followed": False,
    }


def v3_thread(
    thread_id: str, events: list[dict[str, Any]], *, active: bool = False
) -> dict[str, Any]:
    created = min((e["created_at"] for e in events), default=iso(DAY))
    return {
        "id": thread_id,
        "created_at": created,
        "active": active,
        "user_ids": [u["id"] for u in V3_USERS],
        "events": events,
        "properties": {},
        "access": {"group_ids": [0]},
    }


# --- interrupted polls ------------------------------------------------------------------------


def killed_after_each_batch(connector: Connector, now: datetime, limit: int = 50) -> list[Event]:
    """The events of polls that are each killed right after their first batch is committed,
    every one resuming from the cursor the previous one stored, until a poll brings nothing."""
    collected: list[Event] = []
    cursor = None
    for _ in range(limit):
        fetched = connector.fetch(cursor, now)
        batch = next(fetched, None)
        if batch is None:
            return collected
        fetched.close()  # type: ignore[attr-defined]  # killed right after the first commit
        collected.extend(batch.events)
        stored = json.loads(json.dumps(batch.cursor))  # as the store keeps it
        if stored == cursor:
            return collected
        cursor = stored
    raise AssertionError(f"polls still bring batches after {limit}")
