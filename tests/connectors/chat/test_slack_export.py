"""The slack_export connector: a hand-built workspace export polled into a real SQLite store."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorError
from monitor.config_file import settings_from_mapping
from monitor.store.ingest import build_connector
from tests.connectors.chat.builders import (
    CHANNELS,
    TEAM,
    USERS,
    SlackExport,
    at,
    killed_after_each_batch,
    message,
    slack_user,
    ts,
)
from tests.connectors.store import inquiries, messages, open_store, poll, tally

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
    poll(engine, settings, "slack", now=at(0, 11))
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
    settings, engine = open_store(tmp_path, [slack(workspace_team=TEAM)])
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


def test_an_outside_organisation_giving_its_user_our_address_makes_no_agent(
    tmp_path: Path,
) -> None:
    """A Slack Connect organisation sets its own users' e-mails: a stranger claiming our address
    (in our domain, or the very address listed) is still a customer; listed by id, an agent."""
    impostors = [
        slack_user("U20FAKE", "Sam Porter", email="sam@shop.example", is_stranger=True),
        slack_user("U21FAKE", "Desk", email="desk@shop.example", team_id="T0ACME99"),
    ]
    export = SlackExport(tmp_path / "export", users=[*USERS, *impostors])
    export.add(
        "support",
        message("U09DANA", at(9)),
        message("U20FAKE", at(9.1), thread=at(9)),
        message("U21FAKE", at(9.2), thread=at(9)),
    )
    export.write()
    settings, engine = open_store(
        tmp_path, [slack(agent_users=["sam@shop.example"])], agents={"domains": ["shop.example"]}
    )
    poll(engine, settings, "slack")
    sides = {m.external_id.partition(":")[2]: m.side for m in messages(engine).values()}
    assert [sides[ts(at(hour))] for hour in (9, 9.1, 9.2)] == ["customer"] * 3
    assert status(engine) == {(ts(at(9)), "first"): ("open", None)}


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
        " (export/users.json: not valid JSON (a syntax error within the first 9 bytes))"
    )


def poll_failing(engine: Any, settings: Any) -> str:
    from monitor.store.ingest import poll_source

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
    collected = killed_after_each_batch(connector, at(0, 3))
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


# --- exports shaped like real ones (our own content; the shapes follow public samples) ---------


def go_artifacts(user: str, profile_team: str = "TO9F8E7D6C") -> dict[str, Any]:
    """What an export written by a Go Slack client carries on every message."""
    return {
        "team": "TO1A2B3C4D",
        "user_team": "TO1A2B3C4D",
        "source_team": "TO1A2B3C4D",
        "replace_original": False,
        "delete_original": False,
        "metadata": {"event_type": "", "event_payload": None},
        "blocks": None,
        "user_profile": {"real_name": "Xq7 Lm2", "team": profile_team, "name": user.lower()},
    }


def test_an_obfuscated_export_written_by_a_go_client_parses(tmp_path: Path) -> None:
    """Modelled on an obfuscated export from a Go exporter: ids with an `O` after the prefix,
    a channel folder named differently from its id, message teams that differ from users.json's
    team, six bots (one deleted), a thread whose replies are in the next day's file, a deleted
    parent (tombstone) that still has a reply, a message with files and no text at all, a bot
    post with both `user` and `bot_id` and an edit, two-space indentation."""
    humans = [
        slack_user(u, f"Person {u[-2:]}", team_id="TO9F8E7D6C")
        for u in ("UOA1B2C3D4", "UOE5F6A7B8", "UO0C1D2E3F")
    ]
    bots = [
        slack_user(f"UOB0T{n}", f"bot {n}", team_id="TO9F8E7D6C", is_bot=True) for n in range(6)
    ]
    bots[0]["deleted"] = True
    channel = {
        "id": "CO5D4C3B2A",
        "name": "A1B2C3D",
        "created": 1555493778,
        "is_channel": True,
        "is_general": True,
        "is_member": True,
        "is_shared": False,
        "is_ext_shared": False,
        "members": [u["id"] for u in humans],
        "topic": {"value": "x", "creator": "", "last_set": 0},
        "purpose": {"value": "y", "creator": "", "last_set": 0},
        "properties": {"canvas": {"file_id": "F0X", "is_empty": False}},
    }
    export = SlackExport(tmp_path / "export", users=[*humans, *bots], channels=[channel])
    parent_at, reply_day = at(3.1), at(0.3, day=1)
    parent = {
        **message("UOA1B2C3D4", parent_at, thread=parent_at),
        **go_artifacts("UOA1B2C3D4"),
        "reply_count": 2,
        "reply_users": ["UOE5F6A7B8", "UOA1B2C3D4"],
        "reply_users_count": 2,
        "replies": [{"user": "UOE5F6A7B8", "ts": ts(reply_day)}],
        "latest_reply": ts(reply_day, 200),
        "last_read": ts(reply_day, 200),
        "subscribed": True,
        "client_msg_id": "c02383e6-9879-1093-8ce7-c20b00ad3096",
    }
    parent.pop("parent_user_id")
    export.add(
        "A1B2C3D",
        {**message("UOA1B2C3D4", at(3)), **go_artifacts("UOA1B2C3D4")},
        parent,
        day="2025-01-10",
    )
    no_text = {**message("UOA1B2C3D4", at(8, day=1)), **go_artifacts("UOA1B2C3D4")}
    del no_text["text"]
    no_text["files"] = [{"id": "F0A1", "name": "image.png", "mimetype": "image/png"}]
    export.add(
        "A1B2C3D",
        message("UOE5F6A7B8", at(0.2, day=1), subtype="channel_join"),
        {**message("UOE5F6A7B8", reply_day, thread=parent_at), **go_artifacts("UOE5F6A7B8")},
        {**message("UOA1B2C3D4", reply_day, micro=200, thread=parent_at), **go_artifacts("x")},
        message(
            "UO0C1D2E3F",
            at(0.4, day=1),
            thread=at(0.4, day=1),
            subtype="tombstone",
            hidden=True,
            text="This message was deleted.",
        ),
        message("UOE5F6A7B8", at(0.5, day=1), thread=at(0.4, day=1)),
        no_text,
        day="2025-01-11",
    )
    bot_post = {
        **message("UOB0T4", at(0.5, day=8)),
        **go_artifacts("UOB0T4"),
        "bot_id": "BO89ABCDEF",
        "bot_profile": {"id": "BO89ABCDEF", "name": "b", "deleted": False},
        "edited": {"user": "UOB0T2", "ts": "1737160371.000000"},
    }
    export.add("A1B2C3D", bot_post, day="2025-01-18")
    export.write(indent=2)
    (export.folder / "users.json").write_text(json.dumps(export.users, indent=2))
    settings, engine = open_store(tmp_path, [slack(channels=["A1B2C3D"])])
    result = poll(engine, settings, "slack", now=at(0, 9))
    assert (result.messages, result.rejected) == (9, 0)
    stored = messages(engine)
    assert all(key.startswith("CO5D4C3B2A:") for key in stored)
    # Every human here is a member of the workspace: all agents, so nothing is an inquiry.
    assert {m.side for m in stored.values()} == {"agent"} and inquiries(engine) == []
    automatic = {key.partition(":")[2] for key, m in stored.items() if m.automatic}
    assert automatic == {ts(at(0.2, day=1)), ts(at(0.4, day=1)), ts(at(0.5, day=8))}
    # With one of them as the only agent, the others' questions are measured.
    listed = tmp_path / "listed"
    listed.mkdir()
    settings, engine = open_store(
        listed,
        [slack(str(tmp_path / "export"), channels=["CO5D4C3B2A"], agent_users=["UOA1B2C3D4"])],
    )
    poll(engine, settings, "slack")
    assert sorted(i.status for i in inquiries(engine)) == ["answered", "open"]


def test_an_older_export_with_legacy_fields_and_no_channels_json_parses(tmp_path: Path) -> None:
    """Modelled on an older real export: no channels.json (the folder name is the channel),
    `\\uXXXX` escapes in users.json but raw UTF-8 in day files, escaped slashes, a `file_share`
    with the legacy single `file` object, `upload: true` and `bot_id: null`, joins, mentions,
    and an integration log with an epoch string and an integer user id."""
    users = [
        slack_user("U6006P1CN", "Josef K.", is_admin=True),
        slack_user("U8X25EBAB", "Rishi हिन्दी 汉语"),
        slack_user("U8VAHEVUY", "Steve Howell", team_id="T5ZZZZZZZ"),
    ]
    export = SlackExport(tmp_path / "export", users=users, channels=[])
    share = {
        **message("U6006P1CN", at(14)),
        "subtype": "file_share",
        "upload": True,
        "display_as_bot": False,
        "username": "k._",
        "bot_id": None,
        "text": "<@U6006P1CN> uploaded a file: <https://x.example/f|notes.md> and commented: —",
        "file": {
            "id": "F8VSW87RR",
            "created": 1516457078,
            "name": "notes.md",
            "mimetype": "text/plain",
            "url_private": "https://files.example/notes.md",
            "initial_comment": {"id": "Fc1", "comment": "ﬁne"},
        },
    }
    export.add(
        "random",
        message("U8VAHEVUY", at(13), subtype="channel_join", text="<@U8VAHEVUY> has joined"),
        message("U8VAHEVUY", at(13.5), text="Is the `ﬁ` ligature OK — asking for a friend’s file?"),
        share,
        message("U8X25EBAB", at(15), text="<!channel> @everyone"),
        day="2018-01-20",
    )
    export.write()
    (export.folder / "channels.json").unlink()
    (export.folder / "users.json").write_text(json.dumps(users, indent=4, ensure_ascii=True))
    log = [{"user_id": 0, "user_name": "slack", "date": "1515688212", "change_type": "added"}]
    (export.folder / "integration_logs.json").write_text(json.dumps(log))
    zipped = SlackExport(export.folder).zip(tmp_path / "plan8.zip")
    settings, engine = open_store(tmp_path, [slack(str(zipped), channels=["random"])])
    result = poll(engine, settings, "slack")
    assert (result.messages, result.rejected) == (4, 0)
    # Steve (another team) asked; Josef's file share 30 minutes later was not in his thread.
    assert status(engine) == {(ts(at(13.5)), "first"): ("open", None)}
    assert {k.partition(":")[0] for k in messages(engine)} == {"random"}


def test_a_thread_reply_dated_before_its_parent_answers_it_and_is_counted_as_clamped(
    tmp_path: Path,
) -> None:
    """Modelled on a hand-written importer fixture: a reply whose ts is earlier than its
    parent's, users without profiles, a channel list with `created` as a string and members
    that no users.json knows. The reply keeps its own time; measured, it is never earlier than
    the question it answers: 0 s, clamped, and counted."""
    users = [
        {"id": "U066MTL5U", "name": "john doe", "deleted": False, "real_name": "John"},
        {"id": "U061A5N1G", "name": "jane doe", "deleted": False, "real_name": "Jane"},
        {
            "id": "U061A1R2R",
            "name": "jon",
            "deleted": False,
            "real_name": "Jon",
            "profile": {"email": "jon@example.com"},
        },
    ]
    channels = [
        {
            "id": "C061A0WJG",
            "name": "random",
            "created": "1433558319",
            "is_archived": True,
            "members": ["U061A1R2R", "U061A5N1G", "U064KUGRJ"],
            "topic": {"value": "random"},
            "purpose": {"value": "no purpose"},
        }
    ]
    parent_at = at(12, day=2)
    records = [
        {
            "text": "body",
            "user": "U061A5N1G",
            "ts": ts(at(9)),
            "thread_ts": ts(at(9)),
            "channel_name": "random",
        },
        {
            "text": "question",
            "user": "U061A1R2R",
            "ts": ts(parent_at),
            "thread_ts": ts(parent_at),
            "channel_name": "random",
        },
        {
            "text": "answer",
            "user": "U061A5N1G",
            "ts": ts(at(11, day=1)),
            "parent_user_id": "U061A1R2R",
            "thread_ts": ts(parent_at),
            "channel_name": "random",
        },
    ]
    export = SlackExport(tmp_path / "export", users=users, channels=channels)  # type: ignore[arg-type]
    export.add("random", *records, day="2015-06-12").write()
    settings, engine = open_store(tmp_path, [slack(channels=["random"], agent_users=["U061A5N1G"])])
    result = poll(engine, settings, "slack")
    assert (result.messages, result.rejected) == (3, 0)
    (inquiry,) = inquiries(engine)
    assert (inquiry.status, inquiry.response_seconds) == ("answered", 0.0)
    assert inquiry.clamped is True
    answer = messages(engine)[f"C061A0WJG:{ts(at(11, day=1))}"]
    assert answer.at == at(11, day=1) + timedelta(microseconds=100)  # its own ts, not moved
    assert tally(engine, "support_responses_clamped_total", channel="chat") == 1


def test_a_thread_reply_in_a_channel_whose_id_is_too_long_to_store_still_answers_it(
    tmp_path: Path,
) -> None:
    """channels.json is data: an id longer than a stored key makes keys that are short and
    distinct, and what a reply names as its parent is made the same key, so a reply dated
    before its parent still answers it."""
    channels = [{**CHANNELS[0], "id": "C" + "X" * 400}]
    SlackExport(tmp_path / "export", channels=channels).add(
        "support", message("U09DANA", at(10)), message("U01SAM", at(9), thread=at(10))
    ).write()
    settings, engine = open_store(tmp_path, [slack(agent_users=["U01SAM"])])
    poll(engine, settings, "slack")
    (inquiry,) = inquiries(engine)
    assert (inquiry.status, inquiry.response_seconds, inquiry.clamped) == ("answered", 0.0, True)


def test_import_backfills_an_older_zipped_export(tmp_path: Path) -> None:
    from monitor.store.ingest import import_paths

    support_day(SlackExport(tmp_path / "old")).write()
    zipped = SlackExport(tmp_path / "old").zip(tmp_path / "old.zip")
    SlackExport(tmp_path / "export").add("support", message("U09DANA", at(9, day=5))).write()
    settings, engine = open_store(tmp_path, [slack()])
    assert poll(engine, settings, "slack", now=at(0, 6)).messages == 1
    result = import_paths(engine, settings, settings.sources[0], [zipped], now=at(0, 6))
    assert (result.messages, result.rejected) == (15, 0)
    assert poll(engine, settings, "slack", now=at(0, 6)).messages == 0
