"""The daily digest's content: the numbers of a hand-built day, ranked, compared and escaped."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.config_file import ConfigError, settings_from_mapping
from monitor.cron import cron_trigger, last_fire
from monitor.measure.summaries import hour_starts
from monitor.publish.digest.build import build_digest
from monitor.publish.digest.lines import change
from monitor.publish.digest.mail import Rendered, render
from monitor.store.figures import all_figures, day_bounds
from tests.digest_day import (
    DAY,
    HOSTILE_CALLER,
    NOW,
    build_day,
    empty_store,
    without_customer_text,
)

ROOT = Path(__file__).resolve().parents[3]


def visible(page: str) -> str:
    """The text a reader sees in the HTML part: tags dropped, entities decoded, blanks joined."""
    page = re.sub(r"<!--.*?-->", " ", page, flags=re.S)
    page = re.sub(r"<(title|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.fixture
def day(tmp_path: Path, database_url: str) -> Rendered:
    settings, engine = build_day(tmp_path, database_url)
    return render(build_digest(engine, settings, DAY, NOW))


def test_the_figures_of_a_hand_built_day_come_from_the_metrics_engine(
    tmp_path: Path, database_url: str
) -> None:
    settings, engine = build_day(tmp_path, database_url)
    since, until = day_bounds(DAY, settings.timezone)
    chat, phones, answering = all_figures(engine, settings, since, until, NOW, detail=10)
    assert chat.inquiries is not None and phones.calls is not None
    i = chat.inquiries
    assert (i.received, i.answered, i.within_target, i.decided, i.breached) == (5, 4, 3, 5, 2)
    assert (i.median_seconds, i.p90_seconds, i.open_now, i.open_breached_now) == (60, 300, 1, 1)
    c = phones.calls
    assert (c.total, c.answered, c.abandoned, c.over_warn, c.over_max) == (4, 3, 1, 2, 1)
    assert (c.median_wait_seconds, c.p90_wait_seconds, c.longest_wait_seconds) == (30, 840, 840)
    assert (c.service_level, c.held_long_or_unanswered) == (0.25, 2)
    assert [h.wait_seconds for h in phones.longest_holds] == [840, 400, 30, 10]
    assert [o.customer for o in answering.oldest_open] == ["O'Brien & Sons", HOSTILE_CALLER]
    # The hours add up to the day's figures: every contact counted once, let down alike.
    hours = [a + b + d for a, b, d in zip(chat.hours, phones.hours, answering.hours, strict=True)]
    assert len(hours) == 24 and hours[0].start == since
    assert sum(h.inquiries for h in hours) == 8 and sum(h.calls for h in hours) == 4
    let_down = sum(h.inquiries_let_down + h.calls_let_down for h in hours)
    assert let_down == i.not_within_target + c.held_long_or_unanswered == 4


def test_the_text_part_shows_the_day_ranked_weakest_first(day: Rendered) -> None:
    text = day.text
    assert day.subject == "Support digest Thu 19 Nov: 3 of 3 touchpoints need attention"
    attention = text.split("NEEDS ATTENTION, WEAKEST FIRST")[1].split("OLDEST")[0]
    assert re.findall(r"^  \d\. (\S+)", attention, re.M) == ["phones", "web-chat", "answering"]
    assert "1. phones (phone, experience): 50% let down" in attention
    assert "2 of 4 calls held over 5m or not answered (50%); longest wait 14m 00s" in attention
    assert "2 of 5 inquiries not answered within 2m (40%)" in attention
    assert "3. answering (answering service, experience): 1 past target" in attention
    for line in (
        r"Inquiries\s+8\s+5 answered",
        r"Within target\s+67%\s+4 of 6",
        r"Calls let down\s+2\s+50% of calls",
        r"Within 2m\s+60%\s+▼ 40 pts worse\s+–\s+3 of 5",
        r"Median reply\s+1m 00s\s+▲ 30s worse",
        r"90% replied within\s+5m 00s\s+▲ 4m 30s worse",
        r"Received\s+5\s+▲ 4\s+▲ 5",
        r"Abandoned\s+25%\s+–\s+–\s+1 of 4",
        r"Answered within 20s\s+25%",
        r"Median wait\s+30s",
        r"90% waited at most\s+14m 00s",
        r"Held over 5m\s+2\s+▲ 2 worse\s+▲ 2 worse\s+50%",
        r"Held over 13m\s+1\s+▲ 1 worse",
        r"Longest wait\s+14m 00s",
        r"Open now\s+2\s+1 past target, oldest 2d 23h",
        r"14m 00s\s+02079460003, phones/support at 11:00, hung up \(over max\)",
        r"2d 23h\s+O'Brien & Sons - \"urgency: normal\"",
        r"10:00\s+#+\s+2 \(2 let down\)",
    ):
        assert re.search(line, text), line
    # Stages in the order of their weakest touchpoint, each touchpoint under its own.
    assert text.index("EXPERIENCE STAGE") < text.index("DECISION STAGE")
    answering = "answering (answering service): 1 past target"
    assert text.index("phones (phone): 50% let down") < text.index(answering)


def test_the_html_part_shows_the_same_numbers(day: Rendered) -> None:
    seen = visible(day.html)
    for words in (
        "Thursday 19 November 2026",
        "Inquiries 8 5 answered",
        "Within target 67% 4 of 6",
        "1. phones · phone · experience 50% let down",
        "Within 2m 3 of 5 60% ▼ 40 pts",
        "Held over 13m 25% 1 ▲ 1 ▲ 1",
        "14m 00s 02079460003 11:00 · hung up · phones · support · over max",
        "2d 23h O'Brien & Sons — urgency: normal",
    ):
        assert words in seen, words
    assert seen.index("Experience stage") < seen.index("Decision stage")


def test_customer_text_is_shown_as_text_never_as_markup_or_template(day: Rendered) -> None:
    page = day.html
    assert "<script" not in page and "<img" not in page and "<b>urgent" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "urgency: {{ 7*7 }} &lt;b&gt;urgent&lt;/b&gt;" in page
    assert "<img src=x onerror=alert(1)>" in day.text  # plain text needs no escaping
    assert "O&#39;Brien &amp; Sons" in page
    assert "{{ 7*7 }}" in day.text and "49" not in day.text  # shown, never evaluated
    for part in (day.subject, day.text, page):
        rest = without_customer_text(part)
        assert "{{" not in rest and "{%" not in rest
        assert not re.search(r"\b(None|nan|NaN|undefined)\b", rest)


def test_a_day_without_data_says_so_plainly(tmp_path: Path, database_url: str) -> None:
    settings, engine = empty_store(tmp_path, database_url)
    rendered = render(build_digest(engine, settings, DAY, NOW))
    assert rendered.subject == "Support digest Thu 19 Nov: no inquiries or calls"
    sentence = "No inquiries or calls were recorded on Thursday 19 November 2026."
    assert sentence in rendered.text and sentence in visible(rendered.html)
    assert "NEEDS ATTENTION" not in rendered.text and "BY HOUR" not in rendered.text
    for part in (rendered.text, rendered.html):
        assert not re.search(r"\b(None|nan)\b|\{\{", part)


def test_a_config_without_sources_still_renders(tmp_path: Path) -> None:
    settings = settings_from_mapping({"database": "sqlite:///m.db"}, tmp_path)
    from monitor.store.database import make_engine, prepare

    engine = make_engine("sqlite:///m.db", tmp_path)
    prepare(engine)
    rendered = render(build_digest(engine, settings, DAY, NOW))
    assert "No sources are configured" in rendered.text
    assert rendered.subject.endswith("no sources configured")


@pytest.mark.parametrize(
    ("now", "then", "measure", "good", "text", "verdict"),
    [
        (5, 1, "count", None, "▲ 4", "neutral"),
        (0.6, 1.0, "ratio", "up", "▼ 40 pts", "worse"),
        (0.9, 0.6, "ratio", "up", "▲ 30 pts", "better"),
        (60, 30, "duration", "down", "▲ 30s", "worse"),
        (30, 4000, "duration", "down", "▼ 1h 06m", "better"),
        (0.604, 0.6, "ratio", "up", "same", "neutral"),  # equal as displayed: 60% and 60%
        (None, 3, "count", None, "–", "none"),
        (3, None, "duration", "down", "–", "none"),
    ],
)
def test_a_change_says_its_direction_and_whether_it_is_good_news(
    now: float | None, then: float | None, measure: str, good: str | None, text: str, verdict: str
) -> None:
    found = change(now, then, measure, good)  # type: ignore[arg-type]
    assert (found.text, found.verdict) == (text, verdict)


def test_a_day_when_the_clocks_go_back_has_25_hours() -> None:
    london = ZoneInfo("Europe/London")
    since, until = day_bounds(date(2026, 10, 25), london)
    starts = hour_starts(since, until)
    assert len(starts) == 25 and len(hour_starts(*day_bounds(date(2026, 3, 29), london))) == 23
    assert [f"{s.astimezone(london):%H}" for s in starts[:3]] == ["00", "01", "01"]


def test_cron_weekday_numbers_mean_what_cron_means() -> None:
    london = ZoneInfo("Europe/London")
    weekdays = cron_trigger("0 8 * * 1-5", london)
    friday = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert f"{weekdays.get_next_fire_time(None, friday):%a %H:%M}" == "Mon 08:00"
    sunday = cron_trigger("30 7 * * 0", london)
    assert f"{sunday.get_next_fire_time(None, friday):%a %d %H:%M}" == "Sun 22 07:30"
    fired = last_fire(weekdays, friday, timedelta(days=1))
    assert fired is not None and fired.astimezone(UTC) == datetime(2026, 11, 20, 8, tzinfo=UTC)


def test_a_bad_schedule_or_a_digest_without_smtp_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"digest": {"schedule": "0 8 * *", "to": ["lead@example.com"]}}, ROOT)
    assert caught.value.problems[0].startswith("digest.schedule: expected a cron expression")
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"digest": {"to": ["lead@example.com"]}}, ROOT)
    assert caught.value.problems == ["digest.to: sending the digest needs the `smtp` section"]
