"""The digest of a day on which the phone system itself ended one call in eight."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from monitor.publish.digest.build import Digest, build_digest
from monitor.publish.digest.lines import Line
from monitor.publish.digest.mail import render
from monitor.publish.report import render_csv, render_json, render_table
from monitor.store.figures import day_bounds, source_figures
from monitor.store.tables import TALLIES
from tests.connectors.phone.test_customers import THREECX, threecx, write
from tests.connectors.store import calls, open_store, poll

DAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
SPAN = day_bounds(DAY, ZoneInfo("UTC"))
KNOWN = {"3CX EndCall 899", "3CX Ivr 802", None}


def _calls_section(digest: Digest) -> list[Line]:
    (touchpoint,) = [t for g in digest.stages for t in g.touchpoints]
    (section,) = [s for s in touchpoint.sections if s.title.startswith("Calls")]
    return list(section.lines)


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


def _day_of_calls_the_system_ended(folder: Path, hostile: str = "") -> tuple[Any, Any, Any]:
    """A 3CX day: two calls reach extension 101; three go to EndCall 899 and one to the closed
    IVR option 802, where 3CX hangs up on the caller (TerminatedByDst); one more, when
    `hostile` is given, ends at a destination of that name."""
    ended = [("EndCall", "899")] * 3 + [("Ivr", "802")]
    if hostile:
        ended.append(("EndCall", hostile))
    rows = [
        threecx(n, f"09:0{n}:00", caller=f"+4420794600{n:02d}",
                types=("Line", "Queue", "Extension"), answered=10, length=70)
        for n in (1, 2)
    ]  # fmt: skip
    rows += [
        threecx(10 + n, f"1{n}:00:00", caller=f"+4420794601{n:02d}", types=("Line", kind, kind),
                answered=0, length=5, to_dn=dn, final_dn=dn)
        for n, (kind, dn) in enumerate(ended)
    ]  # fmt: skip
    write(folder / "cdr.log", *rows)
    settings, engine = open_store(folder, [THREECX], timezone="UTC")
    return settings, engine, poll(engine, settings, "3cx", now=NOW)


def test_report_and_digest_say_at_which_destination_the_system_ended_calls(
    tmp_path: Path,
) -> None:
    """Four of six calls were ended by 3CX: three at EndCall 899, one at IVR 802. The report's
    table notes, its JSON and CSV, and the digest's calls section each give both destinations
    with their counts, most first: "3 at 3CX EndCall 899, 1 at 3CX Ivr 802"."""
    settings, engine, _ = _day_of_calls_the_system_ended(tmp_path)
    figures = [source_figures(engine, settings, settings.sources[0], *SPAN, NOW)]
    expected = "3 at 3CX EndCall 899, 1 at 3CX Ivr 802"
    assert f"3cx/calls: 4 calls ended by the phone system with no person ({expected})" in (
        render_table(figures)
    )
    (row,) = json.loads(render_json(figures))["sources"]
    assert row["calls_system_ended"] == 4
    assert row["calls_system_ended_at"] == [
        {"destination": "3CX EndCall 899", "calls": 3},
        {"destination": "3CX Ivr 802", "calls": 1},
    ]
    (flat,) = csv.DictReader(io.StringIO(render_csv(figures)))
    assert flat["calls_system_ended_at"] == "3CX EndCall 899=3; 3CX Ivr 802=1"
    lines = {line.label: line for line in _calls_section(build_digest(engine, settings, DAY, NOW))}
    ended = lines["Ended by the phone system"]
    assert ended.value == "4" and ended.note.startswith(expected)
    text = render(build_digest(engine, settings, DAY, NOW)).text
    (shown,) = [line for line in text.splitlines() if "Ended by the phone system" in line]
    assert shown.split()[5] == "4" and expected in shown


def test_a_hostile_destination_is_bounded_and_escaped_everywhere(tmp_path: Path) -> None:
    """A destination written by whoever configured the dialplan (or fed through it) holds an
    escape sequence, HTML and 300 characters. It is stored cut to 48 printable characters
    (`?` for anything else), and the report, its CSV, the poll's remark and the digest (text
    and HTML) show that, never the raw string; it is no metric label."""
    hostile = "<b>x</b>\x1b]0;owned\x07=HYPERLINK(1)" + "9" * 300
    settings, engine, result = _day_of_calls_the_system_ended(tmp_path, hostile)
    (kept,) = [c.ended_by for c in calls(engine).values() if c.ended_by not in KNOWN]
    assert kept == "3CX EndCall ?b?x?/b???0?owned??HYPERLINK(1)99999" and len(kept) == 48
    assert f"calls the system ended at {kept}" in result.noted
    figures = [source_figures(engine, settings, settings.sources[0], *SPAN, NOW)]
    table = render_table(figures)
    assert f"(3 at 3CX EndCall 899, 1 at {kept}, 1 at 3CX Ivr 802)" in table
    digest = render(build_digest(engine, settings, DAY, NOW))
    for text in (table, render_csv(figures), digest.text, digest.html, render_json(figures)):
        assert "\x1b" not in text and "<b>x" not in text and "9" * 49 not in text
    assert "=HYPERLINK" not in render_csv(figures)
    with engine.connect() as conn:
        labels = [r.labels for r in conn.execute(select(TALLIES))]
    assert not [label for label in labels if "EndCall" in label or "owned" in label]
