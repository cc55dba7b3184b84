"""`Connector.sample`: the first records of a source read by the kind's own `fetch` and counted
by the Records collector, as `check` uses it. Whatever a kind's parse path (lines, CSV rows,
JSON documents, queue_log lines that only open a call), a source whose every record is
rejected is `unreadable`, and one that reads is not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.base import Connector
from monitor.config_file import settings_from_mapping
from monitor.store.ingest import build_connector

NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)


def connector(folder: Path, **source: Any) -> Connector:
    settings = settings_from_mapping({"sources": [{"name": "s", **source}]}, folder)
    return build_connector(settings, settings.sources[0])


def chat_line(n: int) -> str:
    at = T0 + timedelta(seconds=n)
    return json.dumps({"conversation": f"c{n}", "at": at.isoformat(), "author_role": "customer"})


def test_a_call_log_whose_columns_do_not_fit_is_unreadable_with_the_first_reason(
    tmp_path: Path,
) -> None:
    (tmp_path / "calls.csv").write_text(
        "Date,Time,From\n11/19/2026,9:05 AM,+44 1632 960001\n11/19/2026,9:12 AM,+44 1632 960002\n"
    )
    sample = connector(
        tmp_path, kind="call_csv", path="calls.csv", columns={"entered": "Date", "caller": "From"}
    ).sample(NOW)
    assert sample.unreadable
    assert (sample.read, sample.events, sample.rejected, sample.whole) == (0, 0, 2, True)
    assert str(sample.first_rejections[0]).startswith(
        "calls.csv:2: Date is not a time in the configured formats"
    )
    assert sample.refusal().startswith("every record read was rejected (2): calls.csv:2: ")
    assert sample.refusal().endswith(
        " (and 1 more); do the source's settings (columns, time format, timezone, layout) fit "
        "its files?"
    )


def test_the_same_call_log_with_its_columns_mapped_reads(tmp_path: Path) -> None:
    (tmp_path / "calls.csv").write_text(
        "Start,End,From\n"
        "2026-11-19 09:05:00,2026-11-19 09:06:00,+44 1632 960001\n"
        "2026-11-19 09:12:00,2026-11-19 09:12:30,+44 1632 960002\n"
    )
    sample = connector(
        tmp_path,
        kind="call_csv",
        path="calls.csv",
        columns={"entered": "Start", "ended": "End", "caller": "From"},
        time_format=["%Y-%m-%d %H:%M:%S"],
        timezone="UTC",
    ).sample(NOW)
    assert not sample.unreadable
    assert sample.read == 2 and sample.events == 4  # each a call and its callback request
    assert sample.describe() == "2 records read: 4 events"


def test_lines_that_are_not_json_make_a_chat_log_unreadable(tmp_path: Path) -> None:
    """Rejected while the file is read, before any record is made of them: counted too."""
    (tmp_path / "chat.jsonl").write_text("conversation,at\nc1,2026-11-19 09:00\n")
    sample = connector(tmp_path, kind="chat_jsonl", path="chat.jsonl").sample(NOW)
    assert sample.unreadable and sample.rejected == 2


def test_queue_log_lines_of_callers_still_waiting_are_read_not_rejected(tmp_path: Path) -> None:
    """Callers still waiting have no finished call yet; their lines were read all the same."""
    start = int(T0.timestamp())
    (tmp_path / "queue_log").write_text(
        f"{start}|1.1|support|NONE|ENTERQUEUE||+441632960001|1\n"
        f"{start + 5}|1.2|support|NONE|ENTERQUEUE||+441632960002|2\n"
        "not a queue_log line\n"
    )
    sample = connector(tmp_path, kind="asterisk_queue_log", path="queue_log").sample(NOW)
    assert not sample.unreadable
    assert (sample.read, sample.rejected) == (2, 1)  # the fast path of plain lines counts too


def test_an_empty_file_has_no_records_yet_and_is_not_unreadable(tmp_path: Path) -> None:
    (tmp_path / "chat.jsonl").write_text("")
    sample = connector(tmp_path, kind="chat_jsonl", path="chat.jsonl").sample(NOW)
    assert not sample.unreadable and sample.describe() == "no records yet"


def test_a_sample_reads_the_first_batch_not_the_whole_file(tmp_path: Path) -> None:
    """20,000 lines: the sample stops at the end of the batch that reaches its count."""
    (tmp_path / "chat.jsonl").write_text("".join(f"{chat_line(n)}\n" for n in range(20_000)))
    sample = connector(tmp_path, kind="chat_jsonl", path="chat.jsonl").sample(NOW, records=100)
    assert not sample.whole
    assert 100 <= sample.read < 20_000
    assert sample.describe().startswith(f"the first {sample.read:,} records read: ")


def test_a_json_export_of_the_wrong_shape_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "chats.json").write_text(json.dumps([{"id": "x", "nothing": "here"}] * 3))
    sample = connector(tmp_path, kind="zendesk_chat", path="chats.json").sample(NOW)
    assert sample.unreadable, sample
