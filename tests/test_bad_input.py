"""Malformed input (tests/data/bad/): every bad record is rejected with its file:line and a
reason, every good record around it is stored, and no input makes a poll crash (fuzzed)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from test_faults import NOW

from monitor.config import settings_from_mapping
from monitor.ingest import PollResult, poll_source
from monitor.models import CALLS, MESSAGES
from monitor.store import make_engine, prepare

CORPUS = Path(__file__).parent / "data" / "bad"
MANIFEST: dict[str, dict[str, Any]] = json.loads((CORPUS / "MANIFEST.json").read_text())
GIANT_LINE = b"x" * 1_100_000


SUFFIXES = {"chat_jsonl": ".jsonl", "zendesk_chat": ".jsonl", "livechat": ".jsonl", "mbox": ".mbox"}
# The export around a slack_export corpus: one line of the corpus file is one day file.
SLACK_USERS = b'[{"id": "U01AGENT", "team_id": "T01"}, {"id": "U02CUST", "is_stranger": true}]'
SLACK_CHANNELS = b'[{"id": "C01", "name": "support"}]'
# Where a rejection may be: a file and line, a JSON document, a day file; then a jq path; or a
# Maildir file's folder/cur/name.
LOCATION = re.compile(
    r"input(\.\w+(:\d+)?|/support/2026-11-\d\d\.json)( \.\S+)?$|^input/(cur|new)/[^/]+$"
)


def expand(data: bytes) -> bytes:
    return data.replace(b"@@GIANT@@", GIANT_LINE)


def write_input(folder: Path, kind: str, data: bytes | Path, suffix: str) -> str:
    """Write `data` (a file's bytes, or a Maildir copied with its placeholders expanded) where a
    source of `kind` reads it; return the source's `path`."""
    if isinstance(data, Path):
        shutil.rmtree(folder / "input", ignore_errors=True)
        shutil.copytree(data, folder / "input")
        for path in (folder / "input").rglob("*"):
            if path.is_file():
                path.write_bytes(expand(path.read_bytes()))
        return "input"
    if kind != "slack_export":
        (folder / f"input{suffix}").write_bytes(data)
        return f"input{suffix}"
    export = folder / "input"
    (export / "support").mkdir(parents=True, exist_ok=True)
    (export / "users.json").write_bytes(SLACK_USERS)
    (export / "channels.json").write_bytes(SLACK_CHANNELS)
    for day, content in enumerate(data.split(b"\n")[:-1], start=1):
        (export / "support" / f"2026-11-{day:02d}.json").write_bytes(content)
    return "input"


def poll_file(
    folder: Path, kind: str, extra: dict[str, Any], data: bytes | Path, suffix: str | None = None
) -> tuple[PollResult, int, int]:
    path = write_input(folder, kind, data, suffix or SUFFIXES.get(kind, ".csv"))
    source = {"name": "bad", "kind": kind, "path": path, **extra}
    config = settings_from_mapping({"sources": [source]}, folder)
    engine = make_engine(f"sqlite:///{folder}/monitor.db", folder)
    prepare(engine)
    result = poll_source(engine, config, config.sources[0], now=NOW, clock=lambda: NOW)
    with engine.connect() as conn:
        messages = conn.execute(select(func.count()).select_from(MESSAGES)).scalar_one()
        calls = conn.execute(select(func.count()).select_from(CALLS)).scalar_one()
    engine.dispose()
    return result, messages, calls


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_each_bad_record_is_rejected_with_its_line_and_the_rest_is_stored(
    tmp_path: Path, name: str
) -> None:
    expected = MANIFEST[name]
    corpus = CORPUS / name
    data = corpus if corpus.is_dir() else expand(corpus.read_bytes())
    result, messages, calls = poll_file(
        tmp_path, expected["kind"], expected["settings"], data, corpus.suffix or None
    )
    assert result.ok, result.error
    assert result.rejected == expected["rejected"]
    assert (messages, calls) == (expected["messages"], expected["calls"])
    for rejection in result.rejections:
        assert LOCATION.search(rejection.location), rejection
        assert rejection.reason and "\n" not in rejection.reason
        assert "x" * 100 not in rejection.reason  # a reason never echoes the record
    # A second poll of the same file adds and rejects nothing.
    again, messages_again, calls_again = poll_file(
        tmp_path, expected["kind"], expected["settings"], data, corpus.suffix or None
    )
    assert (again.rejected, messages_again, calls_again) == (0, messages, calls)


VALID = {
    "chat_jsonl": b'{"conversation": "c1", "at": "2026-11-20T09:00:00Z", '
    b'"author_role": "customer"}',
    "asterisk_cdr": (CORPUS / "asterisk_cdr" / "mixed.csv").read_bytes().splitlines()[0],
    "call_csv": b"k1,2026-11-20 09:00:00,2026-11-20 09:00:30,2026-11-20 09:04:00,+44 20 7946 0001",
    "answering_service_csv": b"a1,2026-11-20 09:00,+44 20 7946 0001,",
    "asterisk_queue_log": b"1795165200|v.1|support|SIP/201|COMPLETECALLER|5|60|1",
    "zendesk_chat": b'{"id": "c1", "type": "offline_msg", "timestamp": "2026-11-20T09:00:00Z"}',
    "livechat": b'{"id": "L1", "events": [{"user_type": "visitor", "timestamp": 1795165200}]}',
    "slack_export": b'[{"type": "message", "user": "U02CUST", "ts": "1795165200.000100"}]',
    "mbox": b"From x Fri Nov 20 09:00:00 2026\nFrom: dana@customer.test\nMessage-ID: <v1@c.test>\n",
}
HEADERS = {
    "call_csv": b"id,start,answer,end,from",
    "answering_service_csv": b"id,taken_at,callback_number,callback_at",
}
SETTINGS = {name.split("/")[0]: entry["settings"] for name, entry in MANIFEST.items()}


@pytest.mark.parametrize("kind", sorted(VALID))
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(junk=st.lists(st.binary(max_size=300), min_size=1, max_size=5))
def test_no_junk_makes_a_poll_crash(
    tmp_path_factory: pytest.TempPathFactory, kind: str, junk: list[bytes]
) -> None:
    folder = tmp_path_factory.mktemp(kind)
    lines = [*([HEADERS[kind]] if kind in HEADERS else []), VALID[kind], *junk]
    result, messages, calls = poll_file(folder, kind, SETTINGS[kind], b"\n".join(lines) + b"\n")
    assert result.ok, result.error
    assert messages + calls >= 1  # the good record before the junk is stored
