"""Loading the configuration: strict, located errors, durations, secrets, targets, calendars."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import HolidaySettings, parse_duration
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
        "sources[1].pth (source b): unknown key"
    ]


def test_a_bad_target_names_its_full_path() -> None:
    found = problems({"sources": [{**CHAT, "targets": {"hold_warn": "soon"}}]})
    assert len(found) == 1 and found[0].startswith(
        "sources[0].targets.hold_warn (source website-chat): expected a duration"
    )


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"timezone": "Mars/Olympus", "targets": {"reply_within": "x"}})
    assert [p.split(":")[0] for p in found] == ["timezone", "targets.reply_within"]


def test_an_unknown_kind_lists_the_known_ones() -> None:
    (found,) = problems({"sources": [{"name": "x", "kind": "fax"}]})
    assert (
        found.startswith("sources[0].kind (source x): unknown kind 'fax' (known: ")
        and "chat_jsonl" in found
    )


def test_two_sources_cannot_share_a_name() -> None:
    assert problems({"sources": [CHAT, CHAT]}) == [
        "sources[1].name: 'website-chat' is used by another source"
    ]


def test_a_source_must_name_an_existing_calendar() -> None:
    assert problems({"sources": [{**CHAT, "calendar": "office"}]}) == [
        "sources[0].calendar (source website-chat): no calendar named 'office'"
    ]


def test_a_source_must_name_an_existing_team() -> None:
    teams = {"billing": {"agents": ["ann@example.com"]}}
    slack = {"name": "s", "kind": "slack_export", "path": "x", "channels": ["c"]}
    assert problems({"teams": teams, "sources": [{**CHAT, "team": "bliling"}]}) == [
        "sources[0].team (source website-chat): no team named 'bliling' (teams: billing)"
    ]
    # `team:` once named a Slack workspace's team id: the error says where that went.
    assert problems({"sources": [{**slack, "team": "T0SHOP01"}]}) == [
        "sources[0].team (source s): no team named 'T0SHOP01' (teams: none configured); a Slack "
        "workspace's team id is `workspace_team`"
    ]


def test_an_agent_is_in_one_team_and_may_be_listed_by_several_identifiers() -> None:
    teams = {
        "billing": {"agents": [["Ann Smith", "ann@example.com", "Agent/1001"], "PJSIP/1002"]},
        "helpdesk": {"agents": ["ANN@example.com", ["Cy", "cy@example.com", "cy"]]},
    }
    assert problems({"teams": teams}) == [
        "teams.helpdesk.agents[0]: 'ANN@example.com' is already team 'billing''s",
    ]
    settings = load({"teams": {"billing": teams["billing"]}, "reports": {"agents": True}})
    assert settings.file.teams["billing"].members() == [
        ("Ann Smith", "ann@example.com", "Agent/1001"),
        ("PJSIP/1002",),
    ]
    assert settings.file.reports.agents is True
    assert load({}).file.reports.agents is False  # teams, not people, by default
    assert problems({"teams": {"a b/c": {}}}) == [
        "teams: team name 'a b/c': letters, digits, spaces and _.&'- (at most 63)"
    ]
    assert problems({"teams": {"x": {"agents": ["Cy", "cy"]}}}) == [
        "teams.x.agents[1]: 'cy' is already another agent's"
    ]
    assert problems({"teams": {"x": {"agents": [[]]}}}) == [
        "teams.x.agents: an agent cannot be empty"
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


# --- what `run` would reject later is rejected when the file is loaded -----------------------

PHONES = {"name": "phones", "kind": "asterisk_queue_log", "path": "queue_log"}


def holidays(**given: str) -> dict[str, Any]:
    office = {"timezone": "Europe/London", "hours": {"mon": ["09:00-17:00"]}, "holidays": given}
    return {"calendars": {"office": office}, "sources": [CHAT]}


def test_an_unknown_holiday_country_is_a_config_error_naming_the_key() -> None:
    """It used to pass, and every command that measures then failed with `no holiday data`."""
    (found,) = problems(holidays(country="XX"))
    assert found == (
        "calendars.office.holidays.country: no holiday data for country 'XX': expected an ISO "
        "3166 code the `holidays` package knows, such as GB, US, DE or FR"
    )


def test_an_unknown_holiday_subdivision_lists_the_subdivisions_of_the_country() -> None:
    (found,) = problems(holidays(country="GB", subdivision="LDN"))
    assert found == (
        "calendars.office.holidays.subdivision: GB has no holiday subdivision 'LDN' "
        "(its subdivisions: ENG, NIR, SCT, WLS)"
    )


def test_holiday_codes_are_known_whatever_their_case() -> None:
    settings = load(holidays(country="gb", subdivision="eng"))
    assert settings.file.calendars["office"].holidays == HolidaySettings(
        country="GB", subdivision="ENG"
    )


@pytest.mark.parametrize(
    ("raw", "found"),
    [
        (
            {"targets": {"hold_max": "4m"}},
            "targets.hold_max: 4m is below hold_warn, 5m from the built-in default",
        ),
        (
            {"targets": {"hold_warn": "20m"}},
            "targets.hold_warn: 20m is above hold_max, 13m from the built-in default",
        ),
        (
            {"targets": {"hold_warn": "2m", "phone": {"hold_max": "90s"}}},
            "targets.phone.hold_max: 90s is below hold_warn, 2m from targets.hold_warn",
        ),
        (
            {"sources": [CHAT, {**PHONES, "targets": {"hold_warn": "14m"}}]},
            "sources[1].targets.hold_warn (source phones): 14m is above hold_max, 13m from the "
            "built-in default",
        ),
        (
            {
                "targets": {"phone": {"hold_max": "10m"}},
                "sources": [{**PHONES, "targets": {"hold_warn": "11m"}}],
            },
            "sources[0].targets.hold_warn (source phones): 11m is above hold_max, 10m from "
            "targets.phone.hold_max",
        ),
    ],
)
def test_hold_max_below_hold_warn_is_an_error_on_the_key_that_makes_it(
    raw: dict[str, Any], found: str
) -> None:
    """Wherever targets resolve: the top level, a channel's section, a source's own."""
    raw = {"sources": [CHAT], **raw}
    assert problems(raw) == [f"{found} (a caller would be critical before being a warning)"]


def test_a_source_that_sets_both_hold_thresholds_in_order_is_fine() -> None:
    raw = {"targets": {"hold_max": "4m"}, "sources": [{**PHONES, "targets": {"hold_warn": "3m"}}]}
    (found,) = problems(raw)  # the top level is still wrong for every other source
    assert found.startswith("targets.hold_max: 4m is below hold_warn")
    raw = {"sources": [{**PHONES, "targets": {"hold_warn": "1m", "hold_max": "2m"}}]}
    assert load(raw).targets_for(load(raw).sources[0]).hold_max == timedelta(minutes=2)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("help desk", "'help desk' has a space"),
        ("-phones", "this one starts with '-'"),
        ("", "this one is empty"),
        ("x" * 64, "this one has 64 characters"),
        ("caf\u00e9", "'caf\u00e9' has '\u00e9'"),
    ],
)
def test_a_name_that_breaks_the_naming_rule_gets_a_sentence(name: str, why: str) -> None:
    (found,) = problems({"sources": [{**CHAT, "name": name}]})
    assert found == (
        "sources[0].name: a source name is 1 to 63 letters, digits, '-', '_' or '.', starting "
        f"with a letter or a digit (it is the `source` label of every metric); {why}"
    )


def test_every_problem_inside_a_source_names_the_source() -> None:
    raw = {
        "sources": [
            CHAT,
            {**PHONES, "every": "often", "max_queues": 0},
            {"name": "mail", "kind": "imap", "host": "imap.example.com"},
        ]
    }
    assert [p.split(":")[0] for p in problems(raw)] == [
        "sources[1].every (source phones)",
        "sources[1].max_queues (source phones)",
        "sources[2].username (source mail)",
    ]


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"digest": {"to": ["lead@"]}}, "digest.to[0]"),
        ({"alerts": {"notify": [{"kind": "email", "to": ["on call"]}]}}, "alerts.notify[0].to[0]"),
        ({"smtp": {"host": "smtp.example.com", "sender": "monitor"}}, "smtp.sender"),
        ({"digest": {"to": ["a@example.com, b@example.com"]}}, "digest.to[0]"),
    ],
)
def test_an_address_the_mailer_could_not_write_is_a_config_error(
    raw: dict[str, Any], where: str
) -> None:
    """`lead@` used to load, and the digest then failed at 8 o'clock with an IndexError."""
    smtp = {"host": "smtp.example.com", "sender": "Monitor <monitor@example.com>"}
    found = problems({"smtp": smtp, **raw})
    assert [p.split(": ")[0] for p in found] == [where]
    assert "expected one e-mail address such as lead@example.com" in found[0]


def test_addresses_with_display_names_load() -> None:
    smtp = {"host": "smtp.example.com", "sender": "Support Monitor <monitor@example.com>"}
    settings = load({"smtp": smtp, "digest": {"to": ["Lead <lead@example.com>", "b@example.org"]}})
    assert settings.file.digest is not None and len(settings.file.digest.to) == 2


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"smtp": {"host": "h", "sender": "m@example.com", "timeout": 0}}, "smtp.timeout"),
        (
            {
                "alerts": {
                    "notify": [{"kind": "webhook", "url": "https://x.example", "timeout": "0s"}]
                }
            },
            "alerts.notify[0].timeout",
        ),
    ],
)
def test_a_timeout_of_zero_is_a_config_error(raw: dict[str, Any], where: str) -> None:
    assert problems(raw) == [
        f"{where}: expected a duration longer than 0s (a timeout of 0 fails every exchange)"
    ]
