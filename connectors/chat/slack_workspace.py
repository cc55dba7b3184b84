"""A Slack workspace export's files, users and channels, and who in it is an agent.

`Export` reads one export, zipped or unpacked, by paths relative to its root (the folder that
holds users.json: a zip may wrap everything in a folder of its own). `load_workspace` merges
users.json, channels.json and groups.json of every export read (later exports win) and keeps
their bad records as rejections to report once. `People` applies the rules that tell agents,
customers and bots apart (see `connectors.chat.slack_export`).
"""

from __future__ import annotations

import errno
import io
import lzma
import os
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from connectors.base import Batch, ConnectorContext, ConnectorError, Rejection
from connectors.chat.json_exports import Unit, nothing, rejecting, stream_fingerprint
from connectors.json_records import RecordError, json_type, nested
from connectors.json_stream import DocumentError, read_records
from connectors.regular_files import open_regular, reason
from monitor.errors import BadRecord
from monitor.measure.events import MessageEvent, Side, responder

SLACKBOT = "USLACKBOT"
AGENT, CUSTOMER, BOT = "agent", "customer", "bot"
_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.json$")


# A zip member is refused before a byte of it is decompressed when its stored size says it
# expands past the document limit, or (beyond a megabyte) to more than MAX_RATIO times its
# compressed size: JSON compresses some 5-20 times, a zip bomb about a thousand.
MAX_RATIO = 100
RATIO_FLOOR = 1024 * 1024
# users.json and channels.json are kept in memory while the export is read: this many records
# at most (far beyond any real workspace), each trimmed to the fields the rules read.
MAX_WORKSPACE_RECORDS = 500_000
_USER_FIELDS = (
    "team_id is_bot deleted is_stranger is_restricted is_ultra_restricted real_name name".split()
)


class MemberError(BadRecord):
    """A file of the export that is not read, or not to its end: the reason (for a rejection
    located at the file, or a `check` error)."""


# What zipfile raises for a member whose data is damaged, when it is opened (a crafted local
# header, an unknown method, a password) or while it is read (a corrupt or truncated deflate
# stream, a wrong CRC; bzip2 and lzma data that does not decompress).
DAMAGED = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    lzma.LZMAError,
    NotImplementedError,
    RuntimeError,
)


def damaged(exc: Exception) -> str:
    """The reason for a zip member that cannot be decompressed (zipfile's words, one line)."""
    why = " ".join(str(exc).split())[:120] or type(exc).__name__
    return f"the zip member cannot be decompressed ({why})"


class _MemberStream(io.BufferedIOBase):
    """A zip member's stream whose damage, found only as it is decompressed, is a MemberError:
    the day file is then rejected where it is, with the records read before it kept, and the
    rest of the export is read (connectors.chat.json_exports.read_units)."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self.stream = stream

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.stream.seekable()

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self.stream.read(-1 if size is None else size)
        except DAMAGED as exc:
            raise MemberError(damaged(exc)) from None

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return self.stream.seek(offset, whence)  # zipfile decompresses again from the start
        except DAMAGED as exc:
            raise MemberError(damaged(exc)) from None

    def close(self) -> None:
        self.stream.close()
        super().close()


class Export:
    """One export, zipped or unpacked: its files by path relative to the export's root.

    Every file is opened as a stream with its size checked first, never read whole: a zip
    member by its stored sizes (and zipfile stops at the stored size whatever the data says),
    an unpacked file only if it is a regular file (connectors.regular_files)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.zip: zipfile.ZipFile | None = None
        self.handle: BinaryIO | None = None
        self.members: dict[str, zipfile.ZipInfo] = {}
        if path.is_dir():
            self.root = folder_root(path)
            self.label = f"{path.name}/"
        else:
            self.handle = open_regular(path)
            try:
                self.zip = zipfile.ZipFile(self.handle)
            except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, OverflowError):
                # A crafted or truncated directory fails in several ways; all mean "not a zip".
                self.handle.close()
                raise ConnectorError(f"{path}: not a zip file or folder", permanent=True) from None
            names = [i for i in self.zip.infolist() if not i.is_dir()]
            prefix = zip_prefix([i.filename for i in names])
            self.members = {
                i.filename[len(prefix) :]: i for i in names if i.filename.startswith(prefix)
            }
            self.root = path
            self.label = f"{path.name}:"

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()
        if self.handle is not None:
            self.handle.close()

    def exists(self, name: str) -> bool:
        if self.zip:
            return name in self.members
        path = self.root / name
        return (path.exists() or path.is_symlink()) and not path.is_dir()

    def open(self, name: str) -> BinaryIO:
        """The file as a stream of at most `max_bytes`; MemberError when it is refused, and
        from the stream's reads when a zip member turns out damaged (see `_MemberStream`)."""
        if self.zip is not None:
            info = self._member(name)
            try:
                return cast(BinaryIO, _MemberStream(self.zip.open(info)))
            except DAMAGED as exc:  # a crafted local header, an unknown method, a password
                raise MemberError(damaged(exc)) from None
        try:
            handle = open_regular(self.root / name)
        except OSError as exc:
            raise MemberError(reason(exc)) from None
        size = os.fstat(handle.fileno()).st_size
        if size > self.max_bytes:
            handle.close()
            raise MemberError(f"{size:,} bytes, more than the {self.max_bytes:,} byte limit")
        return handle

    def _member(self, name: str) -> zipfile.ZipInfo:
        """The zip member `name`, if its stored sizes allow reading it; else MemberError."""
        info = self.members[name]
        if info.file_size > self.max_bytes:
            raise MemberError(
                f"expands to {info.file_size:,} bytes, more than the {self.max_bytes:,} byte limit"
            )
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * info.compress_size:
            raise MemberError(
                f"expands {info.file_size // max(info.compress_size, 1):,} times "
                f"(to {info.file_size:,} bytes): not read, more than {MAX_RATIO} times"
            )
        return info

    def verify(self, name: str) -> None:
        """MemberError if the file would be refused when read (for `check`: nothing read)."""
        if self.zip is not None:
            self._member(name)
        else:
            self.open(name).close()

    def fingerprint(self, name: str) -> str:
        """The content's identity; MemberError when the file is refused."""
        if self.zip is not None:
            info = self._member(name)  # stored in the zip: nothing to decompress
            return f"{info.file_size}:{info.CRC:08x}"
        with self.open(name) as stream:
            return stream_fingerprint(stream)

    def day_files(self, folder: str) -> list[str]:
        if not folder or folder.startswith(".") or "/" in folder or "\\" in folder:
            return []  # a channel name from the export's data never leads out of the export
        if self.zip is not None:
            names = [n for n in self.members if n.startswith(f"{folder}/")]
            found = [n for n in names if _DAY_FILE.match(n[len(folder) + 1 :])]
        else:
            directory = self.root / folder
            try:
                found = (
                    [f"{folder}/{p.name}" for p in directory.iterdir() if _DAY_FILE.match(p.name)]
                    if directory.is_dir()
                    else []
                )
            except OSError as exc:
                # A channel id or name from channels.json too long for a file name: no folder
                # can have it. (A folder that cannot be listed still fails the poll.)
                if exc.errno != errno.ENAMETOOLONG:
                    raise
                found = []
        return sorted(found)


# A file of the export that cannot be read: refused, damaged, or unreadable when unpacked.
READ_ERRORS = (MemberError, OSError)


def folder_root(path: Path) -> Path:
    """The folder holding users.json: the given one, or its only subfolder (a zip unpacked
    into a folder of its own name)."""
    if (path / "users.json").is_file() or (path / "channels.json").is_file():
        return path
    inner = [p for p in path.iterdir() if p.is_dir() and (p / "users.json").is_file()]
    return inner[0] if len(inner) == 1 else path


def zip_prefix(names: list[str]) -> str:
    candidates = [n for n in names if n.rsplit("/", 1)[-1] in ("users.json", "channels.json")]
    if not candidates:
        return ""
    shallowest = min(candidates, key=lambda n: (n.count("/"), n))
    return shallowest.rpartition("/")[0] + "/" if "/" in shallowest else ""


@dataclass
class Workspace:
    """Users and channels merged from every export read (later exports win)."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)  # name and id (lowercased) -> id
    names: dict[str, str] = field(default_factory=dict)  # id -> name
    users_read: bool = False
    units: list[Unit] = field(default_factory=list)  # their bad records, reported once
    problems: list[str] = field(default_factory=list)  # why a file was not read at all


class People:
    """Who is an agent, a customer or a bot (the rules in the module docstring)."""

    def __init__(
        self,
        workspace: Workspace,
        agent_users: list[str],
        team: str | None,
        context: ConnectorContext,
    ) -> None:
        self.users = workspace.users
        self.context = context
        teams = Counter(
            user.get("team_id")
            for user in self.users.values()
            if isinstance(user.get("team_id"), str)
            and not (user.get("is_stranger") or user.get("is_bot") or user.get("deleted"))
        )
        self.team = team or (teams.most_common(1)[0][0] if teams else None)
        listed = {a.strip() for a in agent_users if a.strip()}
        self.listed: set[str] | None = None
        if listed:
            emails = {a.lower() for a in listed if "@" in a}
            self.listed = {a.upper() for a in listed if "@" not in a}
            for uid, user in self.users.items():
                # A profile e-mail is only as good as the workspace that set it: an outside
                # organisation (Slack Connect) can give its own user our address, so only our
                # own workspace's members are made agents by e-mail (by id, anyone listed).
                if user.get("is_stranger") is True or self._other_team(user):
                    continue
                email = _string(user, "profile", "email").lower()
                if email and (email in emails or context.is_agent_address(email)):
                    self.listed.add(uid)

    def noted(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        """`batches`, and when the members rule (no `agent_users`) made every author of the
        poll's human messages an agent, the last one says so in its `skipped` counts: such a
        channel has no inquiry at all, which looks like a quiet one unless the poll says why."""
        if self.listed is not None:
            yield from batches
            return
        held: Batch | None = None
        humans = customers = 0
        for batch in batches:
            for event in batch.events:
                if isinstance(event, MessageEvent) and not event.automatic:
                    humans += 1
                    customers += event.side == Side.CUSTOMER
            if held is not None:
                yield held
            held = batch
        if held is not None and humans and not customers:
            reason = "messages, all by members (the members rule found no customers)"
            held = replace(held, skipped={**held.skipped, reason: humans})
        if held is not None:
            yield held

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
        return CUSTOMER if guest or self._other_team(user) else AGENT

    def _other_team(self, user: dict[str, Any]) -> bool:
        team = user.get("team_id")
        return bool(self.team) and isinstance(team, str) and team != self.team

    def agents(self) -> int:
        return sum(1 for uid in self.users if self.role(uid, {}) == AGENT)

    def responder(self, uid: str, message: dict[str, Any]) -> str | None:
        """Who wrote an agent-side message: their name, user id and (a member of our own
        workspace) profile e-mail, any of which `teams:` may list."""
        user = self.users.get(uid) or {}
        email = None
        if not (user.get("is_stranger") is True or self._other_team(user)):
            email = _string(user, "profile", "email").lower() or None
        return responder(self.name(uid, message), uid, email)

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


def load_workspace(exports: list[Export]) -> Workspace:
    """Users and channels of every export; ConnectorError when no users.json can be read."""
    workspace = Workspace()
    for export in exports:
        for name in ("users.json", "channels.json", "groups.json"):
            if export.exists(name):
                _meta(export, name, workspace)
    if not workspace.users_read:
        where = ", ".join(str(e.path) for e in exports)
        why = f" ({workspace.problems[0]})" if workspace.problems else ""
        raise ConnectorError(
            f"no readable users.json in {where}: cannot tell agents from customers{why}",
            permanent=True,
        )
    return workspace


def _meta(export: Export, name: str, workspace: Workspace) -> None:
    """Read users.json / channels.json / groups.json into `workspace`, a record at a time;
    their bad records become a unit of rejections, reported once per content like a day
    file's."""
    location = f"{export.label}{name}"
    rejected: list[Rejection] = []
    try:
        content = export.fingerprint(name)
        with export.open(name) as stream:
            _meta_records(stream, location, name, workspace, rejected)
    except READ_ERRORS as exc:
        content = f"{name}:unread"
        rejected.append(Rejection(location, f"not read: {exc}"))
        workspace.problems.append(f"{location}: {exc}")
    workspace.units.append(Unit(f"{name}:{content}", nothing, rejecting(rejected), location))


def _meta_records(
    stream: BinaryIO, location: str, name: str, workspace: Workspace, rejected: list[Rejection]
) -> None:
    users: dict[str, dict[str, Any]] = {}
    kept = 0
    for path, record in read_records(stream):
        if isinstance(record, RecordError):
            rejected.append(Rejection(nested(location, path) if path else location, str(record)))
            if isinstance(record, DocumentError) or not path:
                workspace.problems.append(f"{location}: {record}")
                return  # a broken users.json is not read at all: who is who would be a guess
            continue
        if not path:
            why = f"expected a JSON array, got {json_type(record)}"
            rejected.append(Rejection(location, why))
            workspace.problems.append(f"{location}: {why}")
            return
        if not (isinstance(record, dict) and isinstance(record.get("id"), str)):
            rejected.append(Rejection(f"{location} {path}", "expected an object with an id"))
            continue
        kept += 1
        if kept > MAX_WORKSPACE_RECORDS:
            why = f"more than {MAX_WORKSPACE_RECORDS:,} records: the rest are not read"
            rejected.append(Rejection(f"{location} {path}", why))
            break
        if name == "users.json":
            users[record["id"]] = _trimmed(record)
        else:
            workspace.names[record["id"]] = str(record.get("name") or record["id"])
            workspace.channels[record["id"].lower()] = record["id"]
            if isinstance(record.get("name"), str):
                workspace.channels[record["name"].lower()] = record["id"]
    if name == "users.json":  # read to its end (an empty array too): it is used
        workspace.users.update(users)
        workspace.users_read = True


def _trimmed(user: dict[str, Any]) -> dict[str, Any]:
    """What the rules read of a user (a users.json record holds much more)."""
    kept = {key: user[key] for key in _USER_FIELDS if key in user}
    profile = user.get("profile")
    if isinstance(profile, dict):
        kept["profile"] = {k: profile[k] for k in ("email", "real_name") if k in profile}
    return kept
