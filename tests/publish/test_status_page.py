"""The status page's content: what needs someone now, and today so far with `report`'s numbers.

The moment is tests/status_day.py's: 16:30 on Thursday 19 November 2026, a caller waiting 9
minutes, three open inquiries past their target, hostile names and subjects."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from markupsafe import escape
from sqlalchemy import inspect, select, text

from monitor.publish.report import flat_rows
from monitor.publish.status_page import build_status
from monitor.publish.status_routes import render_status
from monitor.store.database import prepare, set_meta
from monitor.store.figures import all_figures, day_bounds
from monitor.store.live import live, open_counts
from monitor.store.tables import META, SCHEMA_VERSION
from tests.status_day import HOSTILE, LATE_CALLER, LATE_SUBJECT, NOW, WAITING_CALLER, build_moment


def no_margin(_targets: object) -> timedelta:
    return timedelta(0)


def test_today_so_far_equals_report_of_the_day_at_the_same_moment(
    tmp_path: Path, database_url: str
) -> None:
    """Every figure of every touchpoint (the report's flat rows: received, within target,
    median, p90, open now and past target, calls, waits, waiting now…) is what `report --since
    <today>` computes at the same moment, though the page counts the open backlog in its
    index instead of reading it."""
    settings, engine = build_moment(tmp_path, database_url)
    period = day_bounds(NOW.date(), settings.timezone)
    seen = live(engine, settings, period, NOW, top=10, margin=no_margin)
    report = all_figures(engine, settings, *period, NOW)
    assert flat_rows(seen.figures) == flat_rows(report)
    # and a later moment, when more is past its target and the caller over hold_max
    later = NOW + timedelta(hours=20)
    seen = live(engine, settings, period, later, top=10, margin=no_margin)
    assert flat_rows(seen.figures) == flat_rows(all_figures(engine, settings, *period, later))


def test_what_needs_someone_now_comes_first_longest_and_oldest_first(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings, engine = build_moment(tmp_path, sqlite_url)
    page = build_status(engine, settings, NOW)
    (caller,) = page.waiting
    assert (caller.wait, caller.caller, caller.level, caller.against) == (
        "9m 00s",
        WAITING_CALLER,
        "warn",
        "over 5m",
    )
    assert [(o.customer, o.since, o.due) for o in page.overdue] == [
        ("O'Brien & Sons", "Tue 17 Nov 09:00", "31h 30m past target"),
        (LATE_CALLER, "Wed 18 Nov 10:00", "6h 30m past target"),
        ("<img src=x onerror=alert(1)>", "Thu 19 Nov 10:15", "6h 13m past target"),
    ]
    assert page.overdue[1].subject == f"urgency: {LATE_SUBJECT}"
    assert page.past_target_total == 3 and not page.calm
    # Five minutes later the caller has waited past hold_max (13m is passed at 16:34).
    later = build_status(engine, settings, NOW + timedelta(minutes=5))
    assert (later.waiting[0].level, later.waiting[0].against) == ("max", "over 13m")


def test_inquiries_near_their_target_are_listed_with_when_they_are_due(
    tmp_path: Path, sqlite_url: str
) -> None:
    """With `alerts.due_soon: 20h`, the callback owed since the caller hung up at 11:14 (due
    11:14 tomorrow) is near its target, and four hours later the answering-service message of
    16:00 (due 16:00 tomorrow) too: listed oldest first, with when they are due."""
    settings, engine = build_moment(tmp_path, sqlite_url, alerts={"due_soon": "20h"})
    page = build_status(engine, settings, NOW)
    soon = [(o.source, o.due) for o in page.overdue if not o.past_target]
    assert soon == [("phones", "due in 18h 44m")]
    wider = build_status(engine, settings, NOW + timedelta(hours=4))
    soon = [(o.source, o.due) for o in wider.overdue if not o.past_target]
    assert soon == [("phones", "due in 14h 44m"), ("answering", "due in 19h 30m")]


def test_the_list_names_the_top_oldest_and_counts_the_rest(tmp_path: Path, sqlite_url: str) -> None:
    settings, engine = build_moment(tmp_path, sqlite_url)
    page = build_status(engine, settings, NOW, top=1)
    assert [o.customer for o in page.overdue] == ["O'Brien & Sons"]
    html = render_status(page)
    assert "3 open inquiries are past their target in all" in html


def test_hostile_names_and_subjects_are_shown_escaped(tmp_path: Path, sqlite_url: str) -> None:
    settings, engine = build_moment(tmp_path, sqlite_url)
    html = render_status(build_status(engine, settings, NOW))
    for hostile in (*HOSTILE, "<img src=x onerror=alert(1)>"):
        assert hostile not in html
        assert str(escape(hostile)) in html
    assert "<script" not in html.lower() and "<a href=//" not in html


def test_a_source_not_read_is_named_and_its_figures_are_no_quiet_day(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings, engine = build_moment(tmp_path, sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM source_state WHERE source = 'web-chat'"))
        conn.execute(
            text(
                "UPDATE source_state SET consecutive_failures = 2,"
                " last_error = 'connection refused' WHERE source = 'phones'"
            )
        )
    page = build_status(engine, settings, NOW)
    assert [(p.source, p.status) for p in page.problems] == [
        ("web-chat", "never_read"),
        ("phones", "failing"),
    ]
    assert page.problems[1].last_error == "connection refused"
    problems = {t.source: t.problem for t in page.touchpoints}
    assert problems == {"web-chat": "never read", "phones": "failing", "answering": ""}
    html = render_status(page)
    assert "not a quiet day" in html
    # A source read only before the service started is "not read yet" since then.
    later, minute = NOW + timedelta(minutes=2), timedelta(minutes=1)
    started = build_status(engine, settings, later, started_at=NOW + minute)
    assert [(p.source, p.status) for p in started.problems][-1] == ("answering", "behind")
    assert "not read since the monitor started yet" in started.problems[-1].what
    assert {t.source: t.problem for t in started.touchpoints}["answering"] == "not read yet"


def test_the_open_backlog_is_counted_as_every_report_counts_it(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The counts and the oldest come from monitor.store.backlog, as the exporter's, the
    report's and the digest's do (whose cost, the same with a hundred times the backlog, is
    tests/store/test_backlog.py's)."""
    settings, engine = build_moment(tmp_path, sqlite_url)
    with engine.connect() as conn:
        counts = open_counts(conn, "answering", NOW)
    assert (counts.open_now, counts.past_target) == (3, 2)


def test_a_version_7_database_gets_the_indexes_of_the_open_backlog(
    tmp_path: Path, database_url: str
) -> None:
    settings, engine = build_moment(tmp_path, database_url)
    with engine.begin() as conn:  # as version 7 left it
        conn.execute(text("DROP INDEX ix_inquiry_open"))
        conn.execute(text("DROP INDEX ix_inquiry_open_due"))
        set_meta(conn, "schema_version", "7")
    prepare(engine)
    with engine.connect() as conn:
        version = conn.execute(select(META.c.value).where(META.c.key == "schema_version"))
        assert version.scalar_one() == str(SCHEMA_VERSION)
        names = {i["name"] for i in inspect(conn).get_indexes("inquiry")}
    assert {"ix_inquiry_open", "ix_inquiry_open_due"} <= names
    page = build_status(engine, settings, NOW)
    assert page.past_target_total == 3
