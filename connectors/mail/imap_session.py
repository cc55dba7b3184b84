"""An IMAP session for the `imap` connector: settings, TLS, login, and one-line errors.

- TLS (port 993) or STARTTLS (port 143) with certificate and host-name verification always on;
  `ca_file` trusts a private CA instead of the system store. `security: none` is refused
  unless the host is loopback, so a password never crosses a network in clear.
- Login with a password (`password`, `${ENV}` or `password_file`) or an OAuth2 access token
  (SASL XOAUTH2) read from `oauth2_token_file` or printed by `oauth2_token_command`; getting
  and refreshing the token is the job of that file's writer or that command (for example a
  `msal` or `oauth2l` call), so no provider SDK is needed here.
- `timeout` bounds each command, from sending it to the end of its answer (and connecting with
  the greeting), however slowly the server answers, so a silent or trickling server fails the
  poll instead of holding it; no literal longer than the header limit is read.

Every failure becomes a `ConnectorError` of one line naming host and port: bad credentials are
permanent (retrying will not fix them and may lock the account), network trouble is not.
Secrets and message contents never appear in an error.
"""

from __future__ import annotations

import imaplib
import shlex
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imap4 import IMAP4WithTimeout
from imapclient.tls import IMAP4_TLS
from pydantic import SecretStr, model_validator

from connectors.base import ConnectorError
from connectors.mail.message import MAX_HEADER_BYTES, MailSettings
from monitor.config import Duration, Port, is_loopback, read_secret
from monitor.deadlines import Deadline, timed_out

DEFAULT_PORTS = {"tls": 993, "starttls": 143, "none": 143}
TOKEN_COMMAND_TIMEOUT = 60
# The largest literal read from the server: a header block fetched as a partial of one byte
# more than the header limit (connectors.mail.imap), so that a longer block is seen to be longer.
MAX_LITERAL = MAX_HEADER_BYTES + 1


class ImapSettings(MailSettings):
    host: str
    port: Port | None = None  # 993 with tls, 143 otherwise
    security: Literal["tls", "starttls", "none"] = "tls"
    username: str
    password: SecretStr | None = None
    password_file: Path | None = None
    oauth2_token_file: Path | None = None
    oauth2_token_command: str | None = None  # run without a shell; prints the access token
    ca_file: Path | None = None
    timeout: Duration = timedelta(seconds=30)
    folders: list[str] = ["INBOX"]
    sent_folder: str | None = "auto"  # the \Sent special-use folder; a name; null: none
    all_mail: bool = False  # Gmail: read [Gmail]/All Mail instead of the folders

    @model_validator(mode="after")
    def _checked(self) -> ImapSettings:
        if self.security == "none" and not is_loopback(self.host):
            raise ValueError("security: none is only allowed for a server on loopback")
        given = [
            k
            for k in ("password", "password_file", "oauth2_token_file", "oauth2_token_command")
            if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of password, password_file, oauth2_token_file and "
                f"oauth2_token_command (got {', '.join(given) or 'none'})"
            )
        if not self.folders and not self.all_mail and self.sent_folder is None:
            raise ValueError("nothing to read: give folders, a sent_folder or all_mail: true")
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port or DEFAULT_PORTS[self.security]}"


def tls_context(settings: ImapSettings, base_dir: Path) -> ssl.SSLContext:
    """Verification on (certificate and host name), against `ca_file` when it is set (a
    private CA, as for SMTP: the bundle replaces the system store), else the system store.
    (Loading the system store is also a good part of a session's start: ~30 ms.)"""
    if settings.ca_file is None:
        return ssl.create_default_context()
    path = base_dir / settings.ca_file
    try:
        context = ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise ConnectorError(f"ca_file {path}: cannot load ({_why(exc)})", permanent=True) from None
    return context


class _Bounded:
    """What our imaplib connections add (mixed into imapclient's two imaplib classes):

    - a deadline per command (monitor.deadlines): from sending a command to the end of its
      tagged answer, including the greeting after connecting, so a server trickling its
      answer one byte at a time fails the poll by `timeout` instead of holding it for ever;
    - no literal larger than MAX_LITERAL is read: imaplib would buffer whatever size the
      server announces (`{999999999}`) before our header rule could apply. Honest servers
      never send one, since the headers are fetched as a partial of that size
      (connectors.mail.imap).
    """

    deadline: Deadline
    # Bytes read from the connection past the last FETCH response that imap_fetch read itself
    # (it reads the socket in large chunks): read before the socket, by imaplib's next read.
    unread: bytes = b""

    def open(self, host: str = "", port: int = 143, timeout: float | None = None) -> None:
        self.deadline.start()  # connecting, TLS and the greeting: stopped by the first command
        super().open(host, port, timeout)  # type: ignore[misc]
        # imaplib keeps its current socket in `sock` (STARTTLS replaces it there).
        self.deadline.socket_of = lambda: getattr(self, "sock", None)

    def _command(self, name: str, *args: Any) -> Any:
        self.deadline.start()
        return super()._command(name, *args)  # type: ignore[misc]

    def _command_complete(self, name: str, tag: Any) -> Any:
        try:
            return super()._command_complete(name, tag)  # type: ignore[misc]
        finally:
            self.deadline.stop()

    def read(self, size: int) -> bytes:
        if size > MAX_LITERAL:
            raise imaplib.IMAP4.abort(
                f"the server announced a literal of {size:,} bytes, more than the "
                f"{MAX_LITERAL:,} byte limit: not read"
            )
        unread = self.unread
        if unread:
            self.unread = unread[size:]
            if len(unread) >= size:
                return unread[:size]
            return unread + super().read(size - len(unread))  # type: ignore[misc,no-any-return]
        return super().read(size)  # type: ignore[misc,no-any-return]

    def readline(self) -> bytes:
        unread = self.unread
        if not unread:
            return super().readline()  # type: ignore[misc,no-any-return]
        end = unread.find(b"\n") + 1
        if end:
            self.unread = unread[end:]
            return unread[:end]
        # imaplib's own line limit, on the whole line.
        self.unread = b""
        line: bytes = unread + self.file.readline(max(imaplib._MAXLINE + 1 - len(unread), 0))  # type: ignore[attr-defined]
        if len(line) > imaplib._MAXLINE:  # type: ignore[attr-defined]
            raise imaplib.IMAP4.error(f"got more than {imaplib._MAXLINE} bytes")  # type: ignore[attr-defined]
        return line


class _PlainImap(_Bounded, IMAP4WithTimeout):  # type: ignore[misc]
    def __init__(self, host: str, port: int, timeout: float | None, deadline: Deadline) -> None:
        self.deadline = deadline
        super().__init__(host, port, timeout)


class _TlsImap(_Bounded, IMAP4_TLS):  # type: ignore[misc]
    def __init__(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        timeout: float | None,
        deadline: Deadline,
    ) -> None:
        self.deadline = deadline
        super().__init__(host, port, ssl_context, timeout)


class _Client(IMAPClient):  # type: ignore[misc]
    """imapclient's client on the connections above."""

    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        self.deadline = deadline
        super().__init__(*args, **kwargs)

    def _create_IMAP4(self) -> imaplib.IMAP4:
        timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _TlsImap(self.host, self.port, self.ssl_context, timeout, self.deadline)
        return _PlainImap(self.host, self.port, timeout, self.deadline)


@contextmanager
def session(settings: ImapSettings, base_dir: Path) -> Iterator[IMAPClient]:
    """A logged-in client with `normalise_times = False` (aware INTERNALDATEs); logged out at
    the end. Errors inside the block that come from the connection are translated too."""
    where = settings.address
    context = tls_context(settings, base_dir) if settings.security != "none" else None
    seconds = settings.timeout.total_seconds()
    client: IMAPClient | None = None
    deadline = Deadline(seconds, lambda: None)  # the connection gives it its socket
    try:
        client = _Client(
            settings.host,
            port=settings.port or DEFAULT_PORTS[settings.security],
            ssl=settings.security == "tls",
            ssl_context=context,
            timeout=seconds,
            deadline=deadline,
        )
        if settings.security == "starttls":
            client.starttls(context)
        _login(client, settings, base_dir)
        client.normalise_times = False
        # imapclient sets imaplib's debug level to 5, so imaplib formats every line and literal
        # it reads into a debug message (header blocks included: message contents, which our
        # logs must never hold, even with --debug); that formatting alone was about a third of
        # the CPU time of fetching 20,000 header blocks. imapclient's own logging stays.
        client._imap.debug = 0
        yield client
    except ConnectorError:
        raise
    except LoginError:
        if deadline.expired:
            raise ConnectorError(f"{where}: {timed_out(seconds)}") from None
        raise ConnectorError(
            f"{where}: login failed for {settings.username}", permanent=True
        ) from None
    except (IMAPClientError, imaplib.IMAP4.error, OSError, EOFError) as exc:
        # A read's socket timeout is the exchange's whole allowance too, so whichever of the
        # two fires first (they race when the server says nothing at all), the line is the same.
        if deadline.expired or isinstance(exc, TimeoutError):
            raise ConnectorError(f"{where}: {timed_out(seconds)}") from None
        raise ConnectorError(f"{where}: {describe(exc)}") from None
    finally:
        if client is not None:
            _close(client)
        deadline.close()


def _login(client: IMAPClient, settings: ImapSettings, base_dir: Path) -> None:
    if settings.oauth2_token_file is not None or settings.oauth2_token_command is not None:
        client.sasl_login("XOAUTH2", Xoauth2(settings.username, _token(settings, base_dir)))
        return
    try:
        password = read_secret(settings.password, settings.password_file, base_dir)
    except OSError as exc:
        raise ConnectorError(f"password_file: cannot read ({_why(exc)})", permanent=True) from None
    client.login(settings.username, password or "")


class Xoauth2:
    """SASL XOAUTH2 (Gmail, Microsoft 365): the token first; to a rejected token the server
    answers with an error challenge, which must get an empty reply (sending the token again,
    as imapclient's `oauth2_login` does, makes some servers stall before failing)."""

    def __init__(self, user: str, token: str) -> None:
        self.payload = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
        self.sent = False

    def __call__(self, challenge: bytes) -> bytes:
        if self.sent:
            return b""
        self.sent = True
        return self.payload


def _token(settings: ImapSettings, base_dir: Path) -> str:
    if settings.oauth2_token_file is not None:
        path = base_dir / settings.oauth2_token_file
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConnectorError(f"oauth2_token_file {path}: {_why(exc)}", permanent=True) from None
        if not token:
            raise ConnectorError(f"oauth2_token_file {path} is empty")
        return token
    assert settings.oauth2_token_command is not None
    argv = shlex.split(settings.oauth2_token_command)
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=TOKEN_COMMAND_TIMEOUT,
            cwd=base_dir,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConnectorError(f"oauth2_token_command {argv[0]!r}: {_why(exc)}") from None
    token = done.stdout.strip()
    if done.returncode != 0 or not token:
        # Not its output: a token command may print secrets on its way to failing.
        status = f"exit status {done.returncode}" if done.returncode else "printed no token"
        raise ConnectorError(f"oauth2_token_command {argv[0]!r}: {status}")
    return token


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - the connection may already be gone; nothing to save
        try:
            client.shutdown()
        except Exception:  # noqa: BLE001
            pass


def describe(exc: BaseException) -> str:
    """One line for a connection or protocol error."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message}); set ca_file for a private CA"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if isinstance(exc, imaplib.IMAP4.abort | EOFError | ConnectionError):
        return f"connection lost ({_why(exc)})"
    return _why(exc)


def _why(exc: BaseException) -> str:
    text: Any = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    line = str(text).strip().splitlines()
    return line[0][:200] if line else type(exc).__name__
