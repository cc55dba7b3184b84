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


SUFFIX = {"chat_jsonl": ".jsonl", "mbox": ".mbox"}
# Where a rejection says it is: `file:line`, or a Maildir file's folder/cur/name.
LOCATION = {"maildir": r"^input/(cur|new)/[^/]+$"}


def expand(data: bytes) -> bytes:
    return data.replace(b"@@GIANT@@", GIANT_LINE)


def poll_file(
    folder: Path, kind: str, extra: dict[str, Any], data: bytes | Path
) -> tuple[PollResult, int, int]:
    """Poll `data` (a file's bytes, or a Maildir copied with its placeholders expanded)."""
    if isinstance(data, Path):
        name = "input"
        shutil.rmtree(folder / name, ignore_errors=True)
        shutil.copytree(data, folder / name)
        for path in (folder / name).rglob("*"):
            if path.is_file():
                path.write_bytes(expand(path.read_bytes()))
    else:
        name = f"input{SUFFIX.get(kind, '.csv')}"
        (folder / name).write_bytes(data)
    source = {"name": "bad", "kind": kind, "path": name, **extra}
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
    result, messages, calls = poll_file(tmp_path, expected["kind"], expected["settings"], data)
    assert result.ok, result.error
    assert result.rejected == expected["rejected"]
    assert (messages, calls) == (expected["messages"], expected["calls"])
    location = LOCATION.get(expected["kind"], r"^input\.\w+:\d+$")
    for rejection in result.rejections:
        assert re.search(location, rejection.location), rejection
        assert rejection.reason and "\n" not in rejection.reason
        assert "x" * 100 not in rejection.reason  # a reason never echoes the record
    # A second poll of the same file adds and rejects nothing.
    again, messages_again, calls_again = poll_file(
        tmp_path, expected["kind"], expected["settings"], data
    )
    assert (again.rejected, messages_again, calls_again) == (0, messages, calls)


VALID = {
    "chat_jsonl": b'{"conversation": "c1", "at": "2026-11-20T09:00:00Z", '
    b'"author_role": "customer"}',
    "asterisk_cdr": (CORPUS / "asterisk_cdr" / "mixed.csv").read_bytes().splitlines()[0],
    "call_csv": b"k1,2026-11-20 09:00:00,2026-11-20 09:00:30,2026-11-20 09:04:00,+44 20 7946 0001",
    "answering_service_csv": b"a1,2026-11-20 09:00,+44 20 7946 0001,",
    "asterisk_queue_log": b"1795165200|v.1|support|SIP/201|COMPLETECALLER|5|60|1",
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
