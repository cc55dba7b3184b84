"""Start and stop real servers for the tests, privately, on loopback, on free ports.

Plain functions with no pytest imports; ``conftest.py`` turns them into fixtures.

- :func:`start_postgres` runs a throwaway PostgreSQL cluster in a temporary directory
  (``initdb`` + ``pg_ctl``). Durability is switched off because nothing in it is kept.
  When the tests run as root the cluster runs as the ``postgres`` system user, because
  PostgreSQL refuses to run as root.
- :func:`start_dovecot` runs a throwaway Dovecot IMAP server with TLS (a certificate signed by
  a throwaway CA made with openssl), a password valid for any user name (so each test takes a
  fresh, empty mailbox) and XOAUTH2 tokens it validates locally.
- :func:`find_promtool` finds ``promtool`` (from the ``prometheus`` package).
- :func:`component_required` says whether a missing real component is a failure (CI) or a skip.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from glob import glob
from pathlib import Path
from typing import Any

PG_START_TIMEOUT = 60  # seconds, for pg_ctl -w


class ComponentMissing(RuntimeError):
    """A real component (a server binary, a tool) is not installed."""


def component_required() -> bool:
    """True when a missing real component must fail the tests: ``CI`` is ``true`` or ``1``."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unreachable_mailbox(**extra: Any) -> dict[str, Any]:
    """An IMAP source named helpdesk-mail that nobody listens for: every poll is refused at
    once (a mailbox that never connected)."""
    return {
        "name": "helpdesk-mail",
        "kind": "imap",
        "host": "127.0.0.1",
        "port": free_port(),
        "security": "none",
        "username": "support@example.com",
        "password": "x",
        **extra,
    }


def find_promtool() -> str | None:
    """Path of ``promtool``, or None when it is not installed."""
    return shutil.which("promtool")


# --- PostgreSQL --------------------------------------------------------------------------------


def _version_key(bindir: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,); non-numeric parts sort first.
    version = Path(bindir).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (-1,)


def find_pg_bindir() -> Path | None:
    """Directory holding ``initdb`` and ``pg_ctl``: Debian's newest version, else PATH."""
    candidates = sorted(glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for bindir in candidates:
        if all(os.access(Path(bindir, tool), os.X_OK) for tool in ("initdb", "pg_ctl")):
            return Path(bindir)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _as_postgres_user(argv: list[str]) -> list[str]:
    """Prefix a command so it runs as the ``postgres`` system user when we are root."""
    if not _is_root():
        return argv
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *argv]
    return ["su", "postgres", "-s", "/bin/sh", "-c", subprocess.list2cmdline(argv)]


def _temp_base() -> str | None:
    """Where to make the cluster's directory: somewhere the postgres user can reach."""
    if not _is_root():
        return None
    path = Path(tempfile.gettempdir()).resolve()
    for part in [path, *path.parents]:
        if not os.stat(part).st_mode & 0o001:  # not traversable by others
            return "/tmp"
    return None


class PostgresServer:
    """A running throwaway PostgreSQL cluster. Superuser ``postgres``, trust authentication."""

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir = bindir
        self.root = root
        self.datadir = root / "data"
        self.logfile = root / "postgres.log"
        self.host = "127.0.0.1"
        self.port = port
        self._stopped = False

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) of a database in this cluster."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Fast shutdown, then remove the cluster's directory. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        pid = self._postmaster_pid()
        if pid is not None:
            argv = [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w"]
            result = subprocess.run(
                _as_postgres_user([*argv, "stop"]),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=PG_START_TIMEOUT + 10,
                check=False,
            )
            if result.returncode != 0:
                _kill_and_wait(pid)
        shutil.rmtree(self.root, ignore_errors=True)


def _kill_and_wait(pid: int, timeout: float = 10.0, first: int = signal.SIGINT) -> None:
    """`first` (SIGINT: the postmaster's fast shutdown), then SIGKILL, each waited for."""
    for sig in (first, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def _run(argv: list[str], cwd: Path, what: str) -> None:
    result = subprocess.run(
        _as_postgres_user(argv),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=PG_START_TIMEOUT + 30,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n"
            f"{result.stdout}\n{result.stderr}"
        )


def start_postgres(attempts: int = 3) -> PostgresServer:
    """Create and start a private cluster on 127.0.0.1 on a free port.

    Raises :class:`ComponentMissing` when PostgreSQL is not installed, and RuntimeError when
    it is installed but will not start. Call ``.stop()`` on the result when done (an atexit
    hook stops it too, in case the caller never gets there).
    """
    bindir = find_pg_bindir()
    if bindir is None:
        raise ComponentMissing("PostgreSQL not installed (initdb and pg_ctl not found)")
    owner: tuple[int, int] | None = None
    if _is_root():
        import pwd

        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "running as root, but there is no 'postgres' system user to run PostgreSQL as"
            ) from None
        owner = (entry.pw_uid, entry.pw_gid)

    root = Path(tempfile.mkdtemp(prefix="sm-pg-", dir=_temp_base()))
    try:
        if owner is not None:
            os.chown(root, *owner)
        datadir = root / "data"
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(datadir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
            cwd=root,
            what="initdb",
        )
        last_error: Exception | None = None
        for _ in range(attempts):  # the free port may be taken by the time postgres binds it
            server = PostgresServer(bindir, root, free_port())
            options = (
                f"-p {server.port} -k {root} -c listen_addresses={server.host}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                _run(
                    [
                        str(bindir / "pg_ctl"),
                        "-D",
                        str(datadir),
                        "-l",
                        str(server.logfile),
                        "-w",
                        "-t",
                        str(PG_START_TIMEOUT),
                        "-o",
                        options,
                        "start",
                    ],
                    cwd=root,
                    what="pg_ctl start",
                )
            except RuntimeError as exc:
                last_error = RuntimeError(f"{exc}\n--- postgres.log ---\n{server.log_tail()}")
                pid = server._postmaster_pid()
                if pid is not None:
                    _kill_and_wait(pid)
                continue
            atexit.register(server.stop)
            return server
        assert last_error is not None
        raise last_error
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


# --- Dovecot -----------------------------------------------------------------------------------

DOVECOT_PASSWORD = "s3cret"  # every user logs in with it: a fresh mailbox is a fresh user name
DOVECOT_START_TIMEOUT = 15  # seconds
_JWT_KEY = b"support-monitor-tests-hs256-key!"  # signs the XOAUTH2 test tokens


def find_dovecot() -> str | None:
    """Path of ``dovecot`` (in /usr/sbin, which is not on every user's PATH)."""
    found = shutil.which("dovecot")
    if found is None and os.access("/usr/sbin/dovecot", os.X_OK):
        found = "/usr/sbin/dovecot"
    return found


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def make_test_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signed for localhost and 127.0.0.1.
    Returns (ca.pem, cert.pem, key.pem)."""
    if shutil.which("openssl") is None:
        raise ComponentMissing("openssl not installed")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=Support Monitor test CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "key.pem", "-out", "server.csr", cwd=folder,
    )  # fmt: skip
    (folder / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "cert.pem", "-extfile", "server.ext",
        cwd=folder,
    )  # fmt: skip
    os.chmod(folder / "key.pem", 0o600)
    return folder / "ca.pem", folder / "cert.pem", folder / "key.pem"


_DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
{users}
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
disable_plaintext_auth = no
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
mail_location = maildir:{root}/mail/%u/Maildir
mail_fsync = never
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf
}}
passdb {{
  driver = static
  mechanisms = plain login
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {starttls_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
# Tests fail logins on purpose: no growing penalty delay for the next login from 127.0.0.1.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


class DovecotServer:
    """A running throwaway Dovecot: IMAPS on ``port``, IMAP with STARTTLS on ``starttls_port``,
    a certificate signed by the throwaway CA in ``ca_file``. Any user name logs in with
    ``DOVECOT_PASSWORD`` (or an XOAUTH2 token from :meth:`token`) and gets an empty mailbox."""

    host = "127.0.0.1"
    password = DOVECOT_PASSWORD

    def __init__(self, binary: str, root: Path, port: int, starttls_port: int) -> None:
        self.binary = binary
        self.root = root
        self.port = port
        self.starttls_port = starttls_port
        self.config = root / "dovecot.conf"
        self.ca_file = root / "ca.pem"
        self.logfile = root / "dovecot.log"
        self._stopped = False
        self._users = 0

    def new_user(self) -> str:
        self._users += 1
        return f"u{self._users}-{os.getpid()}@example.test"

    def connect(self, user: str) -> Any:
        """A verifying IMAPS client logged in as ``user`` (for seeding and checks)."""
        import ssl

        from imapclient import IMAPClient

        context = ssl.create_default_context(cafile=str(self.ca_file))
        client = IMAPClient(self.host, port=self.port, ssl_context=context, timeout=30)
        client.login(user, self.password)
        return client

    def token(self, user: str, *, valid: bool = True) -> str:
        """An XOAUTH2 access token for ``user`` (a JWT Dovecot validates locally)."""
        import base64
        import hashlib
        import hmac
        import json

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        issued = int(time.time())
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64(json.dumps({"sub": user, "iat": issued, "exp": issued + 3600}).encode())
        key = _JWT_KEY if valid else b"not-the-key" * 3
        signature = b64(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        return f"{head}.{body}.{signature}"

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        base = self.root / "mail" / user / "Maildir"
        return base if folder == "INBOX" else base / f".{folder.replace('/', '.')}"

    def doveadm(self, *args: str, ok: tuple[int, ...] = (0,)) -> str:
        result = subprocess.run(
            ["doveadm", "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode not in ok:
            raise RuntimeError(f"doveadm {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def kick(self, user: str) -> None:
        """The server closes every connection of ``user`` (doveadm kick; exit status 68 says
        there was none)."""
        self.doveadm("kick", user, ok=(0, 68))

    def forget_uids(self, user: str, folder: str = "INBOX") -> None:
        """Make the server renumber ``folder``: its UID list and indexes are deleted, so the
        next session gives it a new UIDVALIDITY and UIDs from 1 (the user is kicked first)."""
        self.kick(user)
        path = self.maildir(user, folder)
        for name in os.listdir(path):
            if name == "dovecot-uidlist" or name.startswith("dovecot.index"):
                os.remove(path / name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _master_pid(self) -> int | None:
        try:
            return int((self.root / "run" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def halt(self) -> None:
        """Stop the server as a crash or a maintenance window would, keeping its mailboxes."""
        pid = self._master_pid()
        if pid is not None:
            _terminate_group(pid)

    def start_again(self) -> None:
        """Start a halted server on the same ports with the same mailboxes."""
        subprocess.run(
            [self.binary, "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=True,
        )
        if not _wait_for_port(self.port, lambda: self._master_pid() is not None, 30):
            raise RuntimeError(f"dovecot did not start again: {self.log_tail()}")

    def stop(self) -> None:
        """Stop the master (by its PID) and wait for it, then remove the directory."""
        if self._stopped:
            return
        self._stopped = True
        pid = self._master_pid()
        if pid is not None:
            _terminate_group(pid)
        shutil.rmtree(self.root, ignore_errors=True)


def _terminate_group(pid: int) -> None:
    """Stop Dovecot's master and every process it started (its process group: the imap and
    login processes of open sessions outlive a master stopped alone, serving on)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    _terminate_and_wait(pid)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _terminate_and_wait(pid: int, timeout: float = 10.0) -> None:
    _kill_and_wait(pid, timeout, first=signal.SIGTERM)


def _wait_for_port(port: int, pid_alive: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            if not pid_alive():
                return False
            time.sleep(0.05)
    return False


def start_dovecot(attempts: int = 3) -> DovecotServer:
    """Start a private Dovecot on two free loopback ports, with a throwaway CA.

    Raises :class:`ComponentMissing` when Dovecot (or openssl) is not installed and
    RuntimeError when it will not start. Mail is stored as nobody (uid 65534) when run as root,
    since Dovecot refuses root and low uids; otherwise as the current user."""
    binary = find_dovecot()
    if binary is None:
        raise ComponentMissing("Dovecot not installed")
    root = Path(tempfile.mkdtemp(prefix="sm-dovecot-", dir=_temp_base()))
    try:
        os.chmod(root, 0o755)  # the mail processes run as another user
        make_test_ca(root)
        for sub in ("run", "state", "mail"):
            (root / sub).mkdir()
        keys = root / "keys" / "default" / "HS256"
        keys.mkdir(parents=True)
        import base64

        (keys / "default").write_text(base64.b64encode(_JWT_KEY).decode())
        (root / "oauth2.conf").write_text(
            "introspection_mode = local\n"
            f"local_validation_key_dict = fs:posix:prefix={root}/keys/\n"
            "username_attribute = sub\n"
        )
        for path in [root / "keys", *(root / "keys").rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        if _is_root():
            uid = gid = 65534
            os.chown(root / "mail", uid, gid)
            users = ""
        else:
            import getpass
            import grp

            uid, gid, me = os.getuid(), os.getgid(), getpass.getuser()
            users = (
                f"default_internal_user = {me}\ndefault_login_user = {me}\n"
                f"default_internal_group = {grp.getgrgid(gid).gr_name}\n"
                f"first_valid_uid = {uid}\nfirst_valid_gid = {gid}"
            )
        last_error = ""
        for _ in range(attempts):  # a free port may be taken before Dovecot binds it
            server = DovecotServer(binary, root, free_port(), free_port())
            server.config.write_text(
                _DOVECOT_CONF.format(
                    root=root,
                    users=users,
                    password=DOVECOT_PASSWORD,
                    uid=uid,
                    gid=gid,
                    port=server.port,
                    starttls_port=server.starttls_port,
                )
            )
            # The master daemonizes; its children would hold a captured pipe open forever.
            with (root / "start.err").open("w+") as errors:
                result = subprocess.run(
                    [binary, "-c", str(server.config)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    timeout=30,
                    check=False,
                )
                errors.seek(0)
                start_errors = errors.read().strip()
            pid = server._master_pid()

            def alive(pid: int | None = pid) -> bool:
                if pid is None:
                    return False
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return False
                return True

            ready = result.returncode == 0 and _wait_for_port(
                server.port, alive, DOVECOT_START_TIMEOUT
            )
            if ready:
                atexit.register(server.stop)
                return server
            last_error = f"{start_errors}\n--- dovecot.log ---\n{server.log_tail()}"
            if pid is not None:
                _terminate_and_wait(pid)
        raise RuntimeError(f"dovecot did not start: {last_error}")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
