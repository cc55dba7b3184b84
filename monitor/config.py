"""The configuration file: YAML in, validated frozen models out.

Loading is strict because a monitor that silently ignores a misspelt `hold_max` measures the
wrong thing for months: unknown keys are errors, every error names its key path
(`sources[1].targets.hold_warn`), and nothing runs until the whole file is valid.

Each source is validated twice: first its common keys (`SourceSettings`), then by the settings
model its connector declares, so a connector owns its own keys without this module knowing them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from monitor.measure.events import Channel, Stage

DEFAULT_CONFIG = "support-monitor.yaml"
CONFIG_ENV = "SUPPORT_MONITOR_CONFIG"
# A config file is a few kB; these bound what a hostile or broken one can cost before it is
# refused: its size, and the values its YAML aliases expand to (a "billion laughs" file of a
# few hundred bytes otherwise expands to billions of values in the checks that walk it).
MAX_CONFIG_BYTES = 1024 * 1024
MAX_CONFIG_VALUES = 100_000


class ConfigError(Exception):
    """The configuration is invalid; `problems` holds one `path: what` line each."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: object) -> timedelta:
    """`90s`, `5m`, `24h`, `2d`, `1w` or a number of seconds, as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 5m, 24h or 2d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"expected a duration such as 90s, 5m, 24h or 2d, got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown timezone {name!r} (use an IANA name like Europe/London)"
        ) from exc
    return name


TimezoneName = Annotated[str, BeforeValidator(lambda v: _check_timezone(str(v)))]
# A TCP port: checked when the file is loaded, not when a connection is first tried.
Port = Annotated[int, Field(ge=1, le=65535)]


def masked_url(url: str | URL) -> str:
    """A URL for messages: what lies between the scheme and the host (a user name, a password,
    whatever characters it holds) and the query (which may carry a password too) are left out.
    Parsed by SQLAlchemy's URL, never by hand; what does not parse shows as its scheme only."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
        # A password holding an unencoded "@" leaves its tail in SQLAlchemy's host: the host
        # is what follows the last "@".
        host = parsed.host.rpartition("@")[2] if parsed.host else parsed.host
        hidden = parsed.username is not None or parsed.password is not None or host != parsed.host
        masked = URL.create(
            parsed.drivername, host=host, port=parsed.port, database=parsed.database
        )
    except (ArgumentError, ValueError, TypeError):
        scheme = str(url).partition("://")[0] if "://" in str(url) else ""
        return f"{scheme}://..." if scheme.isidentifier() else "(a URL that does not parse)"
    text = masked.render_as_string(hide_password=True)
    if hidden:
        text = text.replace("://", "://***@", 1)
    return text


def _check_database_url(value: object) -> str:
    """A SQLAlchemy URL whose parts are where they belong. A password holding `@`, `/`, `?`
    or `#` unencoded makes the parser take part of it for the host (which would then be shown
    in messages and sent to the resolver), so it is refused here, before anything connects."""
    if not isinstance(value, str):
        raise ValueError("expected a database URL such as sqlite:///support-monitor.db")
    try:
        parsed = make_url(value)
        parsed.port  # noqa: B018 - a port that is not a number raises here, not at connect time
    except (ArgumentError, ValueError):
        raise ValueError(
            "not a database URL such as postgresql+psycopg://user:password@host:5432/name "
            "(a port must be a number from 1 to 65535)"
        ) from None
    host = parsed.host or ""
    if "@" in host or (parsed.port is not None and not 0 < parsed.port < 65536):
        raise ValueError(
            "the URL does not parse into user, password, host and port: percent-encode the "
            "reserved characters of the password (@ as %40, / as %2F, ? as %3F, # as %23, "
            "% as %25)"
        )
    return value


DatabaseUrl = Annotated[str, BeforeValidator(_check_database_url)]


def _check_http_url(value: object) -> str:
    """An http(s) URL with a host and, if given, a valid port."""
    text = value if isinstance(value, str) else ""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise ValueError("expected an http(s) URL with a port from 1 to 65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http(s) URL such as https://hooks.example.com/...")
    if parts.port == 0:
        raise ValueError("expected an http(s) URL with a port from 1 to 65535")
    return text


HttpUrl = Annotated[str, BeforeValidator(_check_http_url)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Targets(Model):
    """Responsiveness targets; at source level every key is optional and overrides the default."""

    reply_within: Duration | None = None
    reply_clock: Literal["calendar", "business"] | None = None
    hold_warn: Duration | None = None
    hold_max: Duration | None = None
    answer_within: Duration | None = None
    # Service level: do calls abandoned before `answer_within` count against it? (Call centres
    # disagree; counting them is the stricter and default reading.)
    abandons_count: bool | None = None
    # A caller who hangs up this soon after entering the queue misdialled or thought better of
    # it: an abandoned call still, but no callback is owed and the service level leaves it out.
    # 0 (the default) turns it off.
    short_abandon: Duration | None = None


class DefaultTargets(Targets):
    """The top-level `targets:`: defaults for every source, then per channel.

    A channel's own section beats the keys above it, and the built-in chat reply target (2
    minutes) beats a top-level `reply_within`: that one is written for mail and callbacks, and
    setting it must not give live chats a day to answer. A chat target is set under `chat:` or
    on the source."""

    email: Targets = Targets()
    chat: Targets = Targets()
    phone: Targets = Targets()
    answering_service: Targets = Targets()

    def for_channel(self, channel: Channel) -> Targets:
        section: Targets = getattr(self, channel.value, Targets())
        return section


@dataclass(frozen=True)
class ResolvedTargets:
    """The targets in force for one source, every value filled in."""

    reply_within: timedelta
    reply_clock: Literal["calendar", "business"]
    hold_warn: timedelta
    hold_max: timedelta
    answer_within: timedelta
    abandons_count: bool
    short_abandon: timedelta = timedelta(0)


BUILTIN_TARGETS = ResolvedTargets(
    reply_within=timedelta(hours=24),
    reply_clock="calendar",
    hold_warn=timedelta(minutes=5),
    hold_max=timedelta(minutes=13),
    answer_within=timedelta(seconds=20),
    abandons_count=True,
    short_abandon=timedelta(0),
)
# Chat visitors leave within minutes, so a 24-hour reply target would call every chat a success.
CHAT_REPLY_WITHIN = timedelta(minutes=2)
# Built-in defaults of a channel, above the top-level `targets:` keys (see DefaultTargets).
CHANNEL_DEFAULTS: dict[Channel, dict[str, Any]] = {
    Channel.CHAT: {"reply_within": CHAT_REPLY_WITHIN}
}


def resolve_targets(
    defaults: DefaultTargets, channel: Channel, own: Targets | None = None
) -> ResolvedTargets:
    """Built-in defaults < the top-level `targets:` keys < the channel's built-in defaults <
    `targets.<channel>:` < the source's own `targets:`."""
    values = dict(BUILTIN_TARGETS.__dict__)
    layers: list[dict[str, Any]] = [
        _set(defaults, Targets.model_fields),
        CHANNEL_DEFAULTS.get(channel, {}),
        _set(defaults.for_channel(channel), Targets.model_fields),
    ]
    if own is not None:
        layers.append(_set(own, Targets.model_fields))
    for layer in layers:
        values.update(layer)
    return ResolvedTargets(**values)


def _set(targets: Targets, keys: Iterable[str]) -> dict[str, Any]:
    """The keys of `targets` that are set."""
    return {k: getattr(targets, k) for k in keys if getattr(targets, k) is not None}


class Agents(Model):
    """Who is "us": a sender matching these is on the agent side."""

    addresses: list[str] = []
    domains: list[str] = []

    @field_validator("addresses", "domains")
    @classmethod
    def _lower(cls, values: list[str]) -> list[str]:
        return [v.strip().lower().lstrip("@") for v in values]


class HolidaySettings(Model):
    country: str
    subdivision: str | None = None


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_INTERVAL = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def _check_interval(value: object) -> str:
    text = str(value).replace(" ", "")
    match = _INTERVAL.match(text)
    if not match or text[:5] > "24:00" or text[6:] > "24:00":
        raise ValueError(f"expected an opening interval like 09:00-17:30, got {value!r}")
    if text[:5] == text[6:]:
        raise ValueError(f"interval {value!r} is empty")
    return text


Interval = Annotated[str, BeforeValidator(_check_interval)]


class CalendarSettings(Model):
    """Business hours: weekly intervals in a timezone, holidays and exceptions.

    An interval whose end is before its start (`22:00-06:00`) is a shift crossing midnight: it
    belongs to the day it starts on, so a holiday or closed date closes the whole shift.
    """

    timezone: TimezoneName
    hours: dict[Weekday, list[Interval]]
    holidays: HolidaySettings | None = None
    closed: list[date] = []
    # Extra opening on dates that are otherwise closed (a Saturday sale, a holiday on duty).
    open: dict[date, list[Interval]] = {}


class SourceSettings(Model):
    """Keys every source has; a connector's own settings model extends this."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    kind: str
    stage: Stage = Stage.EXPERIENCE
    calendar: str | None = None
    every: Duration = timedelta(minutes=5)
    targets: Targets = Targets()
    enabled: bool = True


class PhoneSettings(SourceSettings):
    """Keys of the sources whose calls carry a queue (the phone kinds).

    The `queue` label comes from the log, so it is bounded: with `queues`, exactly those
    queues are exported under their own name (a mapping renames them: `{"600": Sales}`); without
    it, the first `max_queues` names met. Every other queue, and any name that looks like an
    e-mail address or a phone number, is stored and exported as `other`."""

    queues: list[str] | dict[str, str] | None = None
    max_queues: int = Field(default=50, ge=1, le=1000)


class MetricsSettings(Model):
    listen: str = "127.0.0.1:9742"

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port such as 127.0.0.1:9742, got {value!r}")
        return value


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (no DNS lookup: names other than
    `localhost` could resolve anywhere)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SmtpSettings(Model):
    host: str
    port: Port = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    sender: str
    ca_file: Path | None = None
    timeout: Duration = timedelta(seconds=30)

    @model_validator(mode="after")
    def _plaintext_only_on_loopback(self) -> SmtpSettings:
        # A password sent in clear over a network is a leak waiting to happen.
        if self.security == "none" and not is_loopback(self.host):
            raise ValueError("security: none is only allowed for a server on loopback")
        return self


class DigestSettings(Model):
    schedule: str = "0 8 * * *"  # cron (minute hour day month weekday) in `timezone`
    to: list[str] = []
    # oldest open inquiries, unreturned callbacks and longest holds listed
    top: int = Field(default=10, ge=1, le=100)
    # How long the digest of a day waits for every enabled source to be read after the day
    # ended (after the service started, for its start-up catch-up) before it goes out anyway,
    # naming the sources still unread first. At most 12h: the next day's digest is due next.
    wait_for_sources: Duration = timedelta(minutes=30)
    link: HttpUrl | None = None  # one link at the top of the digest (a Grafana dashboard, say)

    @field_validator("wait_for_sources")
    @classmethod
    def _within_half_a_day(cls, value: timedelta) -> timedelta:
        if value > timedelta(hours=12):
            raise ValueError(f"expected at most 12h, got {value.total_seconds() / 3600:g}h")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from monitor.cron import cron_trigger

        try:
            cron_trigger(value)
        except ValueError as exc:
            raise ValueError(
                f"expected a cron expression such as '0 8 * * *', got {value!r} ({exc})"
            ) from None
        return value


class NotifySettings(Model):
    kind: Literal["email", "webhook"]
    to: list[str] = []
    url: HttpUrl | None = None
    # webhook: the whole POST (connecting, sending, the answer) ends within it, however slowly
    # the receiver answers, so a slow receiver cannot stall alerts
    timeout: Duration = timedelta(seconds=10)
    # webhook: also send customers' names, numbers and inquiry subjects (by default a webhook
    # names no customer and its subjects are opaque ids); e-mail notices always name them
    include_customer: bool = False

    @model_validator(mode="after")
    def _destination(self) -> NotifySettings:
        if self.kind == "email" and not self.to:
            raise ValueError("an email notifier needs `to`")
        if self.kind == "webhook" and not self.url:
            raise ValueError("a webhook notifier needs an http(s) `url`")
        return self


class QuietHours(Model):
    """Outside the open hours of `calendar`, notifications of these severities wait."""

    calendar: str
    severities: list[Literal["warning", "critical"]] = ["warning"]


class AlertSettings(Model):
    every: Duration = timedelta(minutes=1)
    notify: list[NotifySettings] = []
    # Defaults match prometheus/rules.yml, so both kinds of alert agree.
    due_soon: Duration | None = None  # None: a quarter of each source's reply target
    stale_intervals: int = Field(default=3, ge=1)  # and at least `stale_min`
    stale_min: Duration = timedelta(minutes=5)
    long_holds_window: Duration = timedelta(minutes=30)
    long_holds_ratio: float = Field(default=0.25, ge=0, le=1)
    long_holds_min_calls: int = Field(default=5, ge=1)
    repeat: Duration | None = None  # re-notify an alert still firing this long after the last
    quiet_hours: QuietHours | None = None


class ClusterSettings(Model):
    """Several `run` instances on one PostgreSQL database share the sources by leases."""

    # How long a source stays with an instance that stopped answering before another takes it.
    lease: Duration = timedelta(seconds=60)
    # How often each instance asks whether a source is due (one small UPDATE per source).
    tick: Duration = timedelta(seconds=5)

    @model_validator(mode="after")
    def _renewable(self) -> ClusterSettings:
        if self.lease < 3 * self.tick or self.lease < timedelta(seconds=3):
            raise ValueError("lease must be at least 3 s and three ticks, to be renewed in time")
        return self


MIN_RETENTION = timedelta(days=14)
EARLIEST_PLAUSIBLE = date(2000, 1, 1)


class PlausibleTimes(Model):
    """The times a record may carry. A year-1 or year-9999 time is junk or an attack (an
    inquiry "open" for 2,000 years alerts forever), so a record dated outside these is rejected
    with its place and reason, like any other bad record."""

    # A record dated before this day (midnight UTC) is rejected.
    earliest: date = EARLIEST_PLAUSIBLE
    # A record dated more than this after the moment it is read is rejected (clocks drift; a
    # PBX or an exporter in the wrong zone is hours off, not days).
    ahead: Duration = timedelta(days=1)

    @field_validator("earliest")
    @classmethod
    def _after_epoch(cls, value: date) -> date:
        if value < date(1970, 1, 1):
            raise ValueError(f"expected 1970-01-01 or later, got {value.isoformat()}")
        return value

    @field_validator("ahead")
    @classmethod
    def _within_a_year(cls, value: timedelta) -> timedelta:
        if value > timedelta(days=366):
            raise ValueError(f"expected at most 366d, got {value.total_seconds() / 86400:g}d")
        return value


class FileSettings(Model):
    """The top level of the file, with sources still as raw mappings (see `load_settings`)."""

    timezone: TimezoneName = "UTC"
    database: DatabaseUrl = "sqlite:///support-monitor.db"
    targets: DefaultTargets = DefaultTargets()
    agents: Agents = Agents()
    calendars: dict[str, CalendarSettings] = {}
    sources: list[dict[str, Any]] = []
    metrics: MetricsSettings = MetricsSettings()
    smtp: SmtpSettings | None = None
    digest: DigestSettings | None = None
    alerts: AlertSettings = AlertSettings()
    cluster: ClusterSettings = ClusterSettings()
    # How long stored events are kept (monitor.store.retention); None keeps everything.
    retention: Duration | None = None
    # Records dated outside these times are rejected (connectors.base.Window).
    plausible_times: PlausibleTimes = PlausibleTimes()

    @field_validator("retention")
    @classmethod
    def _long_enough(cls, value: timedelta | None) -> timedelta | None:
        # The digest compares a day with the same weekday a week before, so purging younger
        # data would quietly empty its comparisons.
        if value is not None and value < MIN_RETENTION:
            days = value.total_seconds() / 86400
            raise ValueError(f"expected at least {MIN_RETENTION.days}d, got {days:g}d")
        return value


@dataclass(frozen=True)
class Settings:
    """The whole validated configuration."""

    file: FileSettings
    sources: tuple[SourceSettings, ...]
    base_dir: Path  # relative paths in the file are relative to the file's folder

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.file.timezone)

    def source(self, name: str) -> SourceSettings:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def targets_for(
        self, source: SourceSettings, channel: Channel | None = None
    ) -> ResolvedTargets:
        """The source's targets: see `resolve_targets` for the layers."""
        return resolve_targets(self.file.targets, channel or channel_of(source), source.targets)


def channel_of(source: SourceSettings) -> Channel:
    """The channel a source's kind measures."""
    from connectors import connector_class

    return connector_class(source.kind).channel


def inquiry_channel_of(source: SourceSettings) -> Channel:
    """The channel of a source's inquiries, as the metrics label them: a phone source's
    inquiries are its missed callers waiting for a callback, on channel `voicemail`."""
    channel = channel_of(source)
    return Channel.VOICEMAIL if channel is Channel.PHONE else channel


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


def read_secret(value: SecretStr | None, file: Path | None, base_dir: Path) -> str | None:
    """A secret given inline (`password`) or as a file (`password_file`), whitespace-trimmed."""
    if value is not None:
        return value.get_secret_value()
    if file is not None:
        return (base_dir / file).read_text(encoding="utf-8").strip()
    return None


def settings_from_mapping(raw: Mapping[str, Any], base_dir: Path) -> Settings:
    """Validate an already-parsed YAML mapping. Raises ConfigError listing every problem."""
    from connectors import CONNECTORS, connector_class

    problems: list[str] = []
    substituted: list[_Substituted] = []
    data = _interpolate(dict(raw), "", problems, substituted)
    try:
        top = FileSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_redacted(problems + _located(exc), substituted)) from None

    sources: list[SourceSettings] = []
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
        sources.append(source)
    problems.extend(_check_alerts(top))
    if problems:
        raise ConfigError(_redacted(problems, substituted))
    return Settings(file=top, sources=tuple(sources), base_dir=base_dir)


def _check_alerts(top: FileSettings) -> list[str]:
    problems = []
    quiet = top.alerts.quiet_hours
    if quiet is not None and quiet.calendar not in top.calendars:
        problems.append(f"alerts.quiet_hours.calendar: no calendar named {quiet.calendar!r}")
    if top.digest is not None and top.digest.to and top.smtp is None:
        problems.append("digest.to: sending the digest needs the `smtp` section")
    for index, notify in enumerate(top.alerts.notify):
        if notify.kind == "email" and top.smtp is None:
            problems.append(f"alerts.notify[{index}]: an email notifier needs the `smtp` section")
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


def load_settings(path: Path) -> Settings:
    """Read and validate the YAML file at `path` (at most MAX_CONFIG_BYTES)."""
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
    return settings_from_mapping(raw, path.resolve().parent)
