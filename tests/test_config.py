"""Loading the configuration: strict, located errors, durations, secrets, targets, calendars."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import parse_duration
from monitor.config_file import ConfigError, load_settings, settings_from_mapping

CHAT = {"name": "website-chat", "kind": "chat_jsonl", "path": "chat.jsonl"}


def load(raw: dict[str, Any], base: Path = Path(".")) -> Any:
    return settings_from_mapping(raw, base)


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(raw)
    return caught.value.problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("24h", 86400),
        ("2d", 172800),
        ("1w", 604800),
        (45, 45),
        ("1.5h", 5400),
        ("500ms", 0.5),
    ],
)
def test_durations_are_written_with_units_or_as_seconds(text: Any, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["5 minutes", "-5m", "m5", True, "", "5x"])
def test_a_malformed_duration_is_rejected(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_an_empty_file_is_a_valid_config_with_defaults() -> None:
    settings = load({})
    assert settings.sources == () and settings.file.database == "sqlite:///support-monitor.db"
    assert settings.file.metrics.listen == "127.0.0.1:9742"


def test_an_unknown_top_level_key_is_an_error_naming_it() -> None:
    assert problems({"timezon": "UTC"}) == ["timezon: unknown key"]


def test_a_typo_inside_a_source_names_the_source_and_the_key() -> None:
    assert problems({"sources": [CHAT, {**CHAT, "name": "b", "pth": "x"}]}) == [
        "sources[1].pth: unknown key"
    ]


def test_a_bad_target_names_its_full_path() -> None:
    found = problems({"sources": [{**CHAT, "targets": {"hold_warn": "soon"}}]})
    assert len(found) == 1 and found[0].startswith(
        "sources[0].targets.hold_warn: expected a duration"
    )


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"timezone": "Mars/Olympus", "targets": {"reply_within": "x"}})
    assert [p.split(":")[0] for p in found] == ["timezone", "targets.reply_within"]


def test_an_unknown_kind_lists_the_known_ones() -> None:
    (found,) = problems({"sources": [{"name": "x", "kind": "fax"}]})
    assert (
        found.startswith("sources[0].kind: unknown kind 'fax' (known: ") and "chat_jsonl" in found
    )


def test_two_sources_cannot_share_a_name() -> None:
    assert problems({"sources": [CHAT, CHAT]}) == [
        "sources[1].name: 'website-chat' is used by another source"
    ]


def test_a_source_must_name_an_existing_calendar() -> None:
    assert problems({"sources": [{**CHAT, "calendar": "office"}]}) == [
        "sources[0].calendar: no calendar named 'office'"
    ]


def test_environment_variables_are_interpolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_DB", "sqlite:///from-env.db")
    assert load({"database": "${MONITOR_DB}"}).file.database == "sqlite:///from-env.db"
    assert (
        load({"database": "${MONITOR_UNSET_DB:-sqlite:///default.db}"}).file.database
        == "sqlite:///default.db"
    )


def test_a_missing_environment_variable_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)
    raw = {
        "smtp": {
            "host": "smtp.example.com",
            "sender": "m@example.com",
            "password": "${SMTP_PASSWORD}",
        }
    }
    assert problems(raw) == ["smtp.password: environment variable SMTP_PASSWORD is not set"]


def test_secrets_can_come_from_files_and_never_show_in_reprs(tmp_path: Path) -> None:
    from monitor.config import read_secret

    (tmp_path / "smtp-password").write_text("s3cret\n")
    settings = load(
        {"smtp": {"host": "h", "sender": "m@example.com", "password_file": "smtp-password"}},
        tmp_path,
    )
    smtp = settings.file.smtp
    assert smtp is not None
    assert read_secret(smtp.password, smtp.password_file, tmp_path) == "s3cret"
    inline = load(
        {"smtp": {"host": "h", "sender": "m@example.com", "password": "hunter2"}}
    ).file.smtp
    assert "hunter2" not in repr(inline)


def test_source_targets_override_the_defaults_which_override_the_builtins() -> None:
    settings = load(
        {
            "targets": {"reply_within": "8h", "hold_warn": "4m"},
            "sources": [{**CHAT, "kind": "chat_jsonl", "targets": {"hold_warn": "3m"}}],
        }
    )
    targets = settings.targets_for(settings.sources[0])
    assert targets.reply_within == timedelta(minutes=2)  # the top-level one is not chat's
    assert targets.hold_warn == timedelta(minutes=3)
    assert targets.hold_max == timedelta(minutes=13)


def test_chat_sources_default_to_a_two_minute_reply_target() -> None:
    settings = load({"sources": [CHAT]})
    assert settings.targets_for(settings.sources[0]).reply_within == timedelta(minutes=2)


def test_the_e_mail_reply_target_never_changes_chats_and_chat_has_its_own_section() -> None:
    """`targets.reply_within: 24h` is written for mail and callbacks: live chats keep their
    2 minutes unless `targets.chat` (or the source) says otherwise."""
    mail = {"name": "inbox", "kind": "mbox", "path": "inbox.mbox"}
    phones = {"name": "phones", "kind": "asterisk_queue_log", "path": "queue_log"}
    settings = load({"targets": {"reply_within": "24h"}, "sources": [CHAT, mail, phones]})
    chat, inbox, queue = (settings.targets_for(s).reply_within for s in settings.sources)
    assert (chat, inbox, queue) == (timedelta(minutes=2), timedelta(hours=24), timedelta(hours=24))

    layered = load(
        {
            "targets": {"reply_within": "8h", "hold_warn": "4m", "chat": {"reply_within": "5m"}},
            "sources": [
                CHAT,
                {**CHAT, "name": "vip-chat", "targets": {"reply_within": "1m"}},
                mail,
            ],
        }
    )
    chat_t, vip, inbox_t = (layered.targets_for(s) for s in layered.sources)
    assert (chat_t.reply_within, vip.reply_within, inbox_t.reply_within) == (
        timedelta(minutes=5),
        timedelta(minutes=1),
        timedelta(hours=8),
    )
    assert chat_t.hold_warn == inbox_t.hold_warn == timedelta(minutes=4)
    assert problems({"targets": {"voicemail": {"reply_within": "1h"}}}) == [
        "targets.voicemail: unknown key"
    ]


def test_the_example_config_gives_its_chats_their_two_minutes() -> None:
    example = load_settings(Path(__file__).resolve().parent.parent / "config.example.yaml")
    chats = [s for s in example.sources if s.kind == "zendesk_chat"]
    assert chats and all(example.targets_for(s).reply_within == timedelta(minutes=2) for s in chats)


def test_calendar_intervals_are_validated() -> None:
    raw = {"calendars": {"office": {"timezone": "Europe/London", "hours": {"mon": ["9-17"]}}}}
    (found,) = problems(raw)
    assert found.startswith("calendars.office.hours.mon[0]: expected an opening interval")


def test_a_calendar_takes_shifts_holidays_and_exceptions() -> None:
    raw = {
        "calendars": {
            "night": {
                "timezone": "Europe/London",
                "hours": {"mon": ["09:00-12:00", "13:00-17:00"], "fri": ["22:00-06:00"]},
                "holidays": {"country": "GB", "subdivision": "ENG"},
                "closed": ["2026-12-24"],
                "open": {"2026-12-27": ["10:00-14:00"]},
            }
        }
    }
    assert load(raw).file.calendars["night"].hours["fri"] == ["22:00-06:00"]


def test_yaml_syntax_errors_point_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("timezone: UTC\nsources: [\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.problems[0].startswith(f"{path}:")


def test_a_missing_file_is_one_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "nope.yaml")
    assert "cannot read the config file" in caught.value.problems[0]
