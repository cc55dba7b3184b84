"""answering_service_csv: message logs, their callbacks, and callbacks made from the PBX."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from connectors.base import ConnectorContext
from connectors.phone.answering_service_csv import AnsweringServiceCsvConnector
from monitor.config import Agents
from monitor.store.ingest import poll_source
from tests.connectors.phone.test_asterisk_cdr import cdr
from tests.connectors.store import NOW, inquiries, messages, open_store, poll

HEADER = "Message ID,Taken,Caller,Call back on,Urgency,Returned,Message"
A_DAY = [
    HEADER,
    # Returned after 25 minutes (local Europe/London = UTC in November).
    'm1,2026-11-20 09:00,Dana,+44 20 7946 0001,High,2026-11-20 09:25,"Boiler leaking"',
    # Not returned yet; the message text spans two lines.
    'm2,2026-11-20 10:00,Lee,020 7946 0002,Normal,,"Quote please,\ncall after 2pm"',
    # A caller whose callback number differs from the caller ID: the callback number counts.
    "m3,2026-11-20 11:00,+44 161 496 0999,020 7946 0003,Low,,",
    # An extension-length number: its own conversation, closed only by its logged callback.
    "m4,2026-11-20 12:00,Front desk,2001,Normal,2026-11-20 13:00,",
]
COLUMNS = {
    "id": "Message ID",
    "taken_at": "Taken",
    "caller": "Caller",
    "callback_number": "Call back on",
    "urgency": "Urgency",
    "callback_at": "Returned",
    "message": "Message",
}


def write(path: Path, *rows: str | bytes) -> Path:
    path.write_bytes(b"".join((r if isinstance(r, bytes) else r.encode()) + b"\n" for r in rows))
    return path


def answering(**extra: object) -> dict[str, object]:
    entry = {
        "name": "answering",
        "kind": "answering_service_csv",
        "path": "messages.csv",
        "columns": COLUMNS,
        "time_format": ["%Y-%m-%d %H:%M"],
    }
    return entry | extra


def status(engine: object) -> dict[str, tuple[str, str, float | None]]:
    return {
        i.conversation: (i.channel, i.status, i.response_seconds)
        for i in inquiries(engine)  # type: ignore[arg-type]
    }


def test_a_day_of_messages_opens_inquiries_and_logged_callbacks_close_them(
    tmp_path: Path,
) -> None:
    write(tmp_path / "messages.csv", *A_DAY)
    settings, engine = open_store(tmp_path, [answering()], timezone="Europe/London")
    result = poll(engine, settings, "answering")
    assert result.rejected == 0
    assert status(engine) == {
        "tel:079460001": ("answering_service", "answered", 25 * 60),
        "tel:079460002": ("answering_service", "open", None),
        "tel:079460003": ("answering_service", "open", None),
        "answering:m4": ("answering_service", "answered", 3600),
    }
    stored = messages(engine)
    assert stored["msg:m1"].subject == "urgency: High"
    assert stored["msg:m3"].customer == "+44 161 496 0999"
    assert stored["callback:m1"].side == "agent"


def test_a_re_export_with_a_callback_filled_in_closes_the_inquiry_and_adds_nothing_else(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "messages.csv", *A_DAY)
    settings, engine = open_store(tmp_path, [answering(timezone="UTC")])
    poll(engine, settings, "answering")
    returned = A_DAY[2].replace("Normal,,", "Normal,2026-11-20 10:45,")
    write(path, *A_DAY[:2], returned, *A_DAY[3:])  # rewritten in place
    again = poll(engine, settings, "answering")
    assert (again.messages, again.rejected) == (1, 0)
    assert status(engine)["tel:079460002"] == ("answering_service", "answered", 45 * 60)
    assert poll(engine, settings, "answering").messages == 0


def test_rows_appended_to_the_log_are_read_without_reading_it_all_again(tmp_path: Path) -> None:
    path = write(tmp_path / "messages.csv", *A_DAY)
    settings, engine = open_store(tmp_path, [answering(timezone="UTC")])
    poll(engine, settings, "answering")
    with path.open("a") as handle:
        handle.write("m5,2026-11-20 14:00,Sam,020 7946 0005,Normal,,\n")
    again = poll(engine, settings, "answering")
    assert (again.messages, again.batches) == (1, 2)  # the new row, then the cursor
    assert "tel:079460005" in status(engine)


def test_a_message_is_closed_by_an_outbound_call_in_the_pbx_cdr(tmp_path: Path) -> None:
    write(tmp_path / "messages.csv", *A_DAY)
    # Call-back of m3's number from extension 201, 15:30 in Berlin = 14:30 UTC.
    callback = cdr("90.1", "201", "00442079460003", "15:30:00", 8, 60, context="from-internal")
    earlier = cdr("91.1", "201", "00442079460002", "08:00:00", 8, 60, context="from-internal")
    write(tmp_path / "Master.csv", earlier, callback)
    pbx = {"name": "pbx", "kind": "asterisk_cdr", "path": "Master.csv", "timezone": "Europe/Berlin"}
    settings, engine = open_store(tmp_path, [answering(timezone="UTC"), pbx])
    poll(engine, settings, "answering")
    poll(engine, settings, "pbx")
    found = status(engine)
    assert found["tel:079460003"] == ("answering_service", "answered", 3.5 * 3600)
    # An outbound call placed before the message was taken answers nothing.
    assert found["tel:079460002"][1] == "open"
    assert {i.source for i in inquiries(engine)} == {"answering"}


def test_bad_lines_are_skipped_with_counted_located_reasons(tmp_path: Path) -> None:
    rows: list[str | bytes] = [
        HEADER,
        "b1,2026-11-20 09:00,Dana,020 7946 0001,High,,",  # line 2: good
        "b2,,Dana,020 7946 0001,High,,",  # line 3: no time taken
        "b3,2026-11-20 09:00,Dana",  # line 4: wrong column count
        "x" * (1024 * 1024 + 1),  # line 5: a 1 MB line
        b"\x00\xff\x00 junk",  # line 6
        "b6,2026-11-20 09:00,,0207946\xff,High,,".encode("latin-1"),  # line 7
        "b7,2026-11-20 09:00,,,High,,",  # line 8: no number at all
        "b8,yesterday,Dana,020 7946 0008,High,,",  # line 9
        'b9,2026-11-20 09:30,Lee,020 7946 0009,Normal,,"never closed',  # line 10
        "b10,2026-11-20 09:40,Kim,020 7946 0010,Normal,,",  # line 11: read again after line 10
    ]
    write(tmp_path / "messages.csv", *rows)
    settings, engine = open_store(tmp_path, [answering(timezone="UTC")])
    result = poll(engine, settings, "answering")
    reasons = {r.location: r.reason for r in result.rejections}
    assert result.rejected == 8 == len(reasons)
    assert reasons["messages.csv:3"] == "missing Taken"
    assert reasons["messages.csv:4"] == "expected 7 columns, got 3"
    assert "longer than the limit" in reasons["messages.csv:5"]
    assert reasons["messages.csv:6"].startswith("binary data")
    assert reasons["messages.csv:7"].startswith("invalid UTF-8 in Call back on")
    assert reasons["messages.csv:8"] == "missing Call back on and Caller"
    assert reasons["messages.csv:9"].startswith("Taken is not a time")
    assert reasons["messages.csv:10"] == "a quoted field is never closed"
    assert set(messages(engine)) == {"msg:b1", "msg:b10"}


def test_a_file_without_the_mapped_header_rejects_its_rows_and_fails_the_poll(
    tmp_path: Path,
) -> None:
    write(tmp_path / "messages.csv", "When,Who", "2026-11-20 09:00,Dana")
    settings, engine = open_store(tmp_path, [answering()])
    later = NOW + timedelta(minutes=1)
    result = poll_source(engine, settings, settings.sources[0], now=later, clock=lambda: later)
    reasons = [r.reason for r in result.rejections]
    assert reasons == ["the header has no column 'Taken'", "the file has no usable header line"]
    assert messages(engine) == {}
    # Nothing it read could be measured: a misconfigured source, not a quiet one.
    assert result.error is not None
    assert result.error.startswith("every record read was rejected (2): messages.csv")


def test_a_read_stopped_after_any_batch_resumes_without_loss_or_duplicates(
    tmp_path: Path,
) -> None:
    rows = [HEADER] + [f"r{n},2026-11-20 09:{n:02d},C,020 7946 {n:04d},Low,," for n in range(25)]
    write(tmp_path / "messages.csv", *rows)
    settings, _ = open_store(tmp_path, [answering(timezone="UTC")])
    context = ConnectorContext(agents=Agents(), base_dir=tmp_path, timezone=ZoneInfo("UTC"))
    connector = AnsweringServiceCsvConnector(settings.sources[0], context, max_lines=10)
    ids: list[str] = []
    cursor = None
    for _ in range(10):  # each fetch is abandoned after its first batch, as if killed
        batch = next(connector.fetch(cursor, NOW), None)
        if batch is None:
            break
        ids += [event.external_id for event in batch.events]
        cursor = json.loads(json.dumps(batch.cursor))
    assert sorted(ids) == sorted(f"msg:r{n}" for n in range(25))
