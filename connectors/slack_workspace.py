"""A Slack workspace export's files, users and channels, and who in it is an agent.

`Export` reads one export, zipped or unpacked, by paths relative to its root (the folder that
holds users.json: a zip may wrap everything in a folder of its own). `load_workspace` merges
users.json, channels.json and groups.json of every export read (later exports win) and keeps
their bad records as rejections to report once. `People` applies the rules that tell agents,
customers and bots apart (see `connectors.slack_export`).
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from connectors.base import Batch, ConnectorContext, ConnectorError, Rejection
from connectors.json_exports import Unit, fingerprint, rejecting
from connectors.json_records import RecordError, json_type, load_json
from monitor.events import MessageEvent, Side

SLACKBOT = "USLACKBOT"
AGENT, CUSTOMER, BOT = "agent", "customer", "bot"
_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.json$")


class Export:
    """One export, zipped or unpacked: its files by path relative to the export's root."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.members: dict[str, zipfile.ZipInfo] = {}
        if path.is_dir():
            self.root = folder_root(path)
            self.label = f"{path.name}/"
        else:
            try:
                self.zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
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
        listed = {a.strip() for a in agent_users if a.strip()}
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
        self.team = team or (teams.most_common(1)[0][0] if teams else None)

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


def load_workspace(exports: list[Export]) -> Workspace:
    """Users and channels of every export; ConnectorError when no users.json can be read."""
    workspace = Workspace()
    for export in exports:
        for name in ("users.json", "channels.json", "groups.json"):
            if export.exists(name):
                _meta(export, name, workspace)
    if not workspace.users_read:
        where = ", ".join(str(e.path) for e in exports)
        raise ConnectorError(
            f"no readable users.json in {where}: cannot tell agents from customers",
            permanent=True,
        )
    return workspace


def _meta(export: Export, name: str, workspace: Workspace) -> None:
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
            rejected.append(Rejection(f"{location} .[{index}]", "expected an object with an id"))
        elif name == "users.json":
            workspace.users[record["id"]] = record
        else:
            workspace.names[record["id"]] = str(record.get("name") or record["id"])
            workspace.channels[record["id"].lower()] = record["id"]
            if isinstance(record.get("name"), str):
                workspace.channels[record["name"].lower()] = record["id"]
    workspace.units.append(Unit(f"{name}:{fingerprint(data)}", bytes, rejecting(rejected)))
