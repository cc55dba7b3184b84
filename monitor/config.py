"""The settings: validated, frozen models of the configuration file.

Strict because a monitor that silently ignores a misspelt `hold_max` measures the wrong thing
for months: unknown keys are errors (`extra="forbid"`), and every value is checked where it is
declared. Reading a file into these models is `monitor.config_file`'s job; a source's own keys
are declared by its kind's settings model (a subclass of `SourceSettings`, beside its connector,
with the channel it measures), so this module knows no connector and imports none.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from email.errors import HeaderParseError
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.measure.events import Channel, Stage

if TYPE_CHECKING:
    from email.headerregistry import Address, HeaderRegistry

    from sqlalchemy.engine import URL

# `run`, `poll` and `check` refuse a config without sources with this.
NOTHING_TO_MONITOR = (
    "nothing to monitor: no source is configured (add one under `sources:`; "
    "`support-monitor init` writes a starter config)"
)


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
    from sqlalchemy.engine import URL, make_url  # imported when needed: see parse_database_url
    from sqlalchemy.exc import ArgumentError

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


def _check_database_url(value: object, info: ValidationInfo) -> str:
    """A SQLAlchemy URL whose parts are where they belong. A password holding `@`, `/`, `?`
    or `#` unencoded makes the parser take part of it for the host (which would then be shown
    in messages and sent to the resolver), so it is refused here, before anything connects.

    Loaded with the context `{DATABASE_LATER: True}` the settings take any string here, and
    the caller checks it with `parse_database_url` before it opens the store: SQLAlchemy is
    imported only then (a fifth of a second on a small machine), which `poll` spends reading
    its first source in a child process."""
    if not isinstance(value, str):
        raise ValueError("expected a database URL such as sqlite:///support-monitor.db")
    if not (isinstance(info.context, dict) and info.context.get(DATABASE_LATER)):
        parse_database_url(value)
    return value


def parse_database_url(value: str) -> None:
    """ValueError saying what is wrong with a database URL, as loading the settings says it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

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


# The validation context's key that leaves the database URL's check to `parse_database_url`.
DATABASE_LATER = "database_later"


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


@functools.cache
def _headers() -> HeaderRegistry:
    # Imported when an address is checked: the `email` header machinery is a part of every
    # command's start-up otherwise, and most configs name no address.
    from email.headerregistry import HeaderRegistry

    return HeaderRegistry()


def _check_mailbox(value: object) -> str:
    """One e-mail address (`lead@example.com` or `Lead <lead@example.com>`), parsed by the
    same `email` package that writes the messages: what it cannot put in a To: or From:
    header fails here, not at the first digest or alert."""
    expected = "expected one e-mail address such as lead@example.com or 'Lead <lead@example.com>'"
    if not isinstance(value, str):
        raise ValueError(expected)
    addresses: tuple[Address, ...] = ()
    try:
        if value.isprintable():
            addresses = tuple(getattr(_headers()("to", value), "addresses", ()))
    except (ValueError, IndexError, HeaderParseError):
        pass
    if len(addresses) != 1 or not addresses[0].username or not addresses[0].domain:
        raise ValueError(f"{expected}, got {value!r}")
    return value


Mailbox = Annotated[str, BeforeValidator(_check_mailbox)]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("expected a duration longer than 0s (a timeout of 0 fails every exchange)")
    return value


# A deadline of a network exchange: 0 would make every exchange fail at once.
Timeout = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]


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

    @classmethod
    def channels(cls) -> list[Channel]:
        """The channels that have a section here."""
        return [c for c in Channel if c.value in cls.model_fields]


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


class TeamSettings(Model):
    """One team of `teams:`: the people in it, by any identifier a source gives for them (an
    e-mail address, a Slack user id or e-mail, a queue member such as `Agent/1001` or
    `PJSIP/1001`, a name). An inquiry or call one of them answered counts for the team.

    An entry is one agent: an identifier, or a list of the identifiers of one person on
    different channels (`["Ann Smith", ann@example.com, "Agent/1001"]`), the first naming
    them in reports."""

    agents: list[str | list[str]] = []

    @field_validator("agents")
    @classmethod
    def _named(cls, values: list[str | list[str]]) -> list[str | list[str]]:
        for value in values:
            names = [value] if isinstance(value, str) else value
            if not names or any(not " ".join(name.split()) for name in names):
                raise ValueError("an agent cannot be empty")
        return values

    def members(self) -> list[tuple[str, ...]]:
        """Each agent as the identifiers that are theirs, the first naming them."""
        return [
            tuple(" ".join(name.split()) for name in ([v] if isinstance(v, str) else v))
            for v in self.agents
        ]


class ReportSettings(Model):
    # Reports and digests break figures down by team; per agent too only when this is true
    # (many teams measure teams, not people).
    agents: bool = False


# A team's name: shown in reports and digests (never a metric label).
TEAM_NAME = r"^[A-Za-z0-9][A-Za-z0-9 _.&'-]{0,62}$"


class HolidaySettings(Model):
    """Public holidays from the `holidays` package. An unknown country or subdivision is an
    error when the file is loaded, not when a calendar is first built (which every command
    that measures does: `run` would start and then fail)."""

    country: str
    subdivision: str | None = None

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        code = value.strip().upper()
        if _holiday_subdivisions(code) is None:
            raise ValueError(
                f"no holiday data for country {value!r}: expected an ISO 3166 code the "
                "`holidays` package knows, such as GB, US, DE or FR"
            )
        return code

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, value: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        known = _holiday_subdivisions(country) if country else None
        if value is None or known is None:  # no subdivision, or the country is the error
            return value
        for code in known:
            if code.upper() == value.strip().upper():
                return code
        listed = ", ".join(known[:40]) + (", ..." if len(known) > 40 else "")
        raise ValueError(
            f"{country} has no holiday subdivision {value!r}"
            + (f" (its subdivisions: {listed})" if known else " (it has no subdivisions)")
        )


def _holiday_subdivisions(country: str) -> list[str] | None:
    """The subdivision codes of `country` as the `holidays` package knows them; None when it has
    no data for that country. Asked of the package the way a calendar asks it (imported here
    only when a calendar has holidays: its import costs tens of milliseconds)."""
    import holidays as holiday_data

    try:
        return list(holiday_data.country_holidays(country).subdivisions)
    except NotImplementedError:  # how `holidays` reports an unknown country
        return None


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


MAX_NAME = 63
_NAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_.-")


def _check_name(value: str) -> str:
    """The naming rule of sources (their `source` label), said as a sentence, not a pattern."""
    rule = (
        f"a source name is 1 to {MAX_NAME} letters, digits, '-', '_' or '.', starting with a "
        "letter or a digit (it is the `source` label of every metric)"
    )
    if not value:
        raise ValueError(f"{rule}; this one is empty")
    if len(value) > MAX_NAME:
        raise ValueError(f"{rule}; this one has {len(value)} characters")
    if not value[0].isascii() or not value[0].isalnum():
        raise ValueError(f"{rule}; this one starts with {value[0]!r}")
    wrong = next((ch for ch in value if ch not in _NAME_CHARACTERS), None)
    if wrong is not None:
        what = "a space" if wrong == " " else repr(wrong)
        raise ValueError(f"{rule}; {value!r} has {what}")
    return value


def parse_objective(value: object) -> Decimal:
    """`95%` or `99.5 %` (a percentage), or a ratio such as 0.95, as an exact ratio strictly
    between 0 and 1 (exact: the error budget, 1 - objective, is written into PromQL)."""
    if isinstance(value, bool):
        raise ValueError("expected a percentage such as 95%")
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        number = Decimal(text.removesuffix("%").strip())
    except InvalidOperation:
        raise ValueError(f"expected a percentage such as 95%, got {value!r}") from None
    if not percent and number >= 1:
        raise ValueError(f"expected a percentage such as 95% (or a ratio such as 0.95), got {text}")
    ratio = number / 100 if percent else number
    if not ratio.is_finite() or not 0 < ratio < 1:
        raise ValueError(f"expected an objective above 0% and below 100%, got {text}")
    return ratio.normalize()


Objective = Annotated[Decimal, BeforeValidator(parse_objective)]
SliName = Literal["replies", "holds", "callbacks"]
# The SLO window: long enough for the 3-day ticket window, short enough for Prometheus to keep.
MIN_SLO_WINDOW, MAX_SLO_WINDOW = timedelta(days=3), timedelta(days=366)


class SloSettings(Model):
    """A service-level objective: the share of `sli` events that must be good over `window`
    (`support-monitor slo` writes its rules; docs/slo.md)."""

    objective: Objective
    window: Duration = timedelta(days=28)
    # What is measured: replies (inquiries answered within the reply target), holds (calls
    # answered within hold_warn), callbacks (missed callers called back within the target).
    # Default: the one of the source's (or the section's) channel.
    sli: SliName | None = None
    # Count only the events of the open hours of this calendar.
    during: str | None = None

    @field_validator("window")
    @classmethod
    def _window(cls, value: timedelta) -> timedelta:
        if not MIN_SLO_WINDOW <= value <= MAX_SLO_WINDOW:
            raise ValueError("expected a window from 3d to 366d (28d is usual)")
        if value.total_seconds() % 3600:
            raise ValueError("expected a whole number of hours, such as 28d or 30d")
        return value


# `slo:` takes one objective or a list (a phone source may have holds and callbacks).
SloList = Annotated[
    list[SloSettings], BeforeValidator(lambda v: [v] if isinstance(v, Mapping) else v)
]


class SourceSettings(Model):
    """Keys every source has; a connector's own settings model extends this and declares the
    channel its kind measures (`channel`), which decides its targets and labels."""

    channel: ClassVar[Channel]

    name: Annotated[str, AfterValidator(_check_name)]
    kind: str
    stage: Stage = Stage.EXPERIENCE
    calendar: str | None = None
    every: Duration = timedelta(minutes=5)
    targets: Targets = Targets()
    enabled: bool = True
    # The team of `teams:` the source belongs to: its open inquiries and unanswered calls (and
    # what nobody on a team answered) count for that team.
    team: str | None = None
    slo: SloList = []


class PhoneSettings(SourceSettings):
    """Keys of the sources whose calls carry a queue (the phone kinds).

    The `queue` label comes from the log, so it is bounded: with `queues`, exactly those
    queues are exported under their own name (a mapping renames them: `{"600": Sales}`); without
    it, the first `max_queues` names met. Every other queue, and any name that looks like an
    e-mail address or a phone number, is stored and exported as `other`."""

    channel: ClassVar[Channel] = Channel.PHONE
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


STATUS_USER_NAME = r"^[A-Za-z0-9_.@+-]{1,64}$"


class StatusUser(Model):
    """One person who may open the status page: a name and an scrypt password hash
    (monitor.publish.passwords), inline (`${ENV}` works) or in a file."""

    name: str = Field(pattern=STATUS_USER_NAME)
    password_hash: SecretStr | None = None
    password_hash_file: Path | None = None

    @model_validator(mode="after")
    def _one_hash(self) -> StatusUser:
        if (self.password_hash is None) == (self.password_hash_file is None):
            raise ValueError("give exactly one of password_hash and password_hash_file")
        return self


class StatusSettings(Model):
    """The live status page at `/`: who may open it when `metrics.listen` is not loopback."""

    users: list[StatusUser] = []
    # How long a login lasts (a wall screen stays logged in this long).
    session: Duration = timedelta(days=7)
    # Open inquiries and waiting callers listed by name (the rest are counted).
    top: int = Field(default=10, ge=1, le=100)

    @field_validator("users")
    @classmethod
    def _distinct(cls, users: list[StatusUser]) -> list[StatusUser]:
        names = [u.name for u in users]
        if len(set(names)) != len(names):
            raise ValueError("each user name once")
        return users


class SmtpSettings(Model):
    host: str
    port: Port = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    sender: Mailbox
    ca_file: Path | None = None
    timeout: Timeout = timedelta(seconds=30)

    @model_validator(mode="after")
    def _plaintext_only_on_loopback(self) -> SmtpSettings:
        # A password sent in clear over a network is a leak waiting to happen.
        if self.security == "none" and not is_loopback(self.host):
            raise ValueError("security: none is only allowed for a server on loopback")
        return self


class DigestSettings(Model):
    schedule: str = "0 8 * * *"  # cron (minute hour day month weekday) in `timezone`
    to: list[Mailbox] = []
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
    """Keys every notifier has; a notifier's own settings model (beside its class, in
    monitor.publish.notifiers) extends this with where notices go, and says whether it sends
    over the `smtp:` section (`needs_smtp`)."""

    needs_smtp: ClassVar[bool] = False
    kind: str

    def names_customers(self) -> bool:
        """Whether its notices name customers (numbers, names, inquiry subjects). Not by
        default: a notice that may leave the support team carries no customer identifier."""
        return False


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


# The channels an objective of a whole channel can be about: the `channel` label of the
# inquiry metrics (email, chat, voicemail, answering_service), and phone for the calls.
SloChannel = Literal["email", "chat", "phone", "voicemail", "answering_service"]


class FileSettings(Model):
    """The top level of the file, with sources still as raw mappings (see `load_settings`)."""

    timezone: TimezoneName = "UTC"
    database: DatabaseUrl = "sqlite:///support-monitor.db"
    targets: DefaultTargets = DefaultTargets()
    agents: Agents = Agents()
    teams: dict[str, TeamSettings] = {}
    reports: ReportSettings = ReportSettings()
    calendars: dict[str, CalendarSettings] = {}
    sources: list[dict[str, Any]] = []
    metrics: MetricsSettings = MetricsSettings()
    status: StatusSettings = StatusSettings()
    smtp: SmtpSettings | None = None
    digest: DigestSettings | None = None
    alerts: AlertSettings = AlertSettings()
    cluster: ClusterSettings = ClusterSettings()
    # How long stored events are kept (monitor.store.retention); None keeps everything.
    retention: Duration | None = None
    # Records dated outside these times are rejected (connectors.base.Window).
    plausible_times: PlausibleTimes = PlausibleTimes()
    # Service-level objectives of a whole channel (every source on it); a source has its own.
    slo: dict[SloChannel, SloList] = {}

    @field_validator("teams")
    @classmethod
    def _team_names(cls, teams: dict[str, TeamSettings]) -> dict[str, TeamSettings]:
        for name in teams:
            if not re.match(TEAM_NAME, str(name)):
                raise ValueError(
                    f"team name {name!r}: letters, digits, spaces and _.&'- (at most 63)"
                )
        return teams

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
    """The channel a source's kind measures, as its settings model declares it."""
    return type(source).channel


def inquiry_channel_of(source: SourceSettings) -> Channel:
    """The channel of a source's inquiries, as the metrics label them: a phone source's
    inquiries are its missed callers waiting for a callback, on channel `voicemail`."""
    channel = channel_of(source)
    return Channel.VOICEMAIL if channel is Channel.PHONE else channel


def read_secret(value: SecretStr | None, file: Path | None, base_dir: Path) -> str | None:
    """A secret given inline (`password`) or as a file (`password_file`), whitespace-trimmed."""
    if value is not None:
        return value.get_secret_value()
    if file is not None:
        return (base_dir / file).read_text(encoding="utf-8").strip()
    return None


# What each SLI measures, and on which channels: a source's own channel (a phone source's
# callbacks are its missed callers), or the key of a channel's section.
SLI_CHANNELS: dict[str, frozenset[str]] = {
    "replies": frozenset({"email", "chat"}),
    "holds": frozenset({"phone"}),
    "callbacks": frozenset({"phone", "answering_service", "voicemail"}),
}
# The SLI of a channel when `sli` is not given.
DEFAULT_SLI = {
    "email": "replies",
    "chat": "replies",
    "phone": "holds",
    "answering_service": "callbacks",
    "voicemail": "callbacks",
}


@dataclass(frozen=True)
class Slo:
    """One objective, resolved: its id (`<source or channel>-<sli>`, the `slo` label of its
    rules), what it is about (`source` or `channel` and its name) and its settings."""

    id: str
    scope: Literal["source", "channel"]
    name: str
    sli: str
    objective: Decimal
    window: timedelta
    during: str | None
    where: str  # the key path in the file, for messages


def slos(settings: Settings) -> list[Slo]:
    """Every objective of the configuration, those of whole channels first."""
    return _slos(settings.file, settings.sources)


def _slos(top: FileSettings, sources: Iterable[SourceSettings]) -> list[Slo]:
    found: list[Slo] = []
    for channel, entries in top.slo.items():
        for index, entry in enumerate(entries):
            sli = entry.sli or DEFAULT_SLI[channel]
            where = f"slo.{channel}[{index}]"
            found.append(_slo("channel", channel, sli, entry, where))
    for position, source in enumerate(sources):
        for index, entry in enumerate(source.slo):
            sli = entry.sli or DEFAULT_SLI[channel_of(source).value]
            where = f"sources[{position}].slo[{index}]"
            found.append(_slo("source", source.name, sli, entry, where))
    return found


def _slo(
    scope: Literal["source", "channel"], name: str, sli: str, entry: SloSettings, where: str
) -> Slo:
    return Slo(
        id=f"{name}-{sli}",
        scope=scope,
        name=name,
        sli=sli,
        objective=entry.objective,
        window=entry.window,
        during=entry.during,
        where=where,
    )


def check_slos(top: FileSettings, sources: list[SourceSettings]) -> list[str]:
    """The problems of the objectives: an SLI the channel does not measure, an unknown
    calendar, the same objective twice (config_file reports them with the others)."""
    problems = []
    channels = {s.name: channel_of(s).value for s in sources}
    seen: dict[str, str] = {}
    for slo in _slos(top, sources):
        channel = slo.name if slo.scope == "channel" else channels[slo.name]
        if channel not in SLI_CHANNELS[slo.sli]:
            fits = ", ".join(sorted(k for k, v in SLI_CHANNELS.items() if channel in v))
            problems.append(
                f"{slo.where}.sli: {slo.sli} is not measured on channel {channel} (use {fits})"
            )
        elif slo.scope == "channel" and slo.sli != DEFAULT_SLI[channel]:
            problems.append(
                f"{slo.where}.sli: the {slo.sli} of a whole channel are under "
                f"slo.{_channel_of_sli(slo.sli)}"
            )
        if slo.during is not None and slo.during not in top.calendars:
            problems.append(f"{slo.where}.during: no calendar named {slo.during!r}")
        if slo.id in seen:
            problems.append(f"{slo.where}: {slo.id!r} is already defined at {seen[slo.id]}")
        seen.setdefault(slo.id, slo.where)
    return problems


def _channel_of_sli(sli: str) -> str:
    return {"replies": "email or slo.chat", "holds": "phone", "callbacks": "voicemail"}[sli]
