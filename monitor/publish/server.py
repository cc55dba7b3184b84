"""The HTTP endpoint of `run`: `/metrics` for Prometheus, `/healthz` for probes, and the live
status page at `/` (monitor.publish.status_routes).

A tiny WSGI router on the standard library's threading WSGI server: prometheus_client's
`make_wsgi_app` serves `/metrics` (with OpenMetrics negotiation), and `/healthz` answers 200 while
the database answers. A source that is down does not make the process unhealthy (restarting us
would not bring an IMAP server back); its state is in the body and in the metrics.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from sqlalchemy import Engine, select

from monitor import __version__
from monitor.config import Settings
from monitor.errors import SupportMonitorError
from monitor.publish.printable import line
from monitor.publish.status_routes import PATHS as STATUS_PATHS
from monitor.publish.status_routes import security_headers
from monitor.store.database import StoreError, transaction
from monitor.store.health import STATUS_WORDS, health_from_rows
from monitor.store.schema import STATES

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


# Requests served at once. Beyond them, connections wait in the listen backlog: however many
# clients come, the server's threads (and the database connections they use) stay bounded.
MAX_REQUESTS = 8
# A client that sends its request slower than this (per read) is dropped.
CLIENT_TIMEOUT = 10


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def server_activate(self) -> None:
        self.slots = threading.BoundedSemaphore(MAX_REQUESTS)
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        self.slots.acquire()  # in the accepting thread: the next accept waits for a slot
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every 15 s would drown the log; errors are logged by the app itself."""


def health(
    engine: Engine,
    now: datetime,
    settings: Settings | None = None,
    started_at: datetime | None = None,
) -> tuple[bool, dict[str, Any]]:
    """(healthy, body): healthy while the database answers; the body lists source states and,
    with the settings, each configured source's reading state (monitor.store.health): a
    source not read since the service started (`started_at`) is "not read yet", never "ok"."""
    try:
        with transaction(engine) as conn:
            rows = conn.execute(select(STATES)).all()
    except StoreError as exc:
        return False, {"status": "database unavailable", "error": str(exc)}
    sources: dict[str, dict[str, Any]] = {
        row.source: {
            "last_success": row.last_success_at.isoformat() if row.last_success_at else None,
            "consecutive_failures": row.consecutive_failures,
        }
        for row in rows
    }
    if settings is not None:
        for name, state in health_from_rows((r._mapping for r in rows), settings, now).items():
            status = STATUS_WORDS[state.status]
            fresh = started_at is not None and not state.read_since(started_at)
            if fresh and state.status in ("ok", "stale"):  # read by an earlier process only
                status = "not read yet"
            sources.setdefault(name, {"last_success": None, "consecutive_failures": 0})
            sources[name]["status"] = status
    return True, {
        "status": "ok",
        "version": __version__,
        "now": now.isoformat(),
        "sources": sources,
    }


def make_app(
    registry: CollectorRegistry,
    engine: Engine,
    now: Callable[[], datetime],
    settings: Settings | None = None,
    started_at: datetime | None = None,
    status_app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]] | None = None,
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The router; `status_app` serves the status page's paths (monitor.publish.status_routes).
    Every response carries the security headers (a strict Content-Security-Policy and
    `X-Frame-Options: DENY`), whichever part answered it."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start = _with_security_headers(start_response)
        try:
            return route(environ, start)
        except Exception:  # answered here, so that an error page carries the headers too
            logger.exception("error answering %s", line(str(environ.get("PATH_INFO", "")), 200))
            start("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            return [b"internal error: see the service's log\n"]

    def route(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if status_app is not None and path in STATUS_PATHS:
            return status_app(environ, start_response)
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            healthy, body = health(engine, now(), settings, started_at)
            status = "200 OK" if healthy else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Support Monitor: see /metrics and /healthz\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return app


def _with_security_headers(start_response: StartResponse) -> StartResponse:
    def start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        present = {name.lower() for name, _ in headers}
        missing = [(k, v) for k, v in security_headers() if k.lower() not in present]
        return start_response(status, [*headers, *missing], *args)

    return start


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class ListenError(SupportMonitorError):
    """`metrics.listen` cannot be served: `problem` is one line naming the address (the
    command line reports it as a config error of `metrics.listen`). `in_use` when something
    else listens there already."""

    def __init__(self, listen: str, problem: str, *, in_use: bool = False) -> None:
        self.problem = f"cannot listen on {listen}: {problem}"
        super().__init__(f"metrics.listen: {self.problem}")
        self.in_use = in_use


def open_server(listen: str, app: Callable[..., Iterable[bytes]]) -> WSGIServer:
    """The HTTP server bound to `listen` (host:port, an IPv6 host in brackets), listening but
    not serving yet; ListenError when the address cannot be had. `check` opens and closes it
    the same way, so it finds what `run` would."""
    host, port = split_listen(listen)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ListenError(listen, f"the host {host!r} does not resolve ({exc})") from None
    # IPv4 when the host has an IPv4 address (`localhost` stays 127.0.0.1, as it always was);
    # IPv6 for an IPv6 address or a name with no other.
    families = {family for family, *_ in found}
    server_class = _Server if socket.AF_INET in families else _Server6
    try:
        return make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    except OSError as exc:
        raise ListenError(
            listen,
            _LISTEN_PROBLEMS.get(exc.errno or 0, exc.strerror or str(exc)),
            in_use=exc.errno == errno.EADDRINUSE,
        ) from None


_LISTEN_PROBLEMS = {
    errno.EADDRINUSE: "the address is already in use (another program listens there: stop it "
    "or choose another port)",
    errno.EADDRNOTAVAIL: "it is not an address of this machine",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


def serve(listen: str, app: Callable[..., Iterable[bytes]]) -> tuple[WSGIServer, threading.Thread]:
    """Serve `app` on `listen` (host:port) in a daemon thread; stop with server.shutdown()."""
    server = open_server(listen, app)
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return server, thread
