"""Who may open the status page: its users, their logins, and slowing down whoever guesses.

The page names customers, so it is private. On loopback (`metrics.listen` on 127.0.0.1, ::1 or
localhost, the default) it is open to the machine, as `/metrics` is. On any other address it
needs a login of `status.users` (whatever address a request comes from: a proxy on the same
machine forwards the world), and with no users configured it is off. `/metrics` and `/healthz`
carry no personal data and never ask.

A login is checked against the user's scrypt hash (monitor.publish.passwords) once; the browser
then holds a random session token (an HttpOnly, SameSite=Strict cookie) for `status.session`.
Sessions live in the process: a restart asks everyone to log in again.

**Guessing is slowed, never served.** Failed logins are counted per client address and per
user name: the first `FREE_FAILURES` cost nothing, then each further attempt must wait twice as
long as the one before (1 s, 2 s, 4 s … up to `MAX_DELAY`), and an attempt that comes too early
is answered 429 with Retry-After without its password being checked (so guessing costs the
guesser time, not our CPU: no thread ever sleeps). Each failure is logged with the client
address and the user name as printable text; counts are forgotten `FORGET` after the last
failure, and a success clears them. The tables are bounded (`MAX_TRACKED`, `MAX_SESSIONS`).
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from monitor.config import Settings, is_loopback, read_secret
from monitor.errors import SupportMonitorError
from monitor.publish.passwords import HashError, PasswordHash, make_hash, parse_hash
from monitor.publish.printable import line

logger = logging.getLogger(__name__)

FREE_FAILURES = 5
MAX_DELAY = timedelta(minutes=15)
FORGET = timedelta(hours=1)
MAX_TRACKED = 10_000
MAX_SESSIONS = 1_000
NAME_LIMIT = 64  # characters of a typed user name kept for the log and the counts


class StatusAccessError(SupportMonitorError):
    """`status.users` cannot be used (a hash unreadable or malformed): `problem` is one line
    naming the key, reported as a config error."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def load_users(settings: Settings) -> dict[str, PasswordHash]:
    """The configured users' hashes, each read from its `${ENV}` value or file."""
    users = {}
    for index, user in enumerate(settings.file.status.users):
        key = "password_hash" if user.password_hash is not None else "password_hash_file"
        where = f"status.users[{index}].{key}"
        try:
            text = read_secret(user.password_hash, user.password_hash_file, settings.base_dir)
        except OSError as exc:
            raise StatusAccessError(f"{where}: cannot read the file ({exc.strerror})") from None
        try:
            users[user.name] = parse_hash(text or "")
        except HashError as exc:
            raise StatusAccessError(f"{where}: {exc}") from None
    return users


@dataclass
class _Failures:
    count: int
    last: datetime
    next_try: datetime
    refused: bool = False  # an attempt was refused since the last failure (and logged)


class Throttle:
    """Failed attempts per key (a client address, a user name) and when the next may come."""

    def __init__(self) -> None:
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def wait(self, keys: tuple[str, ...], now: datetime) -> float:
        """Seconds before any of `keys` may try again (0: now)."""
        waits = [0.0]
        for key in keys:
            found = self._keys.get(key)
            if found is not None and now - found.last < FORGET:
                waits.append((found.next_try - now).total_seconds())
        return max(waits)

    def failed(self, keys: tuple[str, ...], now: datetime) -> int:
        """Count a failure against each key; returns the highest count."""
        counts = []
        for key in keys:
            found = self._keys.pop(key, None)
            count = 1 if found is None or now - found.last >= FORGET else found.count + 1
            extra = count - FREE_FAILURES
            delay = min(timedelta(seconds=2 ** (extra - 1)), MAX_DELAY) if extra > 0 else None
            self._keys[key] = _Failures(count, now, now + delay if delay else now)
            counts.append(count)
        while len(self._keys) > MAX_TRACKED:
            self._keys.popitem(last=False)  # the least recently failed
        return max(counts)

    def first_refusal(self, keys: tuple[str, ...]) -> bool:
        """Whether this is the first attempt refused since the keys' last failure: only that one
        is logged, so hammering a locked door cannot flood the log."""
        first = False
        for key in keys:
            found = self._keys.get(key)
            if found is not None and not found.refused:
                found.refused = first = True
        return first

    def clear(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self._keys.pop(key, None)


Outcome = Literal["ok", "wrong", "throttled"]


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    token: str | None = None  # the session's, when ok
    retry_after: int = 0  # seconds, when throttled


class Gate:
    """The status page's door: whether it asks, the logins, and the sessions."""

    def __init__(
        self,
        *,
        listen_host: str,
        users: dict[str, PasswordHash],
        session: timedelta,
        now: Callable[[], datetime],
    ) -> None:
        self.required = not is_loopback(listen_host)
        self.users = users
        self.session = session
        self.now = now
        self.throttle = Throttle()
        self._sessions: OrderedDict[str, tuple[str, datetime]] = OrderedDict()
        self._lock = threading.Lock()
        # Checked for unknown names, so that a wrong name costs what a wrong password does and
        # timing does not tell which names exist.
        first = next(iter(users.values()), None)
        self._decoy = (
            None
            if first is None
            else parse_hash(make_hash(secrets.token_hex(8), n=first.n, r=first.r, p=first.p))
        )

    @classmethod
    def from_settings(cls, settings: Settings, now: Callable[[], datetime]) -> Gate:
        host = settings.file.metrics.listen.rpartition(":")[0]
        return cls(
            listen_host=host,
            users=load_users(settings),
            session=settings.file.status.session,
            now=now,
        )

    @property
    def closed(self) -> bool:
        """A login is needed and nobody can log in: the page is off."""
        return self.required and not self.users

    def user(self, token: str | None) -> str | None:
        """Who holds session `token` (None: nobody, or it has expired)."""
        if not token:
            return None
        with self._lock:
            found = self._sessions.get(token)
            if found is None:
                return None
            name, until = found
            if self.now() >= until or name not in self.users:
                del self._sessions[token]
                return None
            return name

    def allows(self, token: str | None) -> bool:
        return not self.required or self.user(token) is not None

    def log_in(self, name: str, password: str, client: str) -> Attempt:
        typed = line(name[:NAME_LIMIT], NAME_LIMIT)
        keys = (f"client {client}", f"user {typed}")
        with self._lock:
            wait = self.throttle.wait(keys, self.now())
            first = wait > 0 and self.throttle.first_refusal(keys)
        if wait > 0:
            seconds = math.ceil(wait)
            if first:
                logger.warning(
                    "status page: login as %r from %s refused: too many failures, retry in %d s",
                    typed, client, seconds,
                )  # fmt: skip
            return Attempt("throttled", retry_after=seconds)
        known = self.users.get(name)
        checked = known or self._decoy
        right = checked is not None and checked.matches(password) and known is not None
        now = self.now()
        with self._lock:
            if not right:
                count = self.throttle.failed(keys, now)
                logger.warning(
                    "status page: failed login as %r from %s (%d in a row)", typed, client, count
                )
                return Attempt("wrong")
            self.throttle.clear(keys)
            token = secrets.token_urlsafe(32)
            self._sessions[token] = (name, now + self.session)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)  # the oldest login
        logger.info("status page: %s logged in from %s", name, client)
        return Attempt("ok", token=token)

    def log_out(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(token, None)
