"""Real receiving servers for the delivery tests: an SMTP sink (aiosmtpd) and an HTTP sink.

Both listen on loopback on a free port in a background thread, keep what they received, and can
be told to refuse the next N requests with a given status, to script "down, then up". The SMTP
sink can also speak TLS as mail servers do, with a certificate from a private CA
(`servers.make_test_ca`): STARTTLS on a plain port (required before anything else), or
implicit TLS from the first byte; with `credentials` it takes AUTH PLAIN/LOGIN, only inside TLS.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers import free_port


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class Hold:
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class SmtpSink:
    """An SMTP server that stores messages; `refuse(n, "451 ...")` answers the next n DATA.

    `security` "starttls" or "tls" needs `certificate` (cert.pem, key.pem); `credentials`
    (user, password) makes AUTH required, and `logins` keeps who logged in."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Received] = field(default_factory=list)
    security: Literal["none", "starttls", "tls"] = "none"
    certificate: tuple[Path, Path] | None = None
    credentials: tuple[str, str] | None = None
    logins: list[str] = field(default_factory=list)
    _refusals: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None
    _hold: Hold | None = None

    def refuse(self, times: int, reply: str = "451 4.3.0 try again later") -> None:
        with self._lock:
            self._refusals.extend([reply] * times)

    def hold_next(self) -> Hold:
        """Keep the next message (it is received and stored) but hold back the answer to its
        DATA until `release()`: the sender has sent it and does not know yet."""
        hold = Hold()
        with self._lock:
            self._hold = hold
        return hold

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self._refusals:
                return self._refusals.pop(0)
            content = envelope.content if isinstance(envelope.content, bytes) else b""
            parsed = message_from_bytes(content, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            self.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
            hold, self._hold = self._hold, None
        if hold is not None:
            hold.arrived.set()
            # Waited for in a worker thread: the server goes on serving other connections.
            await asyncio.get_running_loop().run_in_executor(None, hold.released.wait, 60)
        return "250 OK"

    def start(self) -> SmtpSink:
        self.port = free_port()
        return self.restart()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def restart(self) -> SmtpSink:
        """Listen again on the same port after `stop`: a mail server that was down is back."""
        self._controller = Controller(self, hostname=self.host, port=self.port, **self._options())
        self._controller.start()
        return self

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.security != "none":
            assert self.certificate is not None, "a TLS sink needs a certificate"
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*map(str, self.certificate))
            if self.security == "tls":
                # aiosmtpd counts only STARTTLS as TLS for AUTH; here every byte is in TLS.
                options |= {"ssl_context": context, "auth_require_tls": False}
            else:
                options |= {"tls_context": context, "require_starttls": True}
        if self.credentials is not None:
            options |= {"authenticator": self._authenticate, "auth_required": True}
        return options

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.credentials is not None
        user, password = self.credentials
        if isinstance(data, LoginPassword) and (data.login, data.password) == (
            user.encode(),
            password.encode(),
        ):
            with self._lock:
                self.logins.append(user)
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


@dataclass
class HttpRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpSink:
    """An HTTP server that stores POSTed bodies; `refuse(n, 500)` answers the next n with it.

    `requests` holds the accepted (2xx) requests, `answered` every status it answered, in order.
    """

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []
        self.answered: list[int] = []
        self._statuses: list[int] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink._lock:
                    status = sink._statuses.pop(0) if sink._statuses else 200
                    sink.answered.append(status)
                    if status < 300:
                        sink.requests.append(HttpRequest(self.path, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def refuse(self, times: int, status: int = 500) -> None:
        with self._lock:
            self._statuses.extend([status] * times)

    def start(self) -> HttpSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
