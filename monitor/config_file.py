"""Reading the configuration file: YAML in, validated `Settings` out, or every problem at once.

Loading is strict because a monitor that silently ignores a misspelt `hold_max` measures the
wrong thing for months: unknown keys are errors, every error names its key path
(`sources[1].targets.hold_warn`), and nothing runs until the whole file is valid. `${VAR}` is
replaced from the environment, and an error never shows what a variable held.

Each source is validated twice: first its common keys (`SourceSettings`), then by the settings
model its kind declares, found through the connector registry: this is the one place the
settings meet the connectors, so `monitor.config` (which every connector imports) imports none.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connectors import CONNECTORS, connector_class
from monitor.config import (
    BUILTIN_TARGETS,
    DATABASE_LATER,
    MAX_NAME,
    DefaultTargets,
    FileSettings,
    Settings,
    SourceSettings,
    Targets,
    channel_of,
    check_slos,
    parse_database_url,
    resolve_targets,
)
from monitor.errors import SupportMonitorError
from monitor.measure.events import Channel

DEFAULT_CONFIG = "support-monitor.yaml"
CONFIG_ENV = "SUPPORT_MONITOR_CONFIG"
# A config file is a few kB; these bound what a hostile or broken one can cost before it is
# refused: its size, and the values its YAML aliases expand to (a "billion laughs" file of a
# few hundred bytes otherwise expands to billions of values in the checks that walk it).
MAX_CONFIG_BYTES = 1024 * 1024
MAX_CONFIG_VALUES = 100_000


class ConfigError(SupportMonitorError):
    """The configuration is invalid; `problems` holds one `path: what` line each."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class _Substituted:
    """A string that held `${VAR}`: where, as written, and what it became."""

    path: str
    written: str
    value: str


def _interpolate(node: Any, path: str, problems: list[str], substituted: list[_Substituted]) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string, naming the key of a missing VAR;
    each replacement is noted in `substituted`, so that errors show what was written."""
    if isinstance(node, dict):
        return {
            k: _interpolate(v, _join(path, str(k)), problems, substituted) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", problems, substituted) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def replace(match: re.Match[str]) -> str:
            value = os.environ.get(match.group(1))
            if value is None and match.group(2) is None:
                problems.append(f"{path}: environment variable {match.group(1)} is not set")
                return ""
            return value if value is not None else match.group(2)

        value = _ENV_REF.sub(replace, node)
        if value != node:
            substituted.append(_Substituted(path, node, value))
        return value
    return node


def _redacted(problems: list[str], substituted: list[_Substituted]) -> list[str]:
    """`problems` with every substituted value under the problem's key shown as written
    (`${SMTP_PASSWORD}`): an error message never carries what the environment holds."""
    if not substituted:
        return problems
    lines = []
    for line in problems:
        where, sep, message = line.partition(": ")
        for item in substituted:
            inside = item.path == where or item.path.startswith((f"{where}.", f"{where}["))
            if sep and item.value and (inside or where == "(top level)"):
                message = message.replace(repr(item.value), repr(item.written))
                message = message.replace(item.value, item.written)
        lines.append(f"{where}{sep}{message}")
    return lines


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _located(exc: ValidationError, prefix: str = "") -> list[str]:
    """One `key.path: message` line per pydantic error."""
    lines = []
    for error in exc.errors():
        path = prefix
        for part in error["loc"]:
            path = f"{path}[{part}]" if isinstance(part, int) else _join(path, str(part))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{path or '(top level)'}: {message}")
    return lines


def settings_from_mapping(
    raw: Mapping[str, Any], base_dir: Path, *, database_later: bool = False
) -> Settings:
    """Validate an already-parsed YAML mapping. Raises ConfigError listing every problem; a
    problem inside a source names the source as well as its place in the list.

    With `database_later` the database URL is taken as any string: the caller checks it with
    `check_database` before it opens the store (`poll`, which reads its first source
    meanwhile; the check imports SQLAlchemy)."""
    problems: list[str] = []
    substituted: list[_Substituted] = []
    data = _interpolate(dict(raw), "", problems, substituted)
    entries = data.get("sources")
    # A bad notifier is a problem of the file's top level, reported with the others there.
    top_problems = _validate_notifiers(data)
    try:
        top = FileSettings.model_validate(data, context={DATABASE_LATER: database_later})
    except ValidationError as exc:
        top_problems += _located(exc)
    if top_problems:
        lines = _redacted(problems + top_problems, substituted)
        raise ConfigError(_naming_sources(lines, entries)) from None

    sources: list[SourceSettings] = []
    placed: list[tuple[str, SourceSettings]] = []
    seen: set[str] = set()
    for index, entry in enumerate(top.sources):
        where = f"sources[{index}]"
        kind = entry.get("kind")
        if kind not in CONNECTORS:
            known = ", ".join(sorted(CONNECTORS))
            problems.append(f"{where}.kind: unknown kind {kind!r} (known: {known})")
            continue
        try:
            source = connector_class(kind).settings.model_validate(entry)
        except ValidationError as exc:
            problems.extend(_located(exc, where))
            continue
        if source.name in seen:
            problems.append(f"{where}.name: {source.name!r} is used by another source")
        seen.add(source.name)
        if source.calendar is not None and source.calendar not in top.calendars:
            problems.append(f"{where}.calendar: no calendar named {source.calendar!r}")
        elif source.calendar is None and _reply_clock(top, source) == "business":
            problems.append(f"{where}.targets.reply_clock: business time needs a `calendar`")
        if source.team is not None and source.team not in top.teams:
            known = ", ".join(sorted(top.teams)) or "none configured"
            hint = ""
            if kind == "slack_export":  # `team:` was once the Slack workspace's team id
                hint = "; a Slack workspace's team id is `workspace_team`"
            problems.append(f"{where}.team: no team named {source.team!r} (teams: {known}){hint}")
        sources.append(source)
        placed.append((where, source))
    problems.extend(_check_hold_order(top, placed))
    problems.extend(_check_alerts(top))
    problems.extend(_check_teams(top))
    if not problems:  # the objectives' checks need every source valid
        problems.extend(check_slos(top, sources))
    if problems:
        raise ConfigError(_naming_sources(_redacted(problems, substituted), entries))
    return Settings(file=top, sources=tuple(sources), base_dir=base_dir)


_SOURCE_PATH = re.compile(r"^sources\[(\d+)\](\.name)?")


def _naming_sources(lines: list[str], entries: object) -> list[str]:
    """Each problem inside a source with the source's name after its key path: `sources[3]`
    alone sends the reader counting list items. (A problem with the name itself shows it.)"""
    if not isinstance(entries, list):
        return lines
    named = []
    for line in lines:
        match = _SOURCE_PATH.match(line)
        index = int(match.group(1)) if match else len(entries)
        entry = entries[index] if index < len(entries) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        if match and not match.group(2) and isinstance(name, str) and name:
            shown = name if len(name) <= MAX_NAME else f"{name[:MAX_NAME]}..."
            where, sep, message = line.partition(": ")
            line = f"{where} (source {shown}){sep}{message}"
        named.append(line)
    return named


# The targets a source resolves are layered (resolve_targets); each layer's key path, for
# errors that must name the key to change.
def _target_layers(
    top: FileSettings, channel: Channel, own: tuple[str, Targets] | None
) -> list[tuple[str, Targets]]:
    layers = [
        ("targets", top.targets),
        (f"targets.{channel.value}", top.targets.for_channel(channel)),
    ]
    if own is not None:
        layers.append(own)
    return layers


def _check_hold_order(top: FileSettings, sources: list[tuple[str, SourceSettings]]) -> list[str]:
    """`hold_max` below `hold_warn` wherever targets resolve (the top level, a channel's section,
    a source's own): a caller would be critical before being a warning. The problem is put on
    the key of the most specific layer that sets either of the two, once."""
    checks: list[tuple[Channel, tuple[str, Targets] | None]] = [
        (channel, None) for channel in DefaultTargets.channels()
    ]
    checks += [
        (channel_of(source), (f"{where}.targets", source.targets)) for where, source in sources
    ]
    problems: dict[str, None] = {}  # ordered, without repeats
    for channel, own in checks:
        origin = {"hold_warn": "the built-in default", "hold_max": "the built-in default"}
        value = {"hold_warn": BUILTIN_TARGETS.hold_warn, "hold_max": BUILTIN_TARGETS.hold_max}
        last = None
        for path, layer in _target_layers(top, channel, own):
            for key in ("hold_warn", "hold_max"):
                if getattr(layer, key) is not None:
                    value[key], origin[key], last = getattr(layer, key), f"{path}.{key}", key
        warn, most = value["hold_warn"], value["hold_max"]
        if last is None or most >= warn:
            continue
        if last == "hold_max":
            problem = (
                f"{origin['hold_max']}: {human_duration(most)} is below hold_warn, "
                f"{human_duration(warn)} from {origin['hold_warn']} (a caller would be critical "
                "before being a warning)"
            )
        else:
            problem = (
                f"{origin['hold_warn']}: {human_duration(warn)} is above hold_max, "
                f"{human_duration(most)} from {origin['hold_max']} (a caller would be critical "
                "before being a warning)"
            )
        problems[problem] = None
    return list(problems)


def human_duration(value: timedelta) -> str:
    """A duration as a config file writes it: `13m`, `90s`, `1.5s`."""
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _validate_notifiers(data: dict[str, Any]) -> list[str]:
    """Validate each `alerts.notify` entry by the settings model its kind declares (found
    through the notifier registry) and put the validated model in its place, so FileSettings
    takes it as it is; a bad entry is dropped and its problems returned. Entries that are not
    mappings are left for FileSettings to refuse."""
    problems: list[str] = []
    alerts = data.get("alerts")
    if not isinstance(alerts, dict) or not isinstance(alerts.get("notify"), list):
        return problems
    notify: list[Any] = alerts["notify"]
    if not notify:
        return problems
    # Imported here: the notifiers (and urllib) cost a command's start-up only when configured.
    from monitor.publish.notifiers import NOTIFIERS, notifier_class

    validated: list[Any] = []
    for index, entry in enumerate(notify):
        where = f"alerts.notify[{index}]"
        if not isinstance(entry, dict):
            validated.append(entry)
            continue
        kind = entry.get("kind")
        if "kind" not in entry:
            problems.append(f"{where}.kind: Field required")
        elif not isinstance(kind, str) or kind not in NOTIFIERS:
            known = [repr(k) for k in NOTIFIERS]
            choices = f"{', '.join(known[:-1])} or {known[-1]}" if len(known) > 1 else known[0]
            problems.append(f"{where}.kind: Input should be {choices}")
        else:
            try:
                validated.append(notifier_class(kind).settings.model_validate(entry))
            except ValidationError as exc:
                problems.extend(_located(exc, where))
    data["alerts"] = {**alerts, "notify": validated}
    return problems


def _check_alerts(top: FileSettings) -> list[str]:
    problems = []
    quiet = top.alerts.quiet_hours
    if quiet is not None and quiet.calendar not in top.calendars:
        problems.append(f"alerts.quiet_hours.calendar: no calendar named {quiet.calendar!r}")
    if top.digest is not None and top.digest.to and top.smtp is None:
        problems.append("digest.to: sending the digest needs the `smtp` section")
    for index, notify in enumerate(top.alerts.notify):
        if notify.needs_smtp and top.smtp is None:
            problems.append(
                f"alerts.notify[{index}]: an {notify.kind} notifier needs the `smtp` section"
            )
    return problems


def _check_teams(top: FileSettings) -> list[str]:
    """An agent in two teams would be counted for both: each is in one (names compared as
    reports match them, ignoring case)."""
    problems = []
    seen: dict[str, tuple[str, int]] = {}
    for team, settings in top.teams.items():
        for index, names in enumerate(settings.members()):
            for name in names:
                other = seen.setdefault(name.casefold(), (team, index))
                if other != (team, index):
                    where = f"team {other[0]!r}" if other[0] != team else "another agent"
                    problems.append(f"teams.{team}.agents[{index}]: {name!r} is already {where}'s")
    return problems


def _reply_clock(top: FileSettings, source: SourceSettings) -> str:
    return resolve_targets(top.targets, channel_of(source), source.targets).reply_clock


def config_path(explicit: str | None) -> Path:
    """`--config`, else $SUPPORT_MONITOR_CONFIG, else ./support-monitor.yaml."""
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a document whose aliases expand past MAX_CONFIG_VALUES
    values (counted on the composed graph before anything is built from it)."""

    def construct_document(self, node: yaml.Node) -> Any:
        if _expanded_size(node) > MAX_CONFIG_VALUES:
            raise _TooLarge(
                f"the YAML expands to more than {MAX_CONFIG_VALUES:,} values "
                "(aliases repeat what they point to): write the settings out"
            )
        return super().construct_document(node)


class _TooLarge(Exception):
    pass


def _expanded_size(root: yaml.Node) -> int:
    """How many values the document holds once every alias is replaced by what it names.

    Each node's size is computed once (an alias is the same node object), children before
    parents, without recursion: a deeply nested file cannot exhaust the stack either."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            sizes[id(node)] = 1
            continue
        if children_done:
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_CONFIG_VALUES + 1)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def load_settings(path: Path, *, database_later: bool = False) -> Settings:
    """Read and validate the YAML file at `path` (at most MAX_CONFIG_BYTES); `database_later`
    as for `settings_from_mapping`."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file ({exc.strerror})"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: the config file is larger than {MAX_CONFIG_BYTES // 1024} kB"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 (at byte {exc.start + 1})"]) from None
    try:
        raw = yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass: no tags run code
    except _TooLarge as exc:
        raise ConfigError([f"{path}: {exc}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        reason = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError([f"{where}: {reason}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: the YAML is nested too deeply"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping of settings at the top level"])
    return settings_from_mapping(raw, path.resolve().parent, database_later=database_later)


def check_database(settings: Settings) -> None:
    """The check of the database URL that `database_later` left out: ConfigError as loading
    would have raised it."""
    try:
        parse_database_url(settings.file.database)
    except ValueError as exc:
        raise ConfigError([f"database: {exc}"]) from None
