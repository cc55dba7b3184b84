"""Start and stop real servers for the tests, privately, on loopback, on free ports.

Plain functions with no pytest imports; ``conftest.py`` turns them into fixtures.

- :func:`start_postgres` runs a throwaway PostgreSQL cluster in a temporary directory
  (``initdb`` + ``pg_ctl``). Durability is switched off because nothing in it is kept.
  When the tests run as root the cluster runs as the ``postgres`` system user, because
  PostgreSQL refuses to run as root.
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


def _kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    """Last resort: SIGINT (fast shutdown) to the postmaster we started, then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGKILL):
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
