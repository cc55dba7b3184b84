"""A year of a busy site's history in SQLite, for the benchmarks of what reads it (history_*.py).

The data is bench/_history_site.py's: 600,000 chat inquiries, 277,000 calls, some 83,000 open
callback inquiries and 1,500 stale e-mails, alert states as `run` leaves them. Building the full
size takes minutes, so the database is kept in a cache folder (`$SUPPORT_MONITOR_BENCH_CACHE`,
default ~/.cache/support-monitor-bench) under a name made of the size, the day (the history
ends at the moment it was built: the digest of the last day and the ages of open inquiries must
be those of a live site) and a hash of _history_site.py and of the schema the code creates, so a
change to either builds it again. Each benchmark works on a copy, with its site's (empty)
source files, and can start `support-monitor run` on it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml
from _history_site import ZONE, Built, Sizes, build, settings_mapping

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(__file__).resolve().parent / "_history_site.py"


def prepare_folder(folder: Path) -> None:
    """The files the site's sources read, empty: the history is in the database already."""
    (folder / "chat").mkdir(parents=True, exist_ok=True)
    (folder / "chat" / "widget.jsonl").touch()
    (folder / "queue_log").touch()
    for part in ("cur", "new", "tmp"):
        (folder / "Maildir" / part).mkdir(parents=True, exist_ok=True)


def write_config(folder: Path, database: Path, name: str, listen: str | None = None) -> Path:
    prepare_folder(folder)
    config = folder / f"{name}.yaml"
    config.write_text(yaml.safe_dump(settings_mapping(folder, database, listen)))
    return config


def command() -> list[str]:
    """How to start `support-monitor`: its console script beside this interpreter."""
    script = Path(sys.executable).parent / "support-monitor"
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]


def cache_folder() -> Path:
    default = Path.home() / ".cache" / "support-monitor-bench"
    return Path(os.environ.get("SUPPORT_MONITOR_BENCH_CACHE") or default)


def history(quick: bool, *, rebuild: bool = False) -> Built:
    """The history database of today (from the cache, or built now)."""
    size = "quick" if quick else "full"
    name = f"history-{size}-{datetime.now(UTC).date()}-{_fingerprint()}"
    folder = cache_folder()
    path, info = folder / f"{name}.db", folder / f"{name}.json"
    if path.exists() and info.exists() and not rebuild:
        data = json.loads(info.read_text())
        return Built(path=path, **data)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"history-{size}-*"):  # yesterday's, another version's, a partial
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    partial = folder / f"{name}.partial.db"
    print(f"building a year of history ({size}) in {path} ...", file=sys.stderr, flush=True)
    built = build(partial, Sizes.of(quick))
    for suffix in ("-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    partial.replace(path)
    built.path = path
    data = asdict(built)
    del data["path"]
    info.write_text(json.dumps(data, indent=1))
    return built


def working_copy(built: Built, folder: Path, name: str, listen: str | None = None) -> Path:
    """A copy of the history in `folder` with its configuration (returned), its sources
    polled once, as on a site whose service is running (each source read, nothing new)."""
    database = folder / f"{name}.db"
    shutil.copyfile(built.path, database)
    config = write_config(folder, database, name, listen)
    poll_once(config)
    return config


def empty_site(folder: Path, name: str, listen: str | None = None) -> Path:
    """The same site with nothing stored yet (its sources polled once): the like-for-like
    baseline of a figure that should not depend on the history."""
    config = write_config(folder, folder / f"{name}.db", name, listen)
    poll_once(config)
    return config


def poll_once(config: Path) -> None:
    subprocess.run(
        [*command(), "--config", str(config), "poll"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def digest_day() -> date:
    """The day to build a digest for: the latest weekday before today in the site's timezone
    (its phones take calls on weekdays only, and a digest of a Sunday would show none)."""
    day = datetime.now(ZONE).date() - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


# -- the cache's key -----------------------------------------------------------------------


def _fingerprint() -> str:
    """A hash of _history_site.py and of the schema the code creates: a new schema, or a change
    to what is generated, builds the history again."""
    from monitor.store.database import make_engine, prepare

    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{scratch}/schema.db")
        prepare(engine)
        engine.dispose()
        with closing(sqlite3.connect(f"{scratch}/schema.db")) as db:
            schema = [
                row[0]
                for row in db.execute(
                    "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
                )
            ]
    digest = hashlib.sha256(SITE.read_bytes())
    digest.update("\n".join(schema).encode())
    return digest.hexdigest()[:12]


# -- a running service -----------------------------------------------------------------------


def free_listen() -> str:
    """A loopback address with a port nobody listens on."""
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def get(listen: str, path: str) -> tuple[float, int]:
    """(seconds, bytes) of one GET of `path`, connection and all, as a scraper sees it."""
    host, port = listen.rsplit(":", 1)
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    took = time.perf_counter() - started
    if response.status != 200:
        raise SystemExit(f"GET {path} answered {response.status}: {body[:200]!r}")
    return took, len(body)


@contextmanager
def service(config: Path, listen: str, log: Path) -> Iterator[float]:
    """`support-monitor run` on `config`, listening on `listen`; yields the monotonic time it
    was started once it answers /healthz and has polled every source."""
    with log.open("w") as output:
        started = time.monotonic()
        process = subprocess.Popen(
            [*command(), "--config", str(config), "run"],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(process, listen, config, log)
            yield started
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(process: subprocess.Popen[bytes], listen: str, config: Path, log: Path) -> None:
    host, port = listen.rsplit(":", 1)
    expected = len(yaml.safe_load(config.read_text())["sources"])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"`run` exited ({process.returncode}): {log.read_text()[-500:]}")
        try:
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
            connection.request("GET", "/healthz")
            body = json.loads(connection.getresponse().read())
            connection.close()
        except (OSError, ValueError):
            time.sleep(0.2)
            continue
        sources = body.get("sources", {})
        if len(sources) == expected and all(s.get("last_success") for s in sources.values()):
            return
        time.sleep(0.2)
    raise SystemExit(f"`run` on {listen} was not ready in 300 s: {log.read_text()[-500:]}")
