"""The zendesk_chat connector: hand-built Chat API transcripts polled into a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monitor.config_file import settings_from_mapping
from monitor.store.ingest import build_connector, poll_source
from tests.connectors.chat.builders import (
    at,
    iso,
    killed_after_each_batch,
    zendesk_chat,
    zendesk_entry,
    zendesk_offline,
)
from tests.connectors.store import NOW, inquiries, messages, open_store, poll, tally

AGENT = "360786799676"


def answered_chat() -> dict[str, Any]:
    """Two questions, the automatic "First Reply" trigger between them, then Sam."""
    return zendesk_chat(
        "2611.1.A",
        [
            zendesk_entry("chat.memberjoin", at(9), "visitor"),
            zendesk_entry("chat.msg", at(9, 0).replace(second=10), "visitor"),
            zendesk_entry("chat.msg", at(9).replace(second=15), "trigger"),
            zendesk_entry("chat.msg", at(9).replace(second=40), "visitor"),
            zendesk_entry("chat.memberjoin", at(9 + 1 / 60), AGENT),
            zendesk_entry("chat.msg", at(9 + 1.5 / 60), AGENT),
            zendesk_entry("chat.request.rating", at(9 + 5 / 60), AGENT),
            zendesk_entry("chat.rating", at(9 + 5.5 / 60), "visitor", new_rating="good"),
            zendesk_entry("chat.memberleave", at(9 + 6 / 60), "visitor"),
        ],
        ended=at(9 + 6 / 60),
    )


def missed_chat() -> dict[str, Any]:
    """The visitor asks, gets the trigger's automatic message, and leaves."""
    return zendesk_chat(
        "2611.1.B",
        [
            zendesk_entry("chat.msg", at(10), "visitor"),
            zendesk_entry("chat.msg", at(10).replace(second=5), "trigger"),
            zendesk_entry("chat.memberleave", at(10.05), "visitor"),
        ],
        email="eve@example.net",
        ended=at(10.05),
    )


def fivetran_style_chat() -> dict[str, Any]:
    """History entries without nick, telling the author by sender_type (or the name)."""
    history = [
        {"type": "chat.msg", "timestamp": iso(at(11)), "sender_type": "Visitor", "name": "V"},
        {"type": "chat.msg", "timestamp": iso(at(11.005)), "sender_type": "Chatbot"},
        {"type": "chat.msg", "timestamp": "2026-11-17 11:00:45.994000", "name": "Sam Porter"},
    ]
    return zendesk_chat("2611.1.C", history, email="finn@example.net", ended=None)


def offline_then_contact() -> list[dict[str, Any]]:
    return [
        zendesk_offline("2611.1.D", at(12), "Bob@Example.net", "Bob Ray"),
        zendesk_offline("2611.1.F", at(13), "carol@example.net", "Carol Fox"),
        # Sam starts a chat with Bob three hours later; Bob then asks something.
        zendesk_chat(
            "2611.1.E",
            [
                zendesk_entry("chat.msg", at(15), AGENT),
                zendesk_entry("chat.msg", at(15 + 1 / 60), "visitor"),
                zendesk_entry("chat.msg", at(15 + 2 / 60), AGENT),
            ],
            email="bob@example.net",
            ended=at(15.5),
            visitor={"id": "3.99120", "name": "Bob Ray", "email": "bob@example.net"},
        ),
    ]


def page(*chats: dict[str, Any]) -> str:
    """An incremental-export page, as the Chat API returns it."""
    return json.dumps(
        {
            "chats": list(chats),
            "count": len(chats),
            "end_id": chats[-1]["id"] if chats else None,
            "end_time": 1795000000,
            "next_page": "https://shop.zendesk.com/api/v2/chat/incremental/chats?start_time=1",
        },
        indent=2,
    )


def zendesk(path: str = "chats.json") -> dict[str, Any]:
    return {"name": "zendesk", "kind": "zendesk_chat", "path": path}


def status(engine: Any) -> dict[tuple[str, str], tuple[str, float | None]]:
    return {(i.conversation, i.kind): (i.status, i.response_seconds) for i in inquiries(engine)}


def test_a_zendesk_export_gives_inquiries_missed_chats_and_automatic_messages(
    tmp_path: Path,
) -> None:
    chats = [answered_chat(), missed_chat(), fivetran_style_chat(), *offline_then_contact()]
    (tmp_path / "chats.json").write_text(page(*chats))
    settings, engine = open_store(tmp_path, [zendesk()])
    result = poll(engine, settings, "zendesk")
    assert result.rejected == 0
    assert status(engine) == {
        # Measured from the first question; the trigger 5 s later answered nothing.
        ("2611.1.A", "first"): ("answered", 80.0),
        ("2611.1.B", "first"): ("missed", None),
        ("2611.1.C", "first"): ("answered", 45.994),
        ("2611.1.E", "first"): ("answered", 60.0),
        # Bob's offline message, answered when Sam reached him in a later chat.
        ("visitor:bob@example.net", "first"): ("answered", 3 * 3600.0),
        ("visitor:carol@example.net", "first"): ("open", None),
    }
    assert tally(engine, "support_chats_missed_total") == 1
    stored = messages(engine)
    automatic = sorted(
        (m.conversation, m.at.strftime("%H:%M:%S")) for m in stored.values() if m.automatic
    )
    assert automatic == [
        ("2611.1.A", "09:00:00"),  # the visitor joining
        ("2611.1.A", "09:00:15"),  # the "First Reply" trigger
        ("2611.1.A", "09:01:00"),  # the agent joining
        ("2611.1.A", "09:05:00"),  # the rating request
        ("2611.1.A", "09:05:30"),  # the rating
        ("2611.1.B", "10:00:05"),
        ("2611.1.C", "11:00:18"),  # the chatbot
    ]
    ended = sorted(m.external_id for m in stored.values() if m.kind == "ended")
    assert len(ended) == 5 and "2611.1.A:end" in ended and "2611.1.E:end" in ended
    assert stored["2611.1.D"].customer == "Bob Ray"


def test_bad_chats_and_history_entries_are_rejected_with_their_place(tmp_path: Path) -> None:
    good = missed_chat()
    broken = answered_chat()
    broken["history"][1].pop("timestamp")
    broken["history"][2]["type"] = "survey.sent"
    broken["history"][0] = {"type": "chat.msg", "timestamp": iso(at(9)), "msg": "SECRET"}
    broken["history"][6] = "SECRET"
    chats = [
        "junk",
        {**good, "id": None},
        {**good, "id": "t1", "type": "ticket"},
        {**good, "id": "t2", "history": {"SECRET": 1}},
        {**zendesk_offline("t3", at(12), "x@example.net", "X"), "timestamp": "soon"},
        broken,
        good,
    ]
    (tmp_path / "chats.json").write_text(page(*chats))  # type: ignore[arg-type]
    settings, engine = open_store(tmp_path, [zendesk()])
    result = poll(engine, settings, "zendesk")
    reasons = {r.location: r.reason for r in result.rejections}
    assert reasons == {
        "chats.json .chats[0]": "expected a chat object, got a string",
        "chats.json .chats[1]": "missing id",
        "chats.json .chats[2]": "unknown chat type 'ticket' (expected chat or offline_msg)",
        "chats.json .chats[3]": "history must be an array, got an object",
        "chats.json .chats[4]": "timestamp is not an ISO 8601 time",
        "chats.json .chats[5].history[1]": "missing timestamp",
        "chats.json .chats[5].history[2]": "unknown history type 'survey.sent'",
        "chats.json .chats[5].history[0]": (
            "cannot tell who wrote it (no nick, sender_type or known name)"
        ),
        "chats.json .chats[5].history[6]": "expected a history entry object, got a string",
    }
    assert not [r for r in reasons.values() if "SECRET" in r]
    # Sam's reply still counts, from the only question left (09:00:40).
    assert status(engine)[("2611.1.A", "first")] == ("answered", 50.0)
    assert status(engine)[("2611.1.B", "first")] == ("missed", None)
    assert poll(engine, settings, "zendesk").rejected == 0


def test_a_broken_document_is_rejected_once_and_other_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"chats": [{"id": "SECRET"')
    (tmp_path / "b.json").write_text(page(missed_chat()))
    (tmp_path / "c.json").write_text('{"chats": 7}')
    settings, engine = open_store(tmp_path, [zendesk("*.json")])
    result = poll(engine, settings, "zendesk")
    reasons = {r.location: r.reason for r in result.rejections}
    assert reasons["a.json"] == "not valid JSON (the document ends too early)"
    assert reasons["c.json"] == "chats must be an array, got a number"
    assert result.messages == 4 and result.rejected == 2
    assert poll(engine, settings, "zendesk").rejected == 0


def test_a_re_export_adds_nothing_and_a_longer_transcript_adds_only_what_is_new(
    tmp_path: Path,
) -> None:
    ongoing = answered_chat()
    ongoing["history"] = ongoing["history"][:4]  # exported while Dana was waiting
    del ongoing["end_timestamp"]
    (tmp_path / "export-1.json").write_text(page(ongoing, missed_chat()))
    settings, engine = open_store(tmp_path, [zendesk("export-*.json")])
    assert poll(engine, settings, "zendesk").messages == 8
    assert status(engine)[("2611.1.A", "first")] == ("open", None)
    # The same chats in another page layout (an array), and the finished transcript.
    (tmp_path / "export-2.json").write_text(json.dumps([missed_chat(), answered_chat()]))
    result = poll(engine, settings, "zendesk")
    # Five more entries, the end, and the contact with Dana (for her offline messages).
    assert (result.messages, result.rejected) == (7, 0)
    assert status(engine)[("2611.1.A", "first")] == ("answered", 80.0)
    (tmp_path / "export-3.json").write_text(page(answered_chat()))
    assert poll(engine, settings, "zendesk").messages == 0


def test_jsonl_and_airbyte_records_are_tailed_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    lines = [
        json.dumps({"stream": "agents", "data": {"id": 1, "email": "sam@shop.example"}}),
        json.dumps({"stream": "chats", "data": answered_chat(), "emitted_at": 1795000000000}),
        "",
        "{broken",
    ]
    path.write_text("\n".join(lines) + "\n")
    settings, engine = open_store(tmp_path, [zendesk("chats.jsonl")])
    result = poll(engine, settings, "zendesk")
    assert [(r.location, r.reason[:14]) for r in result.rejections] == [
        ("chats.jsonl:4", "not valid JSON")
    ]
    assert result.messages == 11
    with path.open("a") as handle:
        handle.write(json.dumps(missed_chat()) + "\n")
    again = poll(engine, settings, "zendesk")
    assert (again.messages, again.rejected) == (4, 0)
    assert status(engine)[("2611.1.B", "first")] == ("missed", None)


def test_an_interrupted_poll_resumes_inside_a_document_without_loss(tmp_path: Path) -> None:
    chats = [answered_chat(), missed_chat(), fivetran_style_chat(), *offline_then_contact()]
    (tmp_path / "chats.json").write_text(page(*chats))
    settings = settings_from_mapping({"sources": [zendesk()]}, tmp_path)
    connector = build_connector(settings, settings.sources[0])
    connector.max_records = 4  # type: ignore[attr-defined]
    everything = [e for b in connector.fetch(None, at(0, 3)) for e in b.events]
    collected = killed_after_each_batch(connector, at(0, 3))
    assert collected == everything and len(everything) == 26


def test_an_offline_messages_page_shaped_like_the_real_api_parses(tmp_path: Path) -> None:
    """Modelled on an incremental-export page of offline forms from a sandbox account:
    ISO `Z` times but an epoch `end_time`, a string visitor id that looks like a number, a
    session from years before the message, an invalid IP address, null departments."""
    chat = zendesk_offline("2104.10414779.AbCdEf0123", at(8), "visitor_ann@example.org", "Ann")
    chat["visitor"]["id"] = "3.45678"
    chat["session"].update(
        {
            "start_date": "2014-10-09T05:28:31Z",
            "end_date": "2014-10-09T05:46:47Z",
            "ip": "67.32.299.96",
            "platform": "Mac OS",
            "id": "141109.654464.1KhqS0Nw",
        }
    )
    (tmp_path / "chats.json").write_text(page(chat))
    settings, engine = open_store(tmp_path, [zendesk()])
    result = poll(engine, settings, "zendesk")
    assert (result.messages, result.rejected) == (1, 0)
    assert status(engine) == {("visitor:visitor_ann@example.org", "first"): ("open", None)}
    check = build_connector(settings, settings.sources[0]).check()
    assert check.startswith("1 file, ")


def test_a_document_over_the_size_limit_is_rejected_once(tmp_path: Path) -> None:
    (tmp_path / "chats.json").write_text(page(answered_chat()))
    settings = settings_from_mapping({"sources": [zendesk()]}, tmp_path)
    connector = build_connector(settings, settings.sources[0])
    connector.max_document_bytes = 100  # type: ignore[attr-defined]
    (batch,) = list(connector.fetch(None, at(0, 3)))
    (rejection,) = batch.rejected
    assert rejection.location == "chats.json"
    assert (
        rejection.reason.startswith("file of ")
        and "larger than the 100 byte limit" in rejection.reason
    )
    assert list(connector.fetch(batch.cursor, at(0, 3))) == []


def test_import_backfills_files_and_leaves_the_cursor_alone(tmp_path: Path) -> None:
    from monitor.store.cursors import stored_cursor
    from monitor.store.ingest import import_paths

    (tmp_path / "chats.json").write_text(page(missed_chat()))
    (tmp_path / "old.json").write_text(page(answered_chat()))
    (tmp_path / "old.jsonl").write_text(json.dumps(fivetran_style_chat()) + "\n")
    settings, engine = open_store(tmp_path, [zendesk()])
    poll(engine, settings, "zendesk")
    before = stored_cursor(engine, "zendesk")
    paths = [tmp_path / "old.json", tmp_path / "old.jsonl"]
    result = import_paths(engine, settings, settings.sources[0], paths, now=at(0, 3))
    assert (result.messages, result.rejected) == (15, 0)
    assert stored_cursor(engine, "zendesk") == before
    again = import_paths(engine, settings, settings.sources[0], paths, now=at(0, 3))
    assert again.messages == 0


def test_a_visitor_calling_themselves_by_an_agents_name_is_not_taken_for_that_agent(
    tmp_path: Path,
) -> None:
    """Without `nick` or `sender_type` the name decides, as a last resort: a visitor who took
    an agent's name could answer their own question (or close another's). Both names at once
    tell nothing, so the message is rejected, not made a reply (and a poll that read nothing
    but that record fails, saying why)."""
    entry = zendesk_entry("chat.msg", at(9), "visitor")
    del entry["nick"]
    chat = zendesk_chat("2611.9.A", [{**entry, "name": "Sam Porter"}])
    chat["visitor"]["name"] = "Sam Porter"
    (tmp_path / "chats.json").write_text(page(chat))
    settings, engine = open_store(tmp_path, [zendesk()])
    result = poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
    assert (result.error or "").startswith("every record read was rejected (1)")
    assert [(r.location, r.reason) for r in result.rejections] == [
        (
            "chats.json .chats[0].history[0]",
            "cannot tell who wrote it (no nick, sender_type or known name)",
        )
    ]
    assert not [m for m in messages(engine).values() if m.side == "agent"]
