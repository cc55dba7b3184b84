"""The `slack_export` connector: a Slack workspace export, zipped or unpacked.

An export holds `users.json`, `channels.json` (and `groups.json` for private channels) and one
folder per channel, named by the channel's name, with one JSON array of messages per day
(`support/2026-11-20.json`). Only the configured channels are read.

- **Conversations**: a thread (`thread_ts`) is one conversation; a top-level message without
  replies is a conversation of its own. Replies may be in later day files; conversations are
  keyed `<channel id>:<thread_ts>`, so that does not matter. A reply whose `ts` is earlier than
  its thread's (seen in importer fixtures) is taken at the thread's time.
- **Ids**: a message is `<channel id>:<ts>` (`ts` is the string `"1516454398.000069"`, unique per
  channel; read as text, never as a float). A message read again in a later export is the same
  row, so a re-export adds only what is new.
- **Who is who**: with `agent_users` (Slack user ids or e-mail addresses from users.json),
  exactly those users, and users whose e-mail matches the top-level `agents` addresses or
  domains, are agents; everyone else is a customer. Without it, workspace members are agents
  and outsiders customers: a user is a customer when users.json marks them `is_stranger`
  (Slack Connect), `is_restricted` or `is_ultra_restricted` (guests), or gives them a `team_id`
  other than the workspace's (`team:`, by default the most common `team_id` among users.json's
  humans); a user missing from users.json is a customer unless their message's `user_team` is
  the workspace's.
- **Automatic**: bot messages (`bot_message`, a `bot_id`, a users.json bot, Slackbot), joins,
  leaves, topic/purpose/name changes, pins, reminders, huddles, deleted-message tombstones and
  the other system subtypes. Edits never count as replies: an edited message keeps its own `ts`,
  and `message_changed` / `message_deleted` / `message_replied` records are not messages.
  A subtype not listed here is rejected as unknown (and named in the reason).

Slack has no "chat ended": a Slack inquiry is answered or open, never missed.

The cursor is the snapshot cursor of `connectors.json_exports`: the content fingerprints of the
day files already read. New day files, and day files that changed (a re-export with more
messages, edits, reactions), are read; the rest is skipped without being parsed.
"""

from __future__ import annotations

import glob
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field

from connectors.base import Batch, Connector, ConnectorContext, ConnectorError, Cursor, Rejection
from connectors.json_exports import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    DEFAULT_MAX_RECORDS,
    Parsed,
    RecordError,
    Snapshots,
    Unit,
    fingerprint,
    json_type,
    load_json,
    read_error,
    read_units,
    short,
    text,
)
from monitor.config import SourceSettings
from monitor.events import Channel, MessageEvent, Side

CURSOR_VERSION = 1
HUMAN_SUBTYPES: frozenset[str | None] = frozenset(
    [
        None,
        *"file_share thread_broadcast me_message file_comment file_mention reply_broadcast".split(),
    ]
)
AUTOMATIC_SUBTYPES = frozenset(
    """
    bot_message bot_add bot_remove bot_enable bot_disable slackbot_response
    channel_join channel_leave channel_topic channel_purpose channel_name channel_archive
    channel_unarchive channel_convert_to_private channel_convert_to_public
    channel_posting_permissions channel_canvas_updated tabbed_canvas_updated
    group_join group_leave group_topic group_purpose group_name group_archive group_unarchive
    app_conversation_join app_conversation_leave pinned_item unpinned_item
    reminder_add reminder_delete sh_room_created sh_room_shared huddle_thread
    assistant_app_thread joiner_notification joiner_notification_for_inviter tombstone
    ekm_access_denied emoji_changed share_shortcut file_created file_changed file_deleted
    file_shared file_unshared file_public
    """.split()
)
# Records of changes to other messages: not messages themselves.
IGNORED_SUBTYPES = {"message_changed", "message_deleted", "message_replied"}
SLACKBOT = "USLACKBOT"
_TS = re.compile(r"^(\d{1,12})(?:\.(\d{1,6}))?$")
_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.json$")
_GLOB_CHARS = frozenset("*?[")
AGENT, CUSTOMER, BOT = "agent", "customer", "bot"


class SlackExportSettings(SourceSettings):
    # A zip, an unpacked folder, or a glob of several (`exports/slack-*.zip`); relative to the
    # config file's folder.
    path: str
    # Channels to measure, by name (`support`, `#support`) or id (`C0123ABCD`).
    channels: list[str] = Field(min_length=1)
    # Agents by Slack user id or e-mail address; empty: workspace members are agents.
    agent_users: list[str] = []
    # The workspace's team id for the members rule; default: the most common in users.json.
    team: str | None = None


class _Export:
    """One export, zipped or unpacked: its files by path relative to the export's root."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.members: dict[str, zipfile.ZipInfo] = {}
        if path.is_dir():
            self.root = _folder_root(path)
            self.label = f"{path.name}/"
        else:
            try:
                self.zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise ConnectorError(f"{path}: not a zip file or folder", permanent=True) from None
            names = [i for i in self.zip.infolist() if not i.is_dir()]
            prefix = _zip_prefix([i.filename for i in names])
            self.members = {
                i.filename[len(prefix) :]: i for i in names if i.filename.startswith(prefix)
            }
            self.root = path
            self.label = f"{path.name}:"

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()

    def exists(self, name: str) -> bool:
        return name in self.members if self.zip else (self.root / name).is_file()

    def size(self, name: str) -> int:
        return self.members[name].file_size if self.zip else (self.root / name).stat().st_size

    def read(self, name: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(self.members[name])
        return (self.root / name).read_bytes()

    def fingerprint(self, name: str) -> str:
        if self.zip is not None:
            info = self.members[name]  # stored in the zip: nothing to decompress
            return f"{info.file_size}:{info.CRC:08x}"
        return fingerprint(self.read(name))

    def day_files(self, folder: str) -> list[str]:
        if not folder or folder.startswith(".") or "/" in folder or "\\" in folder:
            return []  # a channel name from the export's data never leads out of the export
        if self.zip is not None:
            names = [n for n in self.members if n.startswith(f"{folder}/")]
            found = [n for n in names if _DAY_FILE.match(n[len(folder) + 1 :])]
        else:
            directory = self.root / folder
            found = (
                [f"{folder}/{p.name}" for p in directory.iterdir() if _DAY_FILE.match(p.name)]
                if directory.is_dir()
                else []
            )
        return sorted(found)


def _folder_root(path: Path) -> Path:
    """The folder holding users.json: the given one, or its only subfolder (a zip unpacked
    into a folder of its own name)."""
    if (path / "users.json").is_file() or (path / "channels.json").is_file():
        return path
    inner = [p for p in path.iterdir() if p.is_dir() and (p / "users.json").is_file()]
    return inner[0] if len(inner) == 1 else path


def _zip_prefix(names: list[str]) -> str:
    candidates = [n for n in names if n.rsplit("/", 1)[-1] in ("users.json", "channels.json")]
    if not candidates:
        return ""
    shallowest = min(candidates, key=lambda n: (n.count("/"), n))
    return shallowest.rpartition("/")[0] + "/" if "/" in shallowest else ""


@dataclass
class _Workspace:
    """Users and channels merged from every export read (later exports win)."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)  # name and id (lowercased) -> id
    names: dict[str, str] = field(default_factory=dict)  # id -> name
    users_read: bool = False
    units: list[Unit] = field(default_factory=list)  # users/channels files: report bad records once


class _People:
    """Who is an agent, a customer or a bot (the rules in the module docstring)."""

    def __init__(self, settings: SlackExportSettings, context: ConnectorContext, ws: _Workspace):
        self.users = ws.users
        self.context = context
        listed = {a.strip() for a in settings.agent_users if a.strip()}
        self.listed: set[str] | None = None
        if listed:
            emails = {a.lower() for a in listed if "@" in a}
            self.listed = {a.upper() for a in listed if "@" not in a}
            for uid, user in self.users.items():
                email = _string(user, "profile", "email").lower()
                if email and (email in emails or context.is_agent_address(email)):
                    self.listed.add(uid)
        teams = Counter(
            user.get("team_id")
            for user in self.users.values()
            if isinstance(user.get("team_id"), str)
            and not (user.get("is_stranger") or user.get("is_bot") or user.get("deleted"))
        )
        self.team = settings.team or (teams.most_common(1)[0][0] if teams else None)

    def is_bot(self, uid: str | None) -> bool:
        return uid == SLACKBOT or (uid in self.users and self.users[uid].get("is_bot") is True)

    def role(self, uid: str, message: dict[str, Any]) -> str:
        if self.is_bot(uid):
            return BOT
        if self.listed is not None:
            return AGENT if uid.upper() in self.listed else CUSTOMER
        user = self.users.get(uid)
        if user is None:
            team = message.get("user_team") or message.get("team")
            return AGENT if self.team and team == self.team else CUSTOMER
        guest = any(
            user.get(k) is True for k in ("is_stranger", "is_restricted", "is_ultra_restricted")
        )
        other_team = (
            self.team and isinstance(user.get("team_id"), str) and user["team_id"] != self.team
        )
        return CUSTOMER if guest or other_team else AGENT

    def agents(self) -> int:
        return sum(1 for uid in self.users if self.role(uid, {}) == AGENT)

    def name(self, uid: str, message: dict[str, Any]) -> str:
        user = self.users.get(uid) or {}
        return (
            _string(user, "real_name")
            or _string(user, "profile", "real_name")
            or _string(user, "name")
            or _string(message, "user_profile", "real_name")
            or uid
        )


def _string(record: dict[str, Any], *keys: str) -> str:
    """A nested string field, stripped; "" when absent or of another type (users.json and
    profiles are read leniently: a bad one there must not cost the messages)."""
    value: Any = record
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value.strip() if isinstance(value, str) else ""


class SlackExportConnector(Connector):
    kind = "slack_export"
    channel = Channel.CHAT
    settings = SlackExportSettings
    imports_files = True

    def __init__(
        self,
        source: SourceSettings,
        context: ConnectorContext,
        *,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    ) -> None:
        super().__init__(source, context)
        assert isinstance(source, SlackExportSettings), type(source)
        self.options = source
        self.path = context.path(source.path)
        self.max_records = max_records
        self.max_document_bytes = max_document_bytes

    def matching_exports(self) -> list[Path]:
        """The zips and folders the configured path matches now, oldest first."""
        if not _GLOB_CHARS & set(str(self.path)):
            found = [self.path] if self.path.exists() else []
        else:
            found = [Path(p) for p in glob.glob(str(self.path), recursive=True)]
        found = [p for p in found if p.is_dir() or p.is_file()]
        return sorted(found, key=lambda p: (p.stat().st_mtime_ns, str(p)))

    def check(self) -> str:
        exports = self._open(self.matching_exports(), permanent=True)
        try:
            workspace = self._workspace(exports)
            channels = self._channels(exports, workspace)
            days = sum(len(e.day_files(folder)) for e in exports for _, folder in channels[e.path])
            agents = _People(self.options, self.context, workspace).agents()
        except OSError as exc:
            raise ConnectorError(str(read_error(exc, self.path)), permanent=True) from None
        finally:
            for export in exports:
                export.close()
        count = len(self.options.channels)
        return (
            f"{len(exports)} export{'s' * (len(exports) != 1)}, {count} channel"
            f"{'s' * (count != 1)}, {days} day files, {agents} agent{'s' * (agents != 1)}"
        )

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        try:
            if cursor is not None and cursor.get("v") != CURSOR_VERSION:
                raise ValueError("not a version 1 Slack export cursor")
            previous = Snapshots.load((cursor or {}).get("snapshots"))
        except ValueError as exc:
            raise ConnectorError(f"stored cursor is unusable: {exc}", permanent=True) from None
        exports = self._open(self.matching_exports(), permanent=False)
        yield from self._read(exports, previous, cursor)

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        for path in paths:
            if not path.exists():
                raise ConnectorError(f"{path}: no such file or folder", permanent=True)
        yield from (
            Batch(b.events, {}, b.rejected) for b in self._read(self._open(paths), Snapshots())
        )

    def _open(self, paths: list[Path], *, permanent: bool = True) -> list[_Export]:
        if not paths:
            raise ConnectorError(f"no Slack export matches {self.path}", permanent=permanent)
        exports = []
        try:
            for path in paths:
                exports.append(_Export(path))
        except OSError as exc:
            for export in exports:
                export.close()
            raise read_error(exc, path) from None
        return exports

    def _read(
        self, exports: list[_Export], previous: Snapshots, stored: Cursor | None = None
    ) -> Iterator[Batch]:
        try:
            workspace = self._workspace(exports)
            people = _People(self.options, self.context, workspace)
            channels = self._channels(exports, workspace)
            units = list(workspace.units)
            for export in exports:
                for channel_id, folder in channels[export.path]:
                    for name in export.day_files(folder):
                        units.append(self._unit(export, name, channel_id, people))
            yield from read_units(
                units,
                previous,
                lambda state: {"v": CURSOR_VERSION, "snapshots": state.dump()},
                max_records=self.max_records,
                stored=stored,
            )
        except OSError as exc:
            raise read_error(exc, self.path) from None
        finally:
            for export in exports:
                export.close()

    def _workspace(self, exports: list[_Export]) -> _Workspace:
        workspace = _Workspace()
        for export in exports:
            for name in ("users.json", "channels.json", "groups.json"):
                if export.exists(name):
                    self._meta(export, name, workspace)
        if not workspace.users_read:
            where = ", ".join(str(e.path) for e in exports)
            raise ConnectorError(
                f"no readable users.json in {where}: cannot tell agents from customers",
                permanent=True,
            )
        return workspace

    def _meta(self, export: _Export, name: str, workspace: _Workspace) -> None:
        """Read users.json / channels.json / groups.json into `workspace`; their bad records
        become a unit of rejections, reported once per content like a day file's."""
        location = f"{export.label}{name}"
        rejected: list[Rejection] = []
        data = export.read(name)
        try:
            records = load_json(data)
            if not isinstance(records, list):
                raise RecordError(f"expected a JSON array, got {json_type(records)}")
        except RecordError as exc:
            records = []
            rejected.append(Rejection(location, str(exc)))
        else:
            workspace.users_read |= name == "users.json"
        for index, record in enumerate(records):
            if not (isinstance(record, dict) and isinstance(record.get("id"), str)):
                rejected.append(
                    Rejection(f"{location} .[{index}]", "expected an object with an id")
                )
            elif name == "users.json":
                workspace.users[record["id"]] = record
            else:
                workspace.names[record["id"]] = str(record.get("name") or record["id"])
                workspace.channels[record["id"].lower()] = record["id"]
                if isinstance(record.get("name"), str):
                    workspace.channels[record["name"].lower()] = record["id"]

        def parse(_: bytes) -> Iterator[Parsed]:
            yield [], rejected

        workspace.units.append(Unit(f"{name}:{fingerprint(data)}", bytes, parse))

    def _channels(
        self, exports: list[_Export], workspace: _Workspace
    ) -> dict[Path, list[tuple[str, str]]]:
        """Per export, the configured channels' (id, folder) that it holds."""
        found: dict[Path, list[tuple[str, str]]] = {e.path: [] for e in exports}
        missing = []
        for wanted in self.options.channels:
            key = wanted.strip().lstrip("#")
            channel_id = workspace.channels.get(key.lower())
            folders = {key}
            if channel_id is not None:
                folders |= {workspace.names.get(channel_id, channel_id), channel_id}
            known = channel_id is not None
            for export in exports:
                for folder in sorted(folders):
                    if export.day_files(folder):
                        found[export.path].append((channel_id or folder, folder))
                        known = True
                        break
            if not known:
                missing.append(wanted)
        if missing:
            raise ConnectorError(
                f"channel {missing[0]!r} is in no export at {self.path} "
                "(give its name or id as in channels.json)",
                permanent=True,
            )
        return found

    def _unit(self, export: _Export, name: str, channel_id: str, people: _People) -> Unit:
        location = f"{export.label}{name}"
        if export.size(name) > self.max_document_bytes:
            reason = f"day file of {export.size(name)} bytes is larger than the limit"

            def too_big(_: bytes) -> Iterator[Parsed]:
                yield [], [Rejection(location, reason)]

            return Unit(f"{channel_id}/{name}:{export.size(name)}:large", bytes, too_big)

        def parse(data: bytes) -> Iterator[Parsed]:
            try:
                messages = load_json(data)
                if not isinstance(messages, list):
                    raise RecordError(
                        f"expected a JSON array of messages, got {json_type(messages)}"
                    )
            except RecordError as exc:
                yield [], [Rejection(location, str(exc))]
                return
            for index, raw in enumerate(messages):
                try:
                    event = _message(raw, channel_id, people)
                except RecordError as exc:
                    yield [], [Rejection(f"{location} .[{index}]", str(exc))]
                    continue
                yield ([event] if event else []), []

        reader: Callable[[], bytes] = lambda: export.read(name)  # noqa: E731
        # The channel is part of the identity: the same bytes in two channels are two files.
        return Unit(f"{channel_id}/{export.fingerprint(name)}", reader, parse)


def _ts(value: object, key: str) -> tuple[str, datetime]:
    """A Slack `ts` ("1516454398.000069") as given and as a time; exact, never via float."""
    if value is None or value == "":
        raise RecordError(f"missing {key}")
    if not isinstance(value, str):
        raise RecordError(
            f'{key} must be a string such as "1516454398.000069", got {json_type(value)}'
        )
    match = _TS.match(value)
    if not match:
        raise RecordError(f'{key} is not a Slack timestamp such as "1516454398.000069"')
    micros = int((match.group(2) or "0").ljust(6, "0"))
    try:
        at = datetime.fromtimestamp(int(match.group(1)), UTC) + timedelta(microseconds=micros)
    except (OverflowError, OSError, ValueError):
        raise RecordError(f"{key} is out of range") from None
    return value, at


def _message(raw: Any, channel_id: str, people: _People) -> MessageEvent | None:
    """One day-file record as an event; None for records that are not messages."""
    if not isinstance(raw, dict):
        raise RecordError(f"expected a message object, got {json_type(raw)}")
    kind = raw.get("type")
    if kind is not None and kind != "message":
        raise RecordError(f"unknown type {short(kind)}")
    subtype = text(raw, "subtype")
    ts, at = _ts(raw.get("ts"), "ts")
    if subtype in IGNORED_SUBTYPES:
        return None
    thread_ts = ts
    if raw.get("thread_ts") is not None:
        thread_ts, parent_at = _ts(raw["thread_ts"], "thread_ts")
        # A reply never precedes its thread (a clock or an importer got it wrong): taken at the
        # parent's time it answers the question instead of coming before it.
        at = max(at, parent_at)
    user = text(raw, "user")
    bot = subtype == "bot_message" or bool(raw.get("bot_id")) or people.is_bot(user)
    if subtype in AUTOMATIC_SUBTYPES or raw.get("hidden") is True:
        automatic = True
    elif subtype in HUMAN_SUBTYPES:
        automatic = bot
        if not user and not bot:
            raise RecordError("missing user")
    else:
        raise RecordError(f"unknown subtype {short(subtype)}")
    role = people.role(user, raw) if user and not bot else BOT
    customer = role == CUSTOMER and not automatic
    return MessageEvent(
        external_id=f"{channel_id}:{ts}",
        conversation=f"{channel_id}:{thread_ts}",
        at=at,
        side=Side.CUSTOMER if role == CUSTOMER else Side.AGENT,
        automatic=automatic,
        customer=people.name(user, raw) if customer and user else None,
    )
