"""The `slack_export` connector: a Slack workspace export, zipped or unpacked.

An export holds `users.json`, `channels.json` (and `groups.json` for private channels) and one
folder per channel, named by the channel's name, with one JSON array of messages per day
(`support/2026-11-20.json`). Only the configured channels are read.

- **Conversations**: a thread (`thread_ts`) is one conversation; a top-level message without
  replies is a conversation of its own. Replies may be in later day files; conversations are
  keyed `<channel id>:<thread_ts>`, so that does not matter. A reply keeps its own `ts` and
  names its thread's parent as what it answers: one whose `ts` is earlier than the parent's
  (seen in importer fixtures) is placed after it when measured, never moved when stored.
- **Ids**: a message is `<channel id>:<ts>` (`ts` is the string `"1516454398.000069"`, unique per
  channel; read as text, never as a float). A message read again in a later export is the same
  row, so a re-export adds only what is new.
- **Who is who**: with `agent_users` (Slack user ids or e-mail addresses from users.json),
  exactly those users, and users whose e-mail matches the top-level `agents` addresses or
  domains, are agents (by e-mail only members of the workspace's own team: an outside
  organisation can give its user our address); everyone else is a customer. Without it,
  workspace members are agents and outsiders customers: a user is a customer when users.json
  marks them `is_stranger` (Slack Connect), `is_restricted` or `is_ultra_restricted` (guests),
  or gives them a `team_id` other than the workspace's (`workspace_team:`, by default the most
  common `team_id` among users.json's humans); a user missing from users.json is a customer
  unless their message's `user_team` is the workspace's.
- **Automatic**: bot messages (`bot_message`, a `bot_id`, a users.json bot, Slackbot), joins,
  leaves, topic/purpose/name changes, pins, reminders, huddles, deleted-message tombstones and
  the other system subtypes. Edits never count as replies: an edited message keeps its own `ts`,
  and `message_changed` / `message_deleted` / `message_replied` records are not messages.
  A subtype not listed here is rejected as unknown (and named in the reason).

Slack has no "chat ended": a Slack inquiry is answered or open, never missed.

The cursor is the snapshot cursor of `connectors.chat.json_exports`: the content fingerprints of the
day files already read. New day files, and day files that changed (a re-export with more
messages, edits, reactions), are read; the rest is skipped without being parsed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, NotRequired

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from connectors.base import (
    CURSOR_VERSION,
    Batch,
    Connector,
    ConnectorContext,
    ConnectorError,
    Cursor,
    Number,
    Records,
    Rejection,
    stored_cursor,
)
from connectors.chat.json_exports import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    DEFAULT_MAX_RECORDS,
    Parsed,
    Snapshots,
    SnapshotState,
    Unit,
    nothing,
    read_units,
    rejecting,
)
from connectors.chat.slack_workspace import (
    BOT,
    CUSTOMER,
    READ_ERRORS,
    Export,
    People,
    Workspace,
    load_workspace,
)
from connectors.file_source import matching_paths, read_error
from connectors.json_records import RecordError, json_type, nested, short, text
from connectors.json_stream import DEFAULT_MAX_RECORD_BYTES, read_records
from connectors.regular_files import reason
from monitor.config import SourceSettings
from monitor.measure.events import Channel, MessageEvent, Side

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
_TS = re.compile(r"^(\d{1,12})(?:\.(\d{1,6}))?$")


@with_config(ConfigDict(extra="forbid"))
class SlackCursor(TypedDict):
    v: Number
    snapshots: NotRequired[SnapshotState]  # the day files read (connectors.chat.json_exports)


class SlackExportSettings(SourceSettings):
    channel: ClassVar[Channel] = Channel.CHAT
    # A zip, an unpacked folder, or a glob of several (`exports/slack-*.zip`); relative to the
    # config file's folder.
    path: str
    # Channels to measure, by name (`support`, `#support`) or id (`C0123ABCD`).
    channels: list[str] = Field(min_length=1)
    # Agents by Slack user id or e-mail address; empty: workspace members are agents.
    agent_users: list[str] = []
    # The workspace's team id for the members rule; default: the most common in users.json.
    # (`team:` is every source's team of `teams:`.)
    workspace_team: str | None = None


class SlackExportConnector(Connector):
    kind = "slack_export"
    settings = SlackExportSettings
    imports_files = True

    def __init__(
        self,
        source: SourceSettings,
        context: ConnectorContext,
        *,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        super().__init__(source, context)
        assert isinstance(source, SlackExportSettings), type(source)
        self.options = source
        self.path = context.path(source.path)
        self.max_records = max_records
        self.max_document_bytes = max_document_bytes
        self.max_record_bytes = max_record_bytes
        self.refused: list[tuple[str, str]] = []

    def matching_exports(self) -> list[Path]:
        """The zips and folders the configured path matches now, oldest first (anything else
        it matches, a FIFO or a device, is refused with its name when opened)."""
        found = matching_paths(self.path)

        def age(path: Path) -> tuple[int, str]:
            try:
                return path.stat().st_mtime_ns, str(path)
            except OSError:
                return 0, str(path)

        return sorted(found, key=age)

    def check(self) -> str:
        exports = self._open(self.matching_exports(), permanent=True)
        try:
            self._refusal()
            workspace = load_workspace(exports)
            channels = self._channels(exports, workspace)
            days = 0
            for export in exports:
                for _, folder in channels[export.path]:
                    for name in export.day_files(folder):
                        days += 1
                        try:
                            export.verify(name)
                        except READ_ERRORS as exc:
                            self.refused.append((f"{export.label}{name}", f"day file {exc}"))
            self.refused.extend(("", problem) for problem in workspace.problems)
            self._refusal()
            agents = self._people(workspace).agents()
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

    def _refusal(self) -> None:
        """For `check`: fail naming the first file a poll would refuse, and how many more."""
        if self.refused:
            (location, why), more = self.refused[0], len(self.refused) - 1
            where = f"{location}: " if location else ""
            raise ConnectorError(
                f"{where}{why}" + (f" (and {more} more)" if more else ""), permanent=True
            )

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        checked = stored_cursor(SlackCursor, cursor, "Slack export")
        previous = Snapshots.load(checked.get("snapshots") if checked else None)
        exports = self._open(self.matching_exports(), permanent=False)
        yield from self._read(exports, previous, self.collector(now), cursor)

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        for path in paths:
            if not path.exists() and not path.is_symlink():
                raise ConnectorError(f"{path}: no such file or folder", permanent=True)
        read = self._read(self._open(paths), Snapshots(), self.collector(now))
        yield from (replace(b, cursor={}) for b in read)

    def _open(self, paths: list[Path], *, permanent: bool = True) -> list[Export]:
        """The exports that open; the others (not a regular file or folder, unreadable) are
        kept in `refused` with their reasons, to be reported as rejections."""
        if not paths:
            raise ConnectorError(f"no Slack export matches {self.path}", permanent=permanent)
        exports = []
        self.refused = []
        for path in paths:
            try:
                exports.append(Export(path, self.max_document_bytes))
            except FileNotFoundError:
                continue
            except OSError as exc:
                self.refused.append((path.name, reason(exc)))
        if not exports:
            for export in exports:
                export.close()
            location, why = self.refused[0] if self.refused else (str(self.path), "gone")
            raise ConnectorError(f"cannot read {location}: {why}", permanent=permanent)
        return exports

    def _read(
        self,
        exports: list[Export],
        previous: Snapshots,
        records: Records,
        stored: Cursor | None = None,
    ) -> Iterator[Batch]:
        try:
            workspace = load_workspace(exports)
            people = self._people(workspace)
            channels = self._channels(exports, workspace)
            units = list(workspace.units)
            units += [
                Unit(f"{name}:{why}", nothing, rejecting([Rejection(name, why)]), name)
                for name, why in self.refused
            ]
            for export in exports:
                for channel_id, folder in channels[export.path]:
                    for name in export.day_files(folder):
                        units.append(self._unit(export, name, channel_id, people, records))
            batches = read_units(
                units,
                previous,
                lambda state: {"v": CURSOR_VERSION, "snapshots": state.dump()},
                max_records=self.max_records,
                stored=stored,
            )
            yield from people.noted(batches)
        except OSError as exc:
            raise read_error(exc, self.path) from None
        finally:
            for export in exports:
                export.close()

    def _people(self, workspace: Workspace) -> People:
        return People(
            workspace, self.options.agent_users, self.options.workspace_team, self.context
        )

    def _channels(
        self, exports: list[Export], workspace: Workspace
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

    def _unit(
        self, export: Export, name: str, channel_id: str, people: People, records: Records
    ) -> Unit:
        location = f"{export.label}{name}"
        try:
            content = export.fingerprint(name)
        except READ_ERRORS as exc:  # refused before reading (too large, a zip bomb, a FIFO)
            why = f"day file not read: {exc}"
            return Unit(
                f"{channel_id}/{name}:{why}",
                nothing,
                rejecting([Rejection(location, why)]),
                location,
            )

        def parse(stream: BinaryIO) -> Iterator[Parsed]:
            # A zip member found damaged while it is read ends the file here: read_units
            # rejects it at `location` and keeps what was read before.
            for path, raw in read_records(stream, max_record_bytes=self.max_record_bytes):
                if isinstance(raw, RecordError):
                    records.reject(nested(location, path) if path else location, str(raw))
                elif not path:
                    why = f"expected a JSON array of messages, got {json_type(raw)}"
                    records.reject(location, why)
                else:
                    records.take(f"{location} {path}", _message, raw, channel_id, people)
                yield records.parsed()

        # The channel is part of the identity: the same bytes in two channels are two files.
        opened = functools.partial(export.open, name)
        return Unit(f"{channel_id}/{content}", opened, parse, location)


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


def _message(raw: Any, channel_id: str, people: People) -> MessageEvent | None:
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
        thread_ts, _ = _ts(raw["thread_ts"], "thread_ts")
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
    left_out = None  # why it never pairs: the subtype, or what made it a bot's
    if subtype in AUTOMATIC_SUBTYPES:
        left_out = f"subtype: {subtype}"
    elif raw.get("hidden") is True:
        left_out = "hidden: true"
    elif automatic:
        left_out = "bot_id" if raw.get("bot_id") else "a bot user"
    return MessageEvent(
        external_id=f"{channel_id}:{ts}",
        conversation=f"{channel_id}:{thread_ts}",
        at=at,
        side=Side.CUSTOMER if role == CUSTOMER else Side.AGENT,
        automatic=automatic,
        customer=people.name(user, raw) if customer and user else None,
        # A reply answers its thread's parent: never earlier than it, whatever its `ts` says
        # (the measurement places it after the parent; its stored time stays true).
        refers=(f"{channel_id}:{thread_ts}",) if thread_ts != ts else (),
        agent=people.responder(user, raw) if role != CUSTOMER and user else None,
        left_out=left_out,
    )
