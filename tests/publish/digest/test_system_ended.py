"""The digest of a day on which the phone system itself ended one call in eight."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from monitor.publish.digest.build import build_digest
from monitor.publish.digest.mail import render
from tests.connectors.phone.test_customers import THREECX, threecx, write
from tests.connectors.store import open_store, poll

DAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def test_calls_the_system_ended_are_let_downs_not_answered(tmp_path: Path) -> None:
    """A 3CX day of eight calls from outside: seven reached an extension after 10 s, and one
    went to EndCall, which answered it at once and hung up 5 s later. The `3cx` preset used to
    count all eight answered within a second; the digest shows 7 answered, 1 ended by the phone
    system, and the source let down 1 of 8 callers (12.5 %, shown as 12%)."""
    rows = [
        threecx(n, f"{9 + n:02d}:00:00", caller=f"+4420794600{n:02d}",
                types=("Line", "Queue", "Extension"), answered=10, length=70)
        for n in range(1, 8)
    ]  # fmt: skip
    rows.append(
        threecx(8, "17:00:00", caller="+442079460008", types=("Line", "EndCall", "EndCall"),
                answered=0, length=5, to_dn="899", final_dn="899")
    )  # fmt: skip
    write(tmp_path / "cdr.log", *rows)
    settings, engine = open_store(tmp_path, [THREECX], timezone="UTC")
    poll(engine, settings, "3cx", now=NOW)
    digest = build_digest(engine, settings, DAY, NOW)
    (touchpoint,) = [t for g in digest.stages for t in g.touchpoints]
    (calls,) = [section for section in touchpoint.sections if section.title.startswith("Calls")]
    lines = {line.label: line.value for line in calls.lines}
    assert lines["Calls"] == "8"
    assert lines["Answered"] == "7"
    assert lines["Ended by the phone system"] == "1"
    assert touchpoint.let_down == 1 and touchpoint.needs_attention
    assert "1 of 8 calls held over 5m or not answered (12%)" in touchpoint.problems[0]
    text = render(digest).text
    assert "Ended by the phone system" in text
