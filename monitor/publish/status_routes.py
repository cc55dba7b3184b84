"""The status page's routes on `metrics.listen`: `/`, `/login`, `/logout`, `/items`,
`/items.csv` and `/digest`, behind the gate of monitor.publish.status_access.

- `/` (and `/?wall=1`, large type for a wall screen) is monitor.publish.status_page's page;
- `/digest?date=D` the digest of day D as it stands now (what `digest --date D --preview` writes);
- `/items?date=D` and `/items.csv?date=D` the rows of `report --items` for day D, as a page and
  as CSV (D is today by default).

Every page is HTML rendered from `templates/status*.html` (autoescaped), with no script: it
reloads itself with a meta refresh. Its one style sheet is inline and allowed by its hash in the
Content-Security-Policy, so the policy can forbid everything else (`default-src 'none'`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date, datetime, timedelta
from functools import cache
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from markupsafe import Markup
from sqlalchemy import Engine

from monitor.config import Settings, is_loopback
from monitor.publish.printable import line
from monitor.publish.status_access import Gate
from monitor.publish.status_page import StatusPage, build_status
from monitor.publish.templating import render, template_dir
from monitor.publish.words import duration_text
from monitor.store.figures import day_bounds

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
PATHS = ("/", "/login", "/logout", "/items", "/items.csv", "/digest")
COOKIE = "support_monitor_session"
MAX_FORM = 4096  # bytes of a login form read at most
ITEMS_SHOWN = 2000  # rows of the items page (the CSV holds them all)
# Scripts, frames, plugins, other origins: nothing but the page's own inline style sheet.
BASE_POLICY = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"
# The digest is mail HTML, styled inline as mail clients need: its styles may be inline, and
# nothing else (no script, no image, no form).
DIGEST_POLICY = f"{BASE_POLICY}; style-src 'unsafe-inline'; form-action 'none'"


@cache
def style_sheet() -> tuple[Markup, str]:
    """The page's CSS and its `'sha256-…'` source for the policy."""
    css = (template_dir() / "status.css").read_text(encoding="utf-8").strip()
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode()
    return Markup(css), f"'sha256-{digest}'"


def render_status(page: StatusPage) -> str:
    return render("status.html", p=page, css=style_sheet()[0], wall=page.wall)


def page_policy() -> str:
    return f"{BASE_POLICY}; style-src {style_sheet()[1]}; form-action 'self'"


def security_headers(policy: str = BASE_POLICY) -> list[tuple[str, str]]:
    """The headers every response carries (a page sets its own policy)."""
    return [
        ("Content-Security-Policy", policy),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ]


class StatusApp:
    """The WSGI handler of the status page's paths."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        gate: Gate,
        now: Callable[[], datetime],
        started_at: datetime | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.gate = gate
        self.now = now
        self.started_at = started_at  # a source not read since is named "not read yet"

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        query = parse_qs(environ.get("QUERY_STRING", ""), max_num_fields=10)
        token = _cookie(environ)
        if not self.gate.required and not _loopback_host(environ):
            # Open on loopback means open to this machine: a page of another site whose name
            # resolves to 127.0.0.1 (DNS rebinding) must not read it through a browser here.
            return _text(
                start_response, "403 Forbidden", "the status page answers loopback names\n"
            )
        if path == "/login":
            if method == "POST":
                return self._log_in(environ, start_response)
            return self._login_page(start_response, next_=_safe_next(_one(query, "next")))
        if path == "/logout" and method == "POST":
            self.gate.log_out(token)
            return _redirect(start_response, "/login", clear=True)
        if self.gate.closed:
            return self._login_page(start_response, status="403 Forbidden", off=True)
        if not self.gate.allows(token):
            here = path + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
            return _redirect(start_response, f"/login?next={_quote(_safe_next(here))}")
        try:
            day = self._day(_one(query, "date"))
        except ValueError:
            return _text(start_response, "400 Bad Request", "date: expected YYYY-MM-DD\n")
        if path == "/":
            return self._status(start_response, wall=_one(query, "wall") == "1", token=token)
        if path == "/digest":
            return self._digest(start_response, day)
        if path in ("/items", "/items.csv"):
            return self._items(start_response, day, csv=path.endswith(".csv"))
        return _text(start_response, "405 Method Not Allowed", "method not allowed\n")

    def _day(self, text: str) -> date:
        today = self.now().astimezone(self.settings.timezone).date()
        if not text:
            return today
        day = date.fromisoformat(text)
        if day > today:
            raise ValueError(text)
        return day

    def _status(
        self, start_response: StartResponse, *, wall: bool, token: str | None
    ) -> list[bytes]:
        status = self.settings.file.status
        page = build_status(
            self.engine, self.settings, self.now(), top=status.top, started_at=self.started_at
        )
        user = self.gate.user(token) if self.gate.required else None
        page = replace(page, wall=wall, user=user)
        return _html(start_response, "200 OK", render_status(page), page_policy())

    def _digest(self, start_response: StartResponse, day: date) -> list[bytes]:
        from monitor.publish.digest.build import build_digest
        from monitor.publish.digest.mail import render as render_digest

        digest = self.settings.file.digest
        top = digest.top if digest is not None else 10
        html = render_digest(build_digest(self.engine, self.settings, day, self.now(), top)).html
        return _html(start_response, "200 OK", html, DIGEST_POLICY)

    def _items(self, start_response: StartResponse, day: date, *, csv: bool) -> list[bytes]:
        from monitor.publish import report_items
        from monitor.store.breakdown import read_period

        now = self.now()
        since, until = day_bounds(day, self.settings.timezone)
        period = read_period(self.engine, self.settings, since, until, now)
        rows = report_items.item_rows(period, report_items.Options.for_settings(self.settings))
        if csv:
            start_response(
                "200 OK",
                [
                    ("Content-Type", "text/csv; charset=utf-8"),
                    ("Content-Disposition", f'attachment; filename="items-{day}.csv"'),
                    ("Cache-Control", "no-store"),
                    *security_headers(),
                ],
            )
            return [report_items.render_csv(rows).encode("utf-8")]
        shown = [
            {
                **row,
                "waited": duration_text(row["calendar_seconds"]),
                "business": duration_text(row["business_seconds"]),
            }
            for row in rows[:ITEMS_SHOWN]
        ]
        zone = self.settings.timezone
        body = render(
            "status_items.html",
            rows=shown,
            shown=len(shown),
            counts=report_items.counts_text(rows),
            day=day,
            next_day=day + timedelta(days=1),
            day_text=f"{day:%A} {day.day} {day:%B %Y}",
            generated=f"{now.astimezone(zone):%H:%M:%S %Z}",
            css=style_sheet()[0],
            wall=False,
        )
        return _html(start_response, "200 OK", body, page_policy())

    def _login_page(
        self,
        start_response: StartResponse,
        *,
        status: str = "200 OK",
        next_: str = "/",
        error: str = "",
        off: bool = False,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> list[bytes]:
        body = render(
            "status_login.html", next=next_, error=error, off=off, css=style_sheet()[0], wall=False
        )
        return _html(start_response, status, body, page_policy(), extra)

    def _log_in(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if self.gate.closed:
            return self._login_page(start_response, status="403 Forbidden", off=True)
        if not _same_origin(environ):
            return _text(start_response, "403 Forbidden", "cross-site login refused\n")
        form = _form(environ)
        name, password = _one(form, "user"), _one(form, "password")
        next_ = _safe_next(_one(form, "next"))
        client = str(environ.get("REMOTE_ADDR", "?"))
        attempt = self.gate.log_in(name, password, client)
        if attempt.outcome == "throttled":
            return self._login_page(
                start_response,
                status="429 Too Many Requests",
                next_=next_,
                error=f"Too many failed logins: try again in {attempt.retry_after} s.",
                extra=(("Retry-After", str(attempt.retry_after)),),
            )
        if attempt.outcome == "wrong" or attempt.token is None:
            return self._login_page(
                start_response,
                status="401 Unauthorized",
                next_=next_,
                error="Wrong user name or password.",
            )
        max_age = int(self.gate.session.total_seconds())
        cookie = f"{COOKIE}={attempt.token}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict"
        return _redirect(start_response, next_, cookie=cookie)


def _one(query: dict[str, list[str]], key: str) -> str:
    values = query.get(key) or [""]
    return values[0]


def _cookie(environ: dict[str, Any]) -> str | None:
    try:
        jar = SimpleCookie(str(environ.get("HTTP_COOKIE", ""))[:4096])
    except CookieError:
        return None
    found = jar.get(COOKIE)
    return found.value if found is not None else None


def _form(environ: dict[str, Any]) -> dict[str, list[str]]:
    """The url-encoded form of a POST, at most MAX_FORM bytes of it."""
    try:
        length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_FORM)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    return parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)


def _loopback_host(environ: dict[str, Any]) -> bool:
    """The request names this machine by a loopback name or address in its Host header."""
    host = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "")
    name = urlsplit(f"//{host}").hostname or ""
    return is_loopback(name)


def _same_origin(environ: dict[str, Any]) -> bool:
    """A form posted from our own page: its Origin (when the browser sends one) is our host."""
    origin: str | None = environ.get("HTTP_ORIGIN")
    if not origin or origin == "null":
        return origin is None
    return bool(urlsplit(origin).netloc == str(environ.get("HTTP_HOST", "")))


def _safe_next(target: str) -> str:
    """Where to go after logging in: one of our own pages, never another site."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path not in PATHS or parts.path == "/login":
        return "/"
    if any(ch in target for ch in "\r\n\\"):
        return "/"
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _quote(target: str) -> str:
    from urllib.parse import quote

    return quote(target, safe="")


def _html(
    start_response: StartResponse,
    status: str,
    body: str,
    policy: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "no-store"),
            *security_headers(policy),
            *extra,
        ],
    )
    return [body.encode("utf-8")]


def _text(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), *security_headers()])
    return [line(body, 200).encode("utf-8") + b"\n"]


def _redirect(
    start_response: StartResponse, target: str, *, cookie: str = "", clear: bool = False
) -> list[bytes]:
    headers = [("Location", target), ("Cache-Control", "no-store"), *security_headers()]
    if cookie:
        headers.append(("Set-Cookie", cookie))
    if clear:
        headers.append(("Set-Cookie", f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"))
    start_response("303 See Other", headers)
    return [b""]
