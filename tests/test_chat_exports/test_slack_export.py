"""The slack_export connector: a hand-built workspace export polled into a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_phone_logs.store import inquiries, messages, open_store, poll

from connectors.base import ConnectorError
from monitor.config import settings_from_mapping
from monitor.ingest import build_connector
from test_chat_exports.builders import (
    TEAM,
    SlackExport,
    at,
    message,
    slack_user,
    ts,
)

A, B, C, D, E, F = at(9 + 1 / 60), at(10), at(11), at(12), at(13), at(14)


def support_day(export: SlackExport) -> SlackExport:
    """A day in #support (and one message in #random, which is not configured)."""
    sam_edited = {"edited": {"user": "U01SAM", "ts": ts(at(9 + 40 / 60))}}
    changed = {
        "subtype": "message_changed",
        "hidden": True,
        "message": {"type": "message", "user": "U01SAM", "ts": ts(at(9 + 4 / 60))},
        "previous_message": {"type": "message", "user": "U01SAM", "ts": ts(at(9 + 4 / 60))},
    }
    return export.add(
        "support",
        message("U09DANA", at(9), subtype="channel_join"),
        # Thread A: a bot acknowledgement, a second question, then Sam; a follow-up, Lena.
        message("U09DANA", A, thread=A),
        message(None, at(9 + 65 / 3600), thread=A, subtype="bot_message", bot_id="B01HELP"),
        message("U09DANA", at(9 + 2 / 60), thread=A),
        message("U01SAM", at(9 + 4 / 60), thread=A, **sam_edited),
        message(None, at(9 + 40 / 60), micro=7, **changed),  # an edit: never a reply
        message("U09DANA", at(9 + 10 / 60), thread=A),
        message("U02LENA", at(9 + 30 / 60), thread=A),
        # B: a guest's top-level question nobody answers.
        message("U08GUEST", B),
        # C: an announcement by an agent (outreach: no inquiry).
        message("U01SAM", C),
        # D: someone from another team, not in users.json; answered the next day.
        {**message("U06EXT", D), "user_team": "T0ACME99", "team": "T0ACME99"},
        message("U01SAM", at(8, day=1), thread=D),
        # E: a question, then an edit record that looks like Sam replying in the thread.
        message("U09DANA", E, edited={"user": "U09DANA", "ts": ts(at(13 + 20 / 60))}),
        {**message(None, at(13 + 5 / 60), thread=E, **changed), "user": "U01SAM"},
        # F: a reply under a deleted parent (a tombstone) opens the inquiry.
        message("U09DANA", F, thread=F, subtype="tombstone", hidden=True),
        message("U09DANA", at(14 + 1 / 60), thread=F),
        message("U01SAM", at(14 + 3 / 60), thread=F),
    ).add("random", message("U09DANA", at(15)))


def slack(path: str = "export", **extra: Any) -> dict[str, Any]:
    return {"name": "slack", "kind": "slack_export", "path": path, "channels": ["support"]} | extra


def status(engine: Any) -> dict[tuple[str, str], tuple[str, float | None]]:
    return {
        (i.conversation.rpartition(":")[2], i.kind): (i.status, i.response_seconds)
        for i in inquiries(engine)
    }


def test_a_day_of_slack_threads_gives_the_expected_inquiries(tmp_path: Path) -> None:
    support_day(SlackExport(tmp_path / "export")).write()
    settings, engine = open_store(tmp_path, [slack()])
    result = poll(engine, settings, "slack")
    assert (result.messages, result.rejected) == (15, 0)
    assert status(engine) == {
        # From Dana's first message, not the second; the bot's reply answered nothing.
        (ts(A), "first"): ("answered", 180.0),
        (ts(A), "followup"): ("answered", 1200.0),
        (ts(B), "first"): ("open", None),
        (ts(D), "first"): ("answered", 20 * 3600.0),
        (ts(E), "first"): ("open", None),  # the edit record is not Sam's reply
        (ts(F), "first"): ("answered", 120.0),
    }
    stored = messages(engine)
    assert len(stored) == 15 and all(
        m.conversation.startswith("C0SUPPORT:") for m in stored.values()
    )
    automatic = {key.partition(":")[2] for key, m in stored.items() if m.automatic}
    assert automatic == {ts(at(9)), ts(at(9 + 65 / 3600)), ts(F)}  # join, bot, tombstone
    assert stored[f"C0SUPPORT:{ts(A)}"].customer == "Dana Whitfield"
    assert stored[f"C0SUPPORT:{ts(D)}"].customer == "U06EXT"  # unknown to users.json
    assert stored[f"C0SUPPORT:{ts(C)}"].side == "agent"


def test_members_are_agents_and_slack_connect_guests_and_other_teams_are_customers(
    tmp_path: Path,
) -> None:
    users = [
        slack_user("U01SAM", "Sam Porter"),
        slack_user("U02STRANGER", "Stan Ger", is_stranger=True),
        slack_user("U03GUEST", "Rita Stricted", is_restricted=True),
        slack_user("U04SINGLE", "Ulla Tra", is_ultra_restricted=True),
        slack_user("U05OTHER", "Otto Team", team_id="T0ACME99"),
        slack_user("U06BOT", "Helpbot", is_bot=True),
    ]
    export = SlackExport(tmp_path / "export", users=users)
    people = ["U01SAM", "U02STRANGER", "U03GUEST", "U04SINGLE", "U05OTHER", "U06BOT"]
    export.add("support", *(message(u, at(9, n)) for n, u in enumerate(people)))
    export.add("support", message("U07MEMBER", at(9, 9)))  # missing, but of our team
    export.add("support", {**message("U08VISITOR", at(9, 10)), "user_team": "T0ACME99"})
    export.write()
    settings, engine = open_store(tmp_path, [slack()])
    poll(engine, settings, "slack")
    sides = {
        m.external_id.partition(":")[2]: (m.side, m.automatic) for m in messages(engine).values()
    }
    assert [sides[ts(at(9, n))] for n in (0, 1, 2, 3, 4, 5, 9, 10)] == [
        ("agent", False),
        ("customer", False),
        ("customer", False),
        ("customer", False),
        ("customer", False),
        ("agent", True),  # a bot: automatic
        ("agent", False),
        ("customer", False),
    ]


def test_the_workspace_team_can_be_given_instead_of_guessed(tmp_path: Path) -> None:
    users = [slack_user(f"U0{n}", f"Acme {n}", team_id="T0ACME99") for n in range(3)]
    users.append(slack_user("U09SAM", "Sam Porter"))
    export = SlackExport(tmp_path / "export", users=users)
    export.add("support", message("U01", at(9)), message("U09SAM", at(9.5), thread=at(9)))
    export.write()
    settings, engine = open_store(tmp_path, [slack(team=TEAM)])
    poll(engine, settings, "slack")
    assert status(engine) == {(ts(at(9)), "first"): ("answered", 1800.0)}


def test_listed_agents_by_id_or_email_and_the_agents_setting_decide_who_is_us(
    tmp_path: Path,
) -> None:
    export = SlackExport(tmp_path / "export")
    export.add(
        "support",
        message("U02LENA", at(9)),  # a member, but not listed: a customer here
        message("U01SAM", at(9.1), thread=at(9)),  # listed by e-mail
        message("U09DANA", at(10)),
        message("U08GUEST", at(10.2), thread=at(10)),  # listed by id
    )
    export.write()
    settings, engine = open_store(tmp_path, [slack(agent_users=["SAM@shop.example", "u08guest"])])
    poll(engine, settings, "slack")
    assert {k: v[0] for k, v in status(engine).items()} == {
        (ts(at(9)), "first"): "answered",
        (ts(at(10)), "first"): "answered",
    }
    check = build_connector(settings, settings.sources[0]).check()
    assert check == "1 export, 1 channel, 1 day files, 2 agents"


def test_addresses_in_the_agents_setting_make_listed_mode_recognise_agents(tmp_path: Path) -> None:
    export = SlackExport(tmp_path / "export")
    export.add("support", message("U09DANA", at(9)), message("U02LENA", at(9.25), thread=at(9)))
    export.write()
    settings, engine = open_store(
        tmp_path, [slack(agent_users=["U01SAM"])], agents={"domains": ["shop.example"]}
    )
    poll(engine, settings, "slack")
    assert status(engine) == {(ts(at(9)), "first"): ("answered", 900.0)}


def test_a_re_export_of_the_same_workspace_adds_nothing(tmp_path: Path) -> None:
    support_day(SlackExport(tmp_path / "export")).write()
    settings, engine = open_store(tmp_path, [slack("exports/*")])
    exports = tmp_path / "exports"
    exports.mkdir()
    (tmp_path / "export").rename(exports / "first")
    assert poll(engine, settings, "slack").messages == 15
    # The same workspace exported again, zipped this time, under a folder of its own.
    again = support_day(SlackExport(tmp_path / "unpacked")).write()
    SlackExport(again).zip(exports / "second.zip", prefix="shop/")
    result = poll(engine, settings, "slack")
    assert (result.messages, result.rejected) == (0, 0)
    assert len(messages(engine)) == 15


def test_new_day_files_and_grown_day_files_add_only_what_is_new(tmp_path: Path) -> None:
    export = support_day(SlackExport(tmp_path / "export"))
    export.write()
    settings, engine = open_store(tmp_path, [slack()])
    poll(engine, settings, "slack")
    # The next export: a new day, and a late reply added to the 18th's file.
    export.add("support", message("U09DANA", at(9, day=2)), message("U01SAM", at(9.5, day=2)))
    export.add("support", message("U02LENA", at(12.5), thread=B), day="2026-11-18")
    export.write()
    result = poll(engine, settings, "slack")
    assert (result.messages, result.rejected) == (3, 0)
    assert status(engine)[(ts(B), "first")] == ("answered", 9000.0)
    assert poll(engine, settings, "slack").messages == 0


def test_a_zipped_export_gives_the_same_events_as_the_folder(tmp_path: Path) -> None:
    export = support_day(SlackExport(tmp_path / "export"))
    export.write()
    export.zip(tmp_path / "export.zip", prefix="Shop Slack export Nov 17 2026/")
    folder = settings_from_mapping({"sources": [slack()]}, tmp_path)
    zipped = settings_from_mapping({"sources": [slack("export.zip")]}, tmp_path)

    def events(settings: Any) -> list[Any]:
        connector = build_connector(settings, settings.sources[0])
        return [e for batch in connector.fetch(None, at(0, day=3)) for e in batch.events]

    assert events(folder) == events(zipped) and len(events(folder)) == 15


def test_bad_records_are_rejected_with_their_place_and_the_rest_is_read(tmp_path: Path) -> None:
    export = SlackExport(tmp_path / "export")
    export.add(
        "support",
        message("U09DANA", at(9)),
        message("U09DANA", at(9.1), subtype="poll_created"),
        {"type": "message", "user": "U09DANA", "text": "SECRET"},
        {**message("U09DANA", at(9.2)), "ts": 1763370000.5},
        {**message("U09DANA", at(9.3)), "ts": "yesterday"},
        {**message("U09DANA", at(9.4)), "thread_ts": 17},
        {**message("U09DANA", at(9.5)), "user": ["U09DANA"]},
        {**message(None, at(9.6))},
        ["not", "a", "message"],
        {**message("U09DANA", at(9.7)), "type": "reaction_added"},
        message("U01SAM", at(9.8), thread=at(9)),
        day="2026-11-17",
    )
    export.write()
    (tmp_path / "export" / "support" / "2026-11-18.json").write_text('[{"ts": "1", SECRET')
    (tmp_path / "export" / "support" / "2026-11-19.json").write_bytes(b'[{"text": "\xff"}]')
    (tmp_path / "export" / "support" / "2026-11-20.json").write_text('{"ts": "1"}')
    (tmp_path / "export" / "support" / "notes.txt").write_text("not a day file")
    settings, engine = open_store(tmp_path, [slack()])
    result = poll(engine, settings, "slack")
    reasons = {r.location: r.reason for r in result.rejections}
    day = "export/support/2026-11-17.json"
    assert reasons == {
        f"{day} .[1]": "unknown subtype 'poll_created'",
        f"{day} .[2]": "missing ts",
        f"{day} .[3]": 'ts must be a string such as "1516454398.000069", got a number',
        f"{day} .[4]": 'ts is not a Slack timestamp such as "1516454398.000069"',
        f"{day} .[5]": 'thread_ts must be a string such as "1516454398.000069", got a number',
        f"{day} .[6]": "user must be a string, got an array",
        f"{day} .[7]": "missing user",
        f"{day} .[8]": "expected a message object, got an array",
        f"{day} .[9]": "unknown type 'reaction_added'",
        "export/support/2026-11-18.json": reasons["export/support/2026-11-18.json"],
        "export/support/2026-11-19.json": "invalid UTF-8 at byte 12",
        "export/support/2026-11-20.json": "expected a JSON array of messages, got an object",
    }
    assert reasons["export/support/2026-11-18.json"].startswith("not valid JSON")
    assert result.rejected == 12 and result.messages == 2
    assert not [r for r in reasons.values() if "SECRET" in r]
    assert status(engine) == {(ts(at(9)), "first"): ("answered", 48 * 60.0)}
    assert poll(engine, settings, "slack").rejected == 0  # reported once, not every poll


def test_bad_users_json_records_are_reported_once_and_a_broken_users_json_fails(
    tmp_path: Path,
) -> None:
    users = [slack_user("U01SAM", "Sam Porter"), {"name": "no id"}, "junk"]
    export = SlackExport(tmp_path / "export", users=users)  # type: ignore[list-item]
    export.add("support", message("U01SAM", at(9))).write()
    settings, engine = open_store(tmp_path, [slack()])
    result = poll(engine, settings, "slack")
    assert [(r.location, r.reason) for r in result.rejections] == [
        ("export/users.json .[1]", "expected an object with an id"),
        ("export/users.json .[2]", "expected an object with an id"),
    ]
    assert poll(engine, settings, "slack").rejected == 0
    (tmp_path / "export" / "users.json").write_text("{not json")
    failed = poll_failing(engine, settings)
    assert failed == (
        f"no readable users.json in {tmp_path / 'export'}: cannot tell agents from customers"
    )


def poll_failing(engine: Any, settings: Any) -> str:
    from monitor.ingest import poll_source

    result = poll_source(
        engine, settings, settings.sources[0], now=at(0, 3), clock=lambda: at(0, 3)
    )
    assert result.error is not None
    return result.error


def test_a_configured_channel_missing_from_the_export_fails_with_one_line(tmp_path: Path) -> None:
    support_day(SlackExport(tmp_path / "export")).write()
    settings, engine = open_store(tmp_path, [slack(channels=["support", "billing"])])
    assert poll_failing(engine, settings) == (
        f"channel 'billing' is in no export at {tmp_path / 'export'} "
        "(give its name or id as in channels.json)"
    )
    with pytest.raises(ConnectorError, match="channel 'billing'"):
        build_connector(settings, settings.sources[0]).check()


def test_channels_may_be_given_by_id_or_hash_name_and_only_they_are_read(tmp_path: Path) -> None:
    support_day(SlackExport(tmp_path / "export")).write()
    for channels, expected in ((["C0SUPPORT"], 15), (["#random"], 1), (["support", "random"], 16)):
        folder = tmp_path / "-".join(channels).strip("#")
        folder.mkdir()
        settings, engine = open_store(folder, [slack(str(tmp_path / "export"), channels=channels)])
        assert poll(engine, settings, "slack").messages == expected


def test_an_interrupted_poll_resumes_inside_a_day_file_without_loss(tmp_path: Path) -> None:
    support_day(SlackExport(tmp_path / "export")).write()
    settings = settings_from_mapping({"sources": [slack()]}, tmp_path)
    connector = build_connector(settings, settings.sources[0])
    connector.max_records = 5  # type: ignore[attr-defined]
    everything = [e for b in connector.fetch(None, at(0, 3)) for e in b.events]
    collected: list[Any] = []
    cursor = None
    for _ in range(20):
        fetched = connector.fetch(cursor, at(0, 3))
        batch = next(fetched, None)
        if batch is None:
            break
        fetched.close()  # type: ignore[attr-defined]  # killed right after the first commit
        collected.extend(batch.events)
        cursor = json.loads(json.dumps(batch.cursor))
    assert collected == everything and len(everything) == 15


def test_a_missing_export_and_an_unusable_cursor_fail_clearly(tmp_path: Path) -> None:
    settings = settings_from_mapping({"sources": [slack()]}, tmp_path)
    connector = build_connector(settings, settings.sources[0])
    with pytest.raises(ConnectorError, match="no Slack export matches"):
        list(connector.fetch(None, at(0, 3)))
    (tmp_path / "export").write_text("not a zip")
    with pytest.raises(ConnectorError, match="not a zip file or folder"):
        connector.check()
    with pytest.raises(ConnectorError, match="stored cursor is unusable"):
        list(connector.fetch({"v": 1, "snapshots": {"read": "x"}}, at(0, 3)))
