"""`check` catches what `run` would reject: each case here once passed `check` and then failed
`run`, `poll` or `report`. Config errors exit 2 and name the key; a source, the database or SMTP
failing exits 1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.config_file import load_settings
from monitor.publish.exporter import ProcessMetrics, registry_for
from monitor.publish.server import make_app, serve
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import utcnow
from tests.limits import cli, run_child
from tests.servers import free_port
from tests.test_cli import write_chat_config


def check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    status = main(["--config", str(config), "check"])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


@pytest.fixture
def listener() -> Iterator[int]:
    """A real TCP listener on a loopback port, which is not a support-monitor."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# --- nothing to monitor ------------------------------------------------------------------------


def test_check_of_an_empty_config_says_there_is_nothing_to_monitor_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "support-monitor.yaml"
    config.write_text("")
    status, out, _ = check(config, capsys)
    assert status == 2
    assert out[0].startswith("FAIL  config: nothing to monitor: no source is configured")
    assert "support-monitor init" in out[0]


@pytest.mark.parametrize("command", ["run", "poll"])
def test_run_and_poll_refuse_a_config_with_nothing_to_monitor_in_one_line(
    tmp_path: Path, command: str
) -> None:
    config = tmp_path / "support-monitor.yaml"
    config.write_text(f"metrics: {{listen: '127.0.0.1:{free_port()}'}}\n")
    done = run_child(cli("--config", str(config), command), deadline=30)
    assert done.status == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        "config error: nothing to monitor: no source is configured (add one under `sources:`; "
        "`support-monitor init` writes a starter config)"
    ]


def test_check_warns_when_every_source_is_disabled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_chat_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["sources"][0]["enabled"] = False
    config.write_text(yaml.safe_dump(raw))
    status, out, _ = check(config, capsys)
    assert status == 0
    assert "warn  config: every source is disabled (`enabled: false`): `run` polls none" in out


# --- the listen address ------------------------------------------------------------------------


def test_check_fails_with_2_naming_the_key_and_the_address_when_the_port_is_taken(
    tmp_path: Path, listener: int, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_chat_config(tmp_path, metrics={"listen": f"127.0.0.1:{listener}"})
    status, out, _ = check(config, capsys)
    assert status == 2
    (failed,) = [line for line in out if line.startswith("FAIL")]
    assert failed == (
        f"FAIL  metrics.listen: cannot listen on 127.0.0.1:{listener}: the address is already "
        "in use (another program listens there: stop it or choose another port)"
    )


def test_check_releases_the_listen_address_it_tried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    config = write_chat_config(tmp_path, metrics={"listen": f"127.0.0.1:{port}"})
    status, out, _ = check(config, capsys)
    assert status == 0 and f"ok    metrics.listen: 127.0.0.1:{port} is free" in out
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))  # free again: `run` may have it


def test_run_says_in_one_line_that_the_listen_address_is_taken_and_exits_2(
    tmp_path: Path, listener: int
) -> None:
    config = write_chat_config(tmp_path, metrics={"listen": f"127.0.0.1:{listener}"})
    done = run_child(cli("--config", str(config), "run"), deadline=30)
    assert done.status == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if " INFO " not in line]
    assert errors == [
        f"config error: metrics.listen: cannot listen on 127.0.0.1:{listener}: the address is "
        "already in use (another program listens there: stop it or choose another port)"
    ]
    assert "Errno" not in done.stderr and "Traceback" not in done.stderr


def test_check_accepts_the_address_of_the_support_monitor_already_serving_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checking the config of the service that runs: its own port is taken, by itself."""
    port = free_port()
    config = write_chat_config(tmp_path, metrics={"listen": f"127.0.0.1:{port}"})
    settings = load_settings(config)
    engine = make_engine(settings.file.database, settings.base_dir)
    prepare(engine)
    registry = registry_for(engine, settings, utcnow, ProcessMetrics())
    server, _thread = serve(f"127.0.0.1:{port}", make_app(registry, engine, utcnow))
    try:
        status, out, _ = check(config, capsys)
    finally:
        server.shutdown()
        server.server_close()
    assert status == 0
    assert any(
        line.startswith(f"ok    metrics.listen: 127.0.0.1:{port} is served by a running ")
        for line in out
    )


def test_check_fails_on_a_listen_address_that_is_not_this_machines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_chat_config(tmp_path, metrics={"listen": "192.0.2.1:9742"})  # TEST-NET-1
    status, out, _ = check(config, capsys)
    assert status == 2
    assert (
        "FAIL  metrics.listen: cannot listen on 192.0.2.1:9742: it is not an address of this "
        "machine" in out
    )


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_an_ipv6_listen_address_is_served(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`[::1]:port` passes the config, so `run` must be able to listen there."""
    if not ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.bind(("::1", 0))
        port = sock.getsockname()[1]
    config = write_chat_config(tmp_path, metrics={"listen": f"[::1]:{port}"})
    status, out, _ = check(config, capsys)
    assert status == 0 and f"ok    metrics.listen: [::1]:{port} is free" in out
    server, _thread = serve(f"[::1]:{port}", make_app(registry_for_nothing(), None, utcnow))
    try:
        with socket.create_connection(("::1", port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert conn.recv(64).startswith(b"HTTP/1.0 200")
    finally:
        server.shutdown()
        server.server_close()


def registry_for_nothing() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


# --- holidays, thresholds: config errors that used to wait for `run` ---------------------------


def test_check_of_an_unknown_holiday_country_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calendar = {"timezone": "UTC", "hours": {"mon": ["09:00-17:00"]}, "holidays": {"country": "XX"}}
    config = write_chat_config(tmp_path, calendars={"office": calendar})
    status, out, err = check(config, capsys)
    assert status == 2 and out == []
    assert err.startswith("config error: calendars.office.holidays.country: no holiday data for")


def test_check_of_hold_max_below_hold_warn_in_a_source_exits_2_naming_the_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_chat_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["sources"][0]["targets"] = {"hold_max": "3m"}
    config.write_text(yaml.safe_dump(raw))
    status, _, err = check(config, capsys)
    assert status == 2
    assert err.splitlines() == [
        "config error: sources[0].targets.hold_max (source website-chat): 3m is below "
        "hold_warn, 5m from the built-in default (a caller would be critical before being a "
        "warning)"
    ]


# --- a sample of each file source's first records ---------------------------------------------

# A RingCentral-style call log export: the date and the time of a call in two columns.
SPLIT_DATE_AND_TIME = (
    "Type,Phone Number,Name,Date,Time,Action,Action Result,Duration\n"
    "Voice,+44 1632 960001,Ann,11/19/2026,9:05 AM,Phone Call,Accepted,0:03:10\n"
    "Voice,+44 1632 960002,Ben,11/19/2026,9:12 AM,Phone Call,Missed,0:00:40\n"
    "Voice,+44 1632 960003,Cat,11/19/2026,10:01 AM,Phone Call,Accepted,0:01:10\n"
)


def call_log_config(tmp_path: Path, columns: dict[str, str], **keys: Any) -> Path:
    (tmp_path / "calls.csv").write_text(SPLIT_DATE_AND_TIME)
    source = {"name": "calls", "kind": "call_csv", "path": "calls.csv", "columns": columns, **keys}
    config = tmp_path / "support-monitor.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": "sqlite:///monitor.db",
                "sources": [source],
                "metrics": {"listen": f"127.0.0.1:{free_port()}"},
            }
        )
    )
    return config


def test_check_fails_a_file_source_whose_first_records_do_not_parse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, `check` said ok (the file exists) and the first poll rejected every row."""
    config = call_log_config(
        tmp_path,
        {"entered": "Date", "caller": "Phone Number", "outcome": "Action Result"},
        outcomes={"Accepted": "answered", "Missed": "abandoned"},
    )
    status, out, _ = check(config, capsys)
    assert status == 1
    (failed,) = [line for line in out if line.startswith("FAIL")]
    assert failed.startswith("FAIL  source calls (call_csv): 1 file, ")
    assert (
        "B; every record read was rejected (3): calls.csv:2: Date is not a time in the "
        "configured formats" in failed
    )
    assert failed.endswith(
        "(and 2 more); do the source's settings (columns, time format, timezone, layout) fit "
        "its files?"
    )
    assert main(["--config", str(config), "poll"]) == 1  # as the poll finds


def test_check_says_what_the_sample_of_a_file_source_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_chat_config(tmp_path)
    status, out, _ = check(config, capsys)
    assert status == 0
    (line,) = [line for line in out if "website-chat" in line]
    assert line.startswith("ok    source website-chat (chat_jsonl): 1 file, ")
    assert line.endswith(" B; 6 records read: 6 events")


def test_check_of_a_sample_with_some_rejections_is_ok_and_shows_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_chat_config(tmp_path)
    with (tmp_path / "chat.jsonl").open("a") as log:
        log.write("{not json\n")
    status, out, _ = check(config, capsys)
    assert status == 0
    (line,) = [line for line in out if "website-chat" in line]
    assert "; 7 records read: 6 events, 1 rejected (first: chat.jsonl:7: not valid JSON" in line
