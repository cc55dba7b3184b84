"""The status page served by `run`'s HTTP server, over real sockets.

It names customers, so beyond loopback it asks for a login of `status.users` (even from
127.0.0.1: a proxy on the machine forwards the world), slows down guessing without ever
sleeping (the clock is pinned and moved by hand), and every response of the server carries a
strict Content-Security-Policy and `X-Frame-Options: DENY`."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.publish import report_items
from monitor.publish.exporter import registry_for
from monitor.publish.passwords import make_hash
from monitor.publish.server import make_app, serve
from monitor.publish.status_access import FREE_FAILURES, Gate
from monitor.publish.status_routes import COOKIE, StatusApp
from monitor.store.breakdown import read_period
from monitor.store.figures import day_bounds
from tests.digest_day import config
from tests.servers import free_port
from tests.status_day import LATE_SUBJECT, NOW, build_moment

PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str
    cookies: list[str]


@dataclass
class Site:
    port: int
    clock: Clock
    settings: Settings
    engine: Engine

    def ask(
        self, method: str, path: str, form: dict[str, str] | None = None, **headers: str
    ) -> Reply:
        """One request through 127.0.0.1, whatever address the server listens on."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        body = urlencode(form).encode() if form is not None else None
        sent = {"Host": f"127.0.0.1:{self.port}", **headers}
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=sent)
        answer = conn.getresponse()
        reply = Reply(
            answer.status,
            {k.lower(): v for k, v in answer.getheaders()},
            answer.read().decode("utf-8", "replace"),
            answer.headers.get_all("Set-Cookie") or [],
        )
        conn.close()
        return reply

    def log_in(self, user: str, password: str, **headers: str) -> Reply:
        return self.ask("POST", "/login", {"user": user, "password": password}, **headers)


def start(tmp_path: Path, database: str, listen_host: str, **top: Any) -> Iterator[Site]:
    port = free_port()
    settings, engine = build_moment(
        tmp_path, database, metrics={"listen": f"{listen_host}:{port}"}, **top
    )
    clock = Clock(NOW)
    gate = Gate.from_settings(settings, clock)
    status = StatusApp(engine, settings, gate, clock)
    app = make_app(registry_for(engine, settings, clock), engine, clock, status_app=status)
    server, thread = serve(settings.file.metrics.listen, app)
    try:
        yield Site(port, clock, settings, engine)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def everywhere(tmp_path: Path, sqlite_url: str) -> Iterator[Site]:
    """Listening on 0.0.0.0, with the user `lead`."""
    (tmp_path / "lead.hash").write_text(make_hash(PASSWORD, n=2**10) + "\n")
    users = [{"name": "lead", "password_hash_file": "lead.hash"}]
    yield from start(tmp_path, sqlite_url, "0.0.0.0", status={"users": users})


def session_cookie(reply: Reply) -> str:
    (cookie,) = [c for c in reply.cookies if c.startswith(f"{COOKIE}=")]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    return cookie.split(";")[0]


def test_beyond_loopback_the_page_asks_for_a_login_even_from_127_0_0_1(everywhere: Site) -> None:
    for path in ("/", "/?wall=1", "/items", "/items.csv", "/digest"):
        reply = everywhere.ask("GET", path)
        assert reply.status == 303, path
        assert reply.headers["location"].startswith("/login?next=")
        assert "Brien" not in reply.body
    # /metrics and /healthz carry no personal data and never ask
    assert everywhere.ask("GET", "/metrics").status == 200
    assert everywhere.ask("GET", "/healthz").status == 200
    login = everywhere.ask("GET", "/login?next=%2F%3Fwall%3D1")
    assert login.status == 200 and 'name="password"' in login.body
    assert 'value="/?wall=1"' in login.body


def test_a_login_opens_the_page_until_it_expires_or_logs_out(everywhere: Site) -> None:
    reply = everywhere.ask(
        "POST", "/login", {"user": "lead", "password": PASSWORD, "next": "/?wall=1"}
    )
    assert (reply.status, reply.headers["location"]) == (303, "/?wall=1")
    cookie = session_cookie(reply)
    page = everywhere.ask("GET", "/?wall=1", Cookie=cookie)
    assert page.status == 200
    assert "O&#39;Brien &amp; Sons" in page.body and 'class="wall"' in page.body
    assert "lead" in page.body and 'http-equiv="refresh" content="15"' in page.body
    # a session lasts `status.session` (7 days by default)
    everywhere.clock.at = NOW + timedelta(days=7)
    assert everywhere.ask("GET", "/", Cookie=cookie).status == 303
    cookie = session_cookie(everywhere.log_in("lead", PASSWORD))
    out = everywhere.ask("POST", "/logout", {}, Cookie=cookie)
    assert out.status == 303 and any("Max-Age=0" in c for c in out.cookies)
    assert everywhere.ask("GET", "/", Cookie=cookie).status == 303
    assert everywhere.ask("GET", "/", Cookie=f"{COOKIE}=guessed").status == 303


def test_guessing_is_slowed_logged_and_never_checked_while_it_must_wait(
    everywhere: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="monitor.publish.status_access")
    for _ in range(FREE_FAILURES):
        assert everywhere.log_in("lead", "guess").status == 401
    assert everywhere.log_in("lead", "guess").status == 401  # the first to cost: wait 1 s
    refused = everywhere.log_in("lead", PASSWORD)  # too early: refused unchecked
    assert refused.status == 429 and refused.headers["retry-after"] == "1"
    assert everywhere.log_in("lead", PASSWORD).status == 429  # refused again, not logged again
    everywhere.clock.at += timedelta(seconds=1)
    assert everywhere.log_in("lead", "guess").status == 401  # now 2 s
    everywhere.clock.at += timedelta(seconds=1)
    assert everywhere.log_in("lead", PASSWORD).status == 429
    everywhere.clock.at += timedelta(seconds=1)
    ok = everywhere.log_in("lead", PASSWORD)
    assert ok.status == 303 and everywhere.ask("GET", "/", Cookie=session_cookie(ok)).status == 200
    failures = [r.getMessage() for r in caplog.records if "failed login" in r.getMessage()]
    assert len(failures) == FREE_FAILURES + 2
    assert "'lead' from 127.0.0.1" in failures[0]
    assert sum("refused" in r.getMessage() for r in caplog.records) == 2  # once per wait
    # a success clears the count: the next wrong password costs nothing
    assert everywhere.log_in("lead", "guess").status == 401
    assert everywhere.log_in("lead", PASSWORD).status == 303


def test_unknown_names_are_slowed_too_and_logged_printably(
    everywhere: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="monitor.publish.status_access")
    for attempt in range(FREE_FAILURES + 1):
        assert everywhere.log_in(f"x\x1b[31m{attempt}\n", "guess").status == 401
    # the client address has failed too often, whatever name it tries next
    assert everywhere.log_in("lead", PASSWORD).status == 429
    assert all("\x1b" not in r.getMessage() and "\n" not in r.getMessage() for r in caplog.records)


def test_every_response_carries_a_strict_policy_and_no_framing(everywhere: Site) -> None:
    cookie = session_cookie(everywhere.log_in("lead", PASSWORD))
    for method, path in (
        ("GET", "/"),
        ("GET", "/login"),
        ("GET", "/items"),
        ("GET", "/items.csv"),
        ("GET", "/digest"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/nowhere"),
        ("GET", "/items?date=tomorrow"),
    ):
        reply = everywhere.ask(method, path, Cookie=cookie)
        policy = reply.headers["content-security-policy"]
        assert reply.headers["x-frame-options"] == "DENY", path
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, path
        assert "script-src" not in policy and "unsafe-eval" not in policy, path
        assert reply.headers["x-content-type-options"] == "nosniff"
    page = everywhere.ask("GET", "/", Cookie=cookie)
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    assert "<script" not in page.body.lower()


def test_an_error_page_carries_the_headers_too(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings, engine = build_moment(tmp_path, sqlite_url)

    def broken(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("the page broke")

    app = make_app(
        registry_for(engine, settings, Clock(NOW)), engine, Clock(NOW), status_app=broken
    )
    server, thread = serve(f"127.0.0.1:{free_port()}", app)
    try:
        site = Site(server.server_port, Clock(NOW), settings, engine)
        reply = site.ask("GET", "/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert reply.status == 500 and "the page broke" not in reply.body
    assert reply.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in reply.headers["content-security-policy"]
    assert any("the page broke" in r.getMessage() or r.exc_info for r in caplog.records)


def test_the_login_sends_you_only_to_our_own_pages(everywhere: Site) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/metrics"):
        reply = everywhere.ask(
            "POST", "/login", {"user": "lead", "password": PASSWORD, "next": target}
        )
        assert reply.headers["location"] == "/", target


def test_a_login_posted_from_another_site_is_refused(everywhere: Site) -> None:
    reply = everywhere.log_in("lead", PASSWORD, Origin="https://evil.example")
    assert reply.status == 403 and not reply.cookies


def test_with_no_users_beyond_loopback_the_page_is_off(tmp_path: Path, sqlite_url: str) -> None:
    for site in start(tmp_path, sqlite_url, "0.0.0.0"):
        reply = site.ask("GET", "/")
        assert reply.status == 403 and "status.users" in reply.body and "Brien" not in reply.body
        assert site.log_in("lead", PASSWORD).status == 403
        assert site.ask("GET", "/metrics").status == 200


def test_on_loopback_the_page_is_open_to_the_machine(tmp_path: Path, sqlite_url: str) -> None:
    for site in start(tmp_path, sqlite_url, "127.0.0.1"):
        page = site.ask("GET", "/")
        assert page.status == 200 and "Support now" in page.body
        assert "9m 00s" in page.body and "Log out" not in page.body


def test_on_loopback_a_page_asked_by_another_name_is_refused(
    tmp_path: Path, sqlite_url: str
) -> None:
    """DNS rebinding: a site whose name resolves to 127.0.0.1 must not read the open page
    through a browser on this machine."""
    for site in start(tmp_path, sqlite_url, "127.0.0.1"):
        assert site.ask("GET", "/", Host="evil.example:9742").status == 403
        assert site.ask("GET", "/items.csv", Host="evil.example").status == 403
        assert site.ask("GET", "/", Host=f"localhost:{site.port}").status == 200
        assert site.ask("GET", "/", Host=f"[::1]:{site.port}").status == 200
        assert site.ask("GET", "/metrics", Host="evil.example").status == 200  # no personal data


def test_the_items_of_the_day_are_report_items_rows_as_a_page_and_as_csv(
    tmp_path: Path, sqlite_url: str
) -> None:
    for site in start(tmp_path, sqlite_url, "127.0.0.1"):
        settings, engine = site.settings, site.engine
        since, until = day_bounds(NOW.date(), settings.timezone)
        rows = report_items.item_rows(
            read_period(engine, settings, since, until, NOW),
            report_items.Options.for_settings(settings),
        )
        csv = site.ask("GET", "/items.csv?date=2026-11-19")
        assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv")
        assert csv.body == report_items.render_csv(rows)
        page = site.ask("GET", "/items")
        assert page.status == 200 and report_items.counts_text(rows) in page.body
        assert LATE_SUBJECT not in page.body  # escaped
        digest = site.ask("GET", "/digest?date=2026-11-19")
        assert digest.status == 200 and "Thursday 19 November 2026" in digest.body
        assert site.ask("GET", "/items?date=2026-11-20").status == 400  # not yet


def test_a_bad_hash_is_a_config_error_naming_its_key(tmp_path: Path, sqlite_url: str) -> None:
    from monitor.publish.status_access import StatusAccessError

    settings = config(
        tmp_path,
        sqlite_url,
        metrics={"listen": "0.0.0.0:9742"},
        status={"users": [{"name": "lead", "password_hash": "md5$abc"}]},
    )
    with pytest.raises(StatusAccessError, match=r"status.users\[0\].password_hash: expected"):
        Gate.from_settings(settings, Clock(NOW))
