"""`check` says "ok" for the database only when every other command could use it: reachable,
of a schema this version understands, and writable."""

from __future__ import annotations

import contextlib
import io
import os
import pwd
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text, update

from monitor.cli import main
from monitor.store.database import make_engine, prepare
from monitor.store.tables import META
from tests.servers import PostgresServer, free_port


def write_config(folder: Path, url: str) -> Path:
    """A config of `url` and one small chat log (something to monitor), the metrics on a free
    port (`check` tries to listen there)."""
    (folder / "chat.jsonl").write_text(
        '{"conversation": "c1", "at": "2026-11-19T09:00:00+00:00", "author_role": "customer"}\n'
    )
    config = folder / "support-monitor.yaml"
    source = {"name": "web", "kind": "chat_jsonl", "path": "chat.jsonl"}
    listen = f"127.0.0.1:{free_port()}"
    config.write_text(
        yaml.safe_dump({"database": url, "sources": [source], "metrics": {"listen": listen}})
    )
    return config


def check(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    config = write_config(tmp_path, url)
    status = main(["--config", str(config), "check"])
    (line,) = [x for x in capsys.readouterr().out.splitlines() if " database: " in x]
    return status, line


def test_check_fails_on_a_database_of_a_newer_schema_as_every_other_command_does(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(sqlite_url)
    prepare(engine)
    with engine.begin() as conn:
        conn.execute(update(META).where(META.c.key == "schema_version").values(value="99"))
    status, line = check(tmp_path, sqlite_url, capsys)
    assert status == 1
    assert line.startswith("FAIL  database: ") and "schema v99, newer than" in line
    assert main(["--config", str(tmp_path / "support-monitor.yaml"), "poll"]) == 1


@pytest.mark.postgres
def test_check_fails_on_a_read_only_database(
    tmp_path: Path, postgres_server: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A replica or a read-only database: nothing could be stored, so check must say so.
    (On PostgreSQL: the suite runs as root, whom a SQLite file's permission bits do not stop.)"""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    engine = make_engine(url, tmp_path)
    prepare(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    engine.dispose()
    status, line = check(tmp_path, url, capsys)
    assert status == 1
    assert line.startswith("FAIL  database: ") and "cannot be written" in line
    assert "read-only transaction" in line


def test_check_says_ok_for_a_writable_database_of_this_schema(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prepare(make_engine(database_url, tmp_path))
    status, line = check(tmp_path, database_url, capsys)
    assert status == 0 and line.startswith("ok    database: ") and "(schema v" in line


# --- the folder of a SQLite database -----------------------------------------------------------


def test_check_of_a_new_database_in_a_missing_folder_says_it_will_be_created_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "data" / "monitor"
    status, line = check(tmp_path, f"sqlite:///{folder}/monitor.db", capsys)
    assert status == 0
    assert line == (
        f"ok    database: sqlite:///{folder}/monitor.db (new: the folder {folder} and the tables "
        "are created on first use)"
    )
    assert not (tmp_path / "data").exists()  # `check` changes nothing


def test_check_fails_when_the_database_folder_cannot_be_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").write_text("a file where the folder should be")
    status, line = check(tmp_path, f"sqlite:///{tmp_path}/data/monitor/monitor.db", capsys)
    assert status == 2
    assert line == (
        f"FAIL  database: sqlite:///{tmp_path}/data/monitor/monitor.db: cannot create the folder "
        f"{tmp_path}/data/monitor: {tmp_path}/data is not a folder"
    )


NOBODY = 65534


def as_another_user(config: Path, command: str) -> tuple[int, str]:
    """`support-monitor COMMAND` (exit status, output) as a user the folder's permission bits
    apply to. Root ignores them, so under root it runs in a forked child that became `nobody`
    (not a new interpreter: nobody may not read the one under /root); the child runs what the
    parent imported, so the command runs once in the parent first, where it changes nothing
    a permission would have stopped (`check` writes nothing; its test folder is left alone)."""
    argv = ["--config", str(config), command]
    if os.geteuid() != 0:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
        return status, out.getvalue() + err.getvalue()
    try:
        pwd.getpwuid(NOBODY)
    except KeyError:
        pytest.skip("running as root, and there is no user `nobody` to run the command as")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(["--config", str(config), "check"])  # imports what the child will need
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 99
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            said = io.StringIO()
            with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
                status = main(argv)
            os.write(write, said.getvalue().encode())
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails
            os.write(write, f"child failed: {exc!r}".encode())
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        output = pipe.read().decode()
    _, code = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(code), output


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder another user can read (a pytest tmp_path sits in a folder only root enters)."""
    folder = Path(tempfile.mkdtemp(prefix="support-monitor-check-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for inside in folder.rglob("*"):
            if inside.is_dir():
                inside.chmod(0o755)
        shutil.rmtree(folder)


@pytest.mark.parametrize("existing", [False, True], ids=["new database", "existing database"])
def test_check_says_permission_denied_and_the_folder_when_the_database_folder_is_read_only(
    shared_folder: Path, existing: bool
) -> None:
    """A real folder without write permission (mode 555). An existing database in it cannot be
    written either: SQLite keeps its journal beside the file. Before, the existing one failed
    as "unable to open database file", the new one passed under root."""
    data = shared_folder / "data"
    data.mkdir()
    url = f"sqlite:///{data}/monitor.db"
    if existing:
        prepare(make_engine(url))
        (data / "monitor.db").chmod(0o666)
        for extra in data.glob("monitor.db-*"):
            extra.unlink()
    config = write_config(shared_folder, url)
    data.chmod(0o555)
    status, output = as_another_user(config, "check")
    assert status == 2, output
    (line,) = [x for x in output.splitlines() if " database: " in x]
    assert line == f"FAIL  database: {url}: permission denied: cannot write in {data}"
    status, output = as_another_user(config, "poll")  # as every command then finds
    assert status == 1, output
    assert f"error: database {url}: permission denied: cannot write in {data}" in output
