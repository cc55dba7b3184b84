"""The config file, bounded and discreet: a hostile file is refused quickly with one clear
error, ports and URLs are checked when the file is loaded, and no error shows a secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor import config as config_module
from monitor.config_file import ConfigError, load_settings, settings_from_mapping
from tests.limits import cli, run_child

# 342 bytes: nine lists of nine aliases each, 9**9 (387 million) strings once expanded.
ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [
        f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    ]
)
# Peak memory of `check` on a small valid config is about 60 MB (the interpreter and imports).
CHECK_MEMORY_MB = 150


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(raw, Path("."))
    return caught.value.problems


def test_a_yaml_alias_bomb_is_one_config_error_within_a_second_and_bounded_memory(
    tmp_path: Path,
) -> None:
    config = tmp_path / "bomb.yaml"
    config.write_text(ALIAS_BOMB + "\n")
    done = run_child(cli("--config", str(config), "check"), deadline=20, memory_mb=1024)
    assert done.status == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"config error: {config}: the YAML expands to more than 100,000 values "
        "(aliases repeat what they point to): write the settings out"
    ]
    assert done.peak_mb < CHECK_MEMORY_MB, f"peak {done.peak_mb:.0f} MB"
    assert done.seconds < 10


def test_a_few_aliases_for_shared_settings_still_work(tmp_path: Path) -> None:
    config = tmp_path / "shared.yaml"
    config.write_text(
        "targets: &t {hold_warn: 3m}\n"
        "sources:\n"
        "  - {name: a, kind: chat_jsonl, path: a.jsonl, targets: *t}\n"
        "  - {name: b, kind: chat_jsonl, path: b.jsonl, targets: *t}\n"
    )
    settings = load_settings(config)
    assert [s.targets.hold_warn for s in settings.sources] == [settings.file.targets.hold_warn] * 2


def test_a_config_file_larger_than_a_megabyte_is_refused_unread(tmp_path: Path) -> None:
    config = tmp_path / "huge.yaml"
    config.write_text("# padding\n" * 120_000)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.problems == [f"{config}: the config file is larger than 1024 kB"]


def test_an_error_under_a_key_holding_a_variable_shows_the_variable_not_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LISTEN_SECRET", "TOPSECRET-listen")
    monkeypatch.setenv("EVERY_SECRET", "TOPSECRET-every")
    found = problems(
        {
            "metrics": {"listen": "${LISTEN_SECRET}"},
            "alerts": {"every": "x${EVERY_SECRET}"},
        }
    )
    assert not any("TOPSECRET" in line for line in found), found
    assert any(line.startswith("metrics.listen:") and "${LISTEN_SECRET}" in line for line in found)
    assert any(line.startswith("alerts.every:") and "${EVERY_SECRET}" in line for line in found)


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (
            {"alerts": {"notify": [{"kind": "webhook", "url": "http://127.0.0.1:99999/hook"}]}},
            "alerts.notify[0].url",
        ),
        ({"alerts": {"notify": [{"kind": "webhook", "url": "https:///no-host"}]}}, "url"),
        ({"database": "postgresql+psycopg://monitor@db.example:fivefour/monitor"}, "database"),
        ({"database": "postgresql+psycopg://monitor@db.example:99999/monitor"}, "database"),
        ({"database": "not a url"}, "database"),
        ({"smtp": {"host": "mail.example", "port": 99999, "sender": "m@example.com"}}, "smtp.port"),
        ({"smtp": {"host": "mail.example", "port": 0, "sender": "m@example.com"}}, "smtp.port"),
        (
            {
                "sources": [
                    {"name": "i", "kind": "imap", "host": "h", "port": 70000, "username": "u"}
                    | {"password": "p"}
                ]
            },
            "sources[0].port",
        ),
        (
            {
                "sources": [
                    {"name": "q", "kind": "asterisk_queue_log", "table_url": "mysql://a@b:x/c"}
                ]
            },
            "sources[0].table_url",
        ),
    ],
)
def test_ports_and_urls_are_config_errors_when_the_file_is_loaded(
    raw: dict[str, Any], where: str
) -> None:
    found = problems(raw)
    assert any(where in line for line in found), found


def test_a_database_password_holding_an_at_sign_is_an_error_naming_the_key_and_not_the_password(
    tmp_path: Path,
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text("database: postgresql+psycopg://monitor:TOP@SECRET-part@127.0.0.1/db\n")
    # A poll with a source checks the URL after forking the source's reading child (which it
    # then stops): the same error, the same status.
    (tmp_path / "chat.jsonl").write_text("")
    with_source = tmp_path / "with-source.yaml"
    with_source.write_text(
        config.read_text() + "sources: [{name: chat, kind: chat_jsonl, path: chat.jsonl}]\n"
    )
    for command, file in (("check", config), ("poll", config), ("poll", with_source)):
        done = run_child(cli("--config", str(file), command), deadline=30)
        assert done.status == 2, done.stdout + done.stderr
        assert "SECRET" not in done.stdout + done.stderr
        assert done.stderr.startswith("config error: database: ")
        assert "percent-encode" in done.stderr


def test_a_percent_encoded_password_works_and_is_never_shown() -> None:
    url = "postgresql+psycopg://monitor:TOP%40SECRET%2Fpart@db.example:5433/monitor"
    settings = settings_from_mapping({"database": url}, Path("."))
    assert settings.file.database == url
    assert config_module.masked_url(url) == "postgresql+psycopg://***@db.example:5433/monitor"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:TOP@SECRET@host/db", "postgresql://***@host/db"),
        ("sqlite:///monitor.db", "sqlite:///monitor.db"),
        ("postgresql+psycopg://host/db?password=TOPSECRET", "postgresql+psycopg://host/db"),
        ("postgresql://user@host:5432/db", "postgresql://***@host:5432/db"),
        ("postgresql://user:p@host:notaport/db", "postgresql://..."),
    ],
)
def test_urls_are_masked_from_the_scheme_to_the_host(url: str, shown: str) -> None:
    assert config_module.masked_url(url) == shown
    assert "TOPSECRET" not in config_module.masked_url(url)


def test_a_table_url_password_holding_an_at_sign_is_an_error_naming_the_source_key(
    tmp_path: Path,
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(
        "sources:\n"
        "  - name: phones-db\n"
        "    kind: asterisk_queue_log\n"
        "    table_url: postgresql+psycopg://asterisk:TOP@SECRET-part@127.0.0.1/asterisk\n"
    )
    done = run_child(cli("--config", str(config), "check"), deadline=30)
    assert done.status == 2, done.stdout + done.stderr
    assert done.stderr.startswith("config error: sources[0].table_url (source phones-db): ")
    assert "SECRET" not in done.stdout + done.stderr
