"""`support-monitor init`: a short starter config with only the kinds asked for, which loads and
validates as written (placeholders marked, secrets from the environment), and never replaces a
file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from connectors import CONNECTORS
from monitor.cli import main
from monitor.config_file import ConfigError, load_settings
from monitor.starter import MARK, STARTERS

ROOT = Path(__file__).resolve().parent.parent


def init(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["init", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def with_secrets(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """Set every `${NAME}` the file refers to, as the user is told to."""
    for name in re.findall(r"\$\{([A-Z_]+)\}", text):
        if name != "NAME":  # the header's own example
            monkeypatch.setenv(name, "from-the-environment")


@pytest.mark.parametrize("kind", sorted(CONNECTORS))
def test_the_starter_config_of_every_kind_loads_as_written(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "support-monitor.yaml"
    status, out, _ = init(capsys, "--kinds", kind, str(path))
    assert status == 0
    assert out.startswith(f"wrote {path}: edit the lines marked CHANGE ME")
    text = path.read_text()
    with_secrets(monkeypatch, text)
    settings = load_settings(path)
    assert [s.kind for s in settings.sources] == [kind]
    assert MARK in text


def test_a_starter_config_of_several_kinds_loads_with_a_source_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "monitor.yaml"
    kinds = ["imap", "asterisk_queue_log", "call_csv", "chat_jsonl", "answering_service_csv"]
    assert init(capsys, "--kinds", ",".join(kinds), str(path))[0] == 0
    with_secrets(monkeypatch, path.read_text())
    settings = load_settings(path)
    assert [s.kind for s in settings.sources] == kinds
    assert len({s.name for s in settings.sources}) == len(kinds)


def test_every_kind_together_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "monitor.yaml"
    assert init(capsys, "--kinds", ",".join(sorted(CONNECTORS)), str(path))[0] == 0
    with_secrets(monkeypatch, path.read_text())
    assert len(load_settings(path).sources) == len(CONNECTORS)


def test_a_starter_config_holds_only_what_was_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "monitor.yaml"
    assert init(capsys, "--kinds", "chat_jsonl", str(path))[0] == 0
    raw = yaml.safe_load(path.read_text())
    assert set(raw) == {"timezone", "database", "agents", "targets", "sources", "metrics"}
    assert raw["targets"] == {"chat": {"reply_within": "2m"}}  # no hold targets without phones
    assert len(path.read_text().splitlines()) < 50


def test_secrets_are_environment_references_and_loading_without_them_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "monitor.yaml"
    status, out, _ = init(capsys, "--kinds", "imap", str(path))
    assert status == 0 and "set SUPPORT_IMAP_PASSWORD in the environment" in out
    (source,) = yaml.safe_load(path.read_text())["sources"]
    assert source["password"] == "${SUPPORT_IMAP_PASSWORD}"
    monkeypatch.delenv("SUPPORT_IMAP_PASSWORD", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.problems == [
        "sources[0].password (source support-mail): environment variable SUPPORT_IMAP_PASSWORD "
        "is not set"
    ]


def test_every_placeholder_line_is_marked() -> None:
    """Values that cannot be right for a site (example.com, made-up paths and headers) carry
    the mark on their line or on the line that opens their mapping."""
    for starter in STARTERS.values():
        for line in starter.lines:
            if "example.com" in line or line.startswith(("path:", "sent_path:", "channels:")):
                assert MARK in line, line


def test_init_never_overwrites_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "support-monitor.yaml"
    path.write_text("# mine\n")
    status, _, err = init(capsys, "--kinds", "imap", str(path))
    assert status == 2
    assert err == f"support-monitor: {path} exists already; init never overwrites a file\n"
    assert path.read_text() == "# mine\n"


def test_init_writes_to_the_config_path_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SUPPORT_MONITOR_CONFIG", raising=False)
    assert init(capsys)[0] == 0  # default kind: imap
    assert "kind: imap" in (tmp_path / "support-monitor.yaml").read_text()
    assert main(["--config", "other.yaml", "init", "--kinds", "mbox"]) == 0
    assert "kind: mbox" in (tmp_path / "other.yaml").read_text()


def test_init_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = init(capsys, "--kinds", "livechat", "-")
    assert status == 0
    assert yaml.safe_load(out)["sources"][0]["kind"] == "livechat"


def test_an_unknown_kind_is_a_usage_error_listing_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = init(capsys, "--kinds", "imap,fax", str(tmp_path / "x.yaml"))
    assert status == 2
    assert err.startswith("support-monitor: --kinds: unknown kind 'fax' (known: ")
    assert not (tmp_path / "x.yaml").exists()


def test_the_readme_quick_start_begins_with_init() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "support-monitor init --kinds" in quick_start
