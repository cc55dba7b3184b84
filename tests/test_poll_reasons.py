"""Say why it is zero: `poll` names what each source left out on purpose, per reason, and a
source that read records and rejected every one fails its poll with the first reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from tests.connectors.chat.builders import SlackExport, at, message
from tests.connectors.phone.test_queue_log import q

CALLS_HEADER = "id,direction,entered,from,to"


def config(tmp_path: Path, *sources: dict[str, Any]) -> str:
    path = tmp_path / "support-monitor.yaml"
    body = {"database": f"sqlite:///{tmp_path}/monitor.db", "sources": list(sources)}
    path.write_text(yaml.safe_dump(body))
    return str(path)


def poll(tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["--config", path, "poll"])
    return status, capsys.readouterr().out.strip()


CALL_LOG = {
    "name": "pbx",
    "kind": "call_csv",
    "path": "calls.csv",
    "columns": {"id": "id", "direction": "direction", "entered": "entered"}
    | {"caller": "from", "callee": "to"},
    "directions": {"int": "internal"},
}


def test_a_call_log_of_internal_and_outbound_calls_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "calls.csv").write_text(
        "\n".join(
            [
                CALLS_HEADER,
                "1,int,2026-11-20T09:00:00Z,201,202",  # staff calling each other
                "2,int,2026-11-20T09:05:00Z,203,201",
                "3,out,2026-11-20T09:10:00Z,201,+44 20 7946 0001",  # a callback
            ]
        )
        + "\n"
    )
    status, line = poll(tmp_path, capsys, config(tmp_path, CALL_LOG))
    assert status == 0
    assert line == (
        "pbx: 1 new messages, 0 calls, 0 rejected in 1 batches; skipped on purpose: "
        "2 internal calls, 1 outbound calls (callbacks, not queue calls)"
    )


def test_a_queue_log_of_agent_lines_and_unmeasured_verbs_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "queue_log").write_text(
        "\n".join(
            [
                q(0, "NONE", "QUEUESTART", agent="NONE"),
                q(1, "NONE", "ADDMEMBER", agent="SIP/201"),
                q(2, "NONE", "PAUSE", agent="SIP/201"),
                q(3, "c.1", "OUTDIAL", "02079460001"),  # a custom verb: not measured
            ]
        )
        + "\n"
    )
    source = {"name": "queue", "kind": "asterisk_queue_log", "path": "queue_log"}
    status, line = poll(tmp_path, capsys, config(tmp_path, source))
    assert status == 0
    assert line.endswith(
        "skipped on purpose: 3 agent, member and system lines, 1 lines of verbs not measured"
    )


def test_a_slack_channel_where_the_members_rule_finds_no_customer_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Everyone who wrote is a workspace member: the members rule makes them all agents, so no
    inquiry is measured; the poll says why instead of looking like a quiet channel."""
    SlackExport(tmp_path / "export").add(
        "support", message("U01SAM", at(9)), message("U02LENA", at(10), thread=at(9))
    ).write()
    source = {"name": "slack", "kind": "slack_export", "path": "export", "channels": ["support"]}
    status, line = poll(tmp_path, capsys, config(tmp_path, source))
    assert status == 0
    assert line.endswith(
        "skipped on purpose: 2 messages, all by members (the members rule found no customers)"
    )


def test_a_source_whose_every_record_is_rejected_fails_its_poll_with_the_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A call log whose columns are not the ones configured: nothing parses. That is a broken
    source (exit 1, one line), not "0 calls"; the good source beside it still polls."""
    (tmp_path / "calls.csv").write_text(
        "Call ID,Direction,Start\n7,in,yesterday\n8,in,today\n9,in,tomorrow\n10,in,now\n"
    )
    (tmp_path / "chat.jsonl").write_text(
        '{"conversation": "c1", "at": "2026-11-20T09:00:00+00:00", "author_role": "customer"}\n'
    )
    chat = {"name": "chat", "kind": "chat_jsonl", "path": "chat.jsonl"}
    broken = CALL_LOG | {"columns": {"id": "Call ID", "direction": "Direction", "entered": "Start"}}
    status, out = poll(tmp_path, capsys, config(tmp_path, broken, chat))
    assert status == 1
    failed, ok = out.splitlines()
    assert failed == (
        "pbx: FAILED every record read was rejected (4): "
        "calls.csv:2: Start is not a time in the configured formats (iso, epoch, %Y/%m/%d "
        "%H:%M:%S, %Y/%m/%d %H:%M); calls.csv:3: Start is not a time in the configured formats "
        "(iso, epoch, %Y/%m/%d %H:%M:%S, %Y/%m/%d %H:%M); calls.csv:4: Start is not a time in "
        "the configured formats (iso, epoch, %Y/%m/%d %H:%M:%S, %Y/%m/%d %H:%M) (and 1 more)"
    )
    assert ok.startswith("chat: 1 new messages")
