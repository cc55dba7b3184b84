"""The daily digest's content: the numbers of a hand-built day, ranked, compared and escaped."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, update

from monitor.config import Settings
from monitor.config_file import ConfigError, settings_from_mapping
from monitor.cron import cron_trigger, last_fire
from monitor.measure.summaries import hour_starts
from monitor.publish.digest.build import build_digest
from monitor.publish.digest.lines import change
from monitor.publish.digest.mail import Rendered, render
from monitor.store.database import make_engine
from monitor.store.figures import all_figures, day_bounds
from monitor.store.ingest import poll_source
from monitor.store.tables import STATES
from tests.digest_day import (
    DAY,
    HOSTILE_CALLER,
    HOSTILE_NAME,
    NOW,
    T9,
    build_day,
    config,
    empty_store,
    quiet_store,
    raw_config,
    without_customer_text,
)
from tests.servers import unreachable_mailbox

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
    # Callers waiting for a callback are listed apart from the inquiries waiting for a reply.
    assert [o.customer for o in answering.callbacks] == ["O'Brien & Sons", HOSTILE_CALLER]
    assert [o.customer for o in phones.callbacks] == ["02079460003"]
    assert answering.oldest_open == phones.oldest_open == ()
    assert [o.customer for o in chat.oldest_open] == [HOSTILE_NAME] and chat.callbacks == ()
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
    settings, engine = quiet_store(tmp_path, database_url)
    rendered = render(build_digest(engine, settings, DAY, NOW))
    assert rendered.subject == "Support digest Thu 19 Nov: no inquiries or calls"
    sentence = "No inquiries or calls were recorded on Thursday 19 November 2026."
    assert sentence in rendered.text and sentence in visible(rendered.html)
    assert "NEEDS ATTENTION" not in rendered.text and "BY HOUR" not in rendered.text
    assert "NOT READ" not in rendered.text and "incomplete" not in rendered.html
    for part in (rendered.text, rendered.html):
        assert not re.search(r"\b(None|nan)\b|\{\{", part)


def test_sources_never_read_are_never_a_quiet_day(tmp_path: Path, database_url: str) -> None:
    settings, engine = empty_store(tmp_path, database_url)
    rendered = render(build_digest(engine, settings, DAY, NOW))
    assert rendered.subject == "Support digest Thu 19 Nov: 3 of 3 sources not read"
    assert rendered.text.split("\n")[2] == "NOT READ - THESE FIGURES ARE INCOMPLETE"
    assert "web-chat (chat): not read yet: no poll has finished" in rendered.text
    assert "No source was read after Thursday 19 November 2026 ended" in rendered.text
    assert "No inquiries or calls were recorded" not in rendered.text
    seen = visible(rendered.html)
    assert "Not read: these figures are incomplete web-chat · chat — not read yet" in seen
    assert "no inquiries or calls" not in seen.lower()


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


def with_mailbox(tmp_path: Path, database_url: str) -> tuple[Settings, Engine]:
    """The hand-built day, and an IMAP mailbox that never connected (nothing listens)."""
    build_day(tmp_path, database_url)
    mailbox = unreachable_mailbox(stage="consideration")
    raw = raw_config(database_url)
    raw["sources"].append(mailbox)
    settings = settings_from_mapping(raw, tmp_path)
    engine = make_engine(database_url, tmp_path)
    for minute in (2, 7):  # 08:02 and 08:07 the morning after: refused both times
        at = NOW + timedelta(minutes=minute)
        poll_source(engine, settings, settings.sources[-1], now=at, clock=lambda at=at: at)
    return settings, engine


def test_a_mailbox_that_never_connected_comes_first_and_is_never_a_quiet_day(
    tmp_path: Path, database_url: str
) -> None:
    """The issue's case: an IMAP mailbox that never connected showed as "Received 0 same"."""
    settings, engine = with_mailbox(tmp_path, database_url)
    later = NOW + timedelta(minutes=10)
    rendered = render(build_digest(engine, settings, DAY, later))
    assert rendered.subject == (
        "Support digest Thu 19 Nov: 1 of 4 sources not read, 3 of 4 touchpoints need attention"
    )
    text = rendered.text
    assert text.index("NOT READ - THESE FIGURES ARE INCOMPLETE") < text.index("AT A GLANCE")
    assert (
        "  helpdesk-mail (email): never read: 2 failed polls since Fri 20 Nov 08:02\n"
        "     FIGURES INCOMPLETE; last error: " in text
    )
    assert "connection refused" in text.split("AT A GLANCE")[0]
    # Its own place says "not read", never "Received 0".
    assert "helpdesk-mail (email): not read: no figures (see the top)" in text
    assert not re.search(r"helpdesk-mail.*\n\s+Received\s+0", text)
    seen = visible(rendered.html)
    assert seen.index("helpdesk-mail · email — never read: 2 failed polls") < seen.index(
        "Needs attention"
    )
    assert "figures incomplete" in seen and "Last error: 127.0.0.1:" in seen
    assert "helpdesk-mail email — not read: no figures" in seen


def test_a_source_read_before_the_day_ended_is_incomplete_for_that_day(
    tmp_path: Path, database_url: str
) -> None:
    """Read at 22:00 on the day and not since: what came after is missing, so its figures are
    marked incomplete; a later poll that fails does not hide that its last read was earlier."""
    settings, engine = build_day(tmp_path, database_url)
    chat = settings.sources[0]
    evening = datetime(2026, 11, 19, 22, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(update(STATES).where(STATES.c.source == chat.name).values(read_from=evening))
    digest = build_digest(engine, settings, DAY, NOW)
    (unread,) = digest.unread
    assert (unread.source, unread.complete, unread.status) == ("web-chat", False, "behind")
    assert unread.what == "not read since Fri 20 Nov 00:00 yet (last read from Thu 19 Nov 22:00)"
    web = next(t for g in digest.stages for t in g.touchpoints if t.source == "web-chat")
    assert not web.complete and web.received == 5  # what was read is shown, marked
    # With the service started at 07:30, the catch-up wants a read since then.
    started = NOW - timedelta(minutes=30)
    digest = build_digest(
        engine, settings, DAY, NOW, read_after=started, read_after_words="the monitor started"
    )
    assert {u.source for u in digest.incomplete} == {"web-chat"}
    assert digest.unread[0].what.startswith("not read since the monitor started yet")


def test_touchpoints_with_nothing_to_report_take_one_line_and_each_queue_its_rows(
    tmp_path: Path, database_url: str
) -> None:
    settings, engine = build_day(tmp_path, database_url)
    with (tmp_path / "queue_log").open("a") as log:  # a second queue, busy on the day
        log.write(f"{T9 + 7200}|2.1|sales|NONE|ENTERQUEUE||02079460009|1\n")
        log.write(f"{T9 + 7215}|2.1|sales|PJSIP/202|CONNECT|15|9.9|2\n")
        log.write(f"{T9 + 7300}|2.1|sales|PJSIP/202|COMPLETECALLER|15|85|1\n")
    raw = raw_config(database_url)
    raw["sources"].append(
        {"name": "quiet-chat", "kind": "chat_jsonl", "path": "quiet.jsonl", "stage": "decision"}
    )
    (tmp_path / "quiet.jsonl").write_text("")
    settings = settings_from_mapping(raw, tmp_path)
    for source in settings.sources[1:]:
        assert poll_source(engine, settings, source, now=NOW, clock=lambda: NOW).ok
    rendered = render(build_digest(engine, settings, DAY, NOW))
    text = rendered.text
    decision = text.split("DECISION STAGE")[1]
    assert "\nquiet-chat (chat): no inquiries or calls\n" in decision
    assert "quiet-chat (chat):" not in text.split("DECISION STAGE")[0]
    phones = text.split("\nphones (phone)")[1].split("STAGE")[0]
    assert re.search(r"^  Calls · sales\s+Thu 19 Nov", phones, re.M)
    assert re.search(r"^  Calls · support\s+Thu 19 Nov", phones, re.M)
    assert re.search(r"Calls · support[^·]*\n  Calls\s+4\b", phones)
    seen = visible(rendered.html)
    assert "quiet-chat chat — no inquiries or calls" in seen
    assert "Calls · sales Thu 19 Nov" in seen and "Calls · support Thu 19 Nov" in seen


def test_unreturned_callbacks_are_listed_oldest_first(tmp_path: Path, database_url: str) -> None:
    settings, engine = build_day(tmp_path, database_url)
    digest = build_digest(engine, settings, DAY, NOW)
    assert [(o.customer, o.since) for o in digest.callbacks] == [
        ("O'Brien & Sons", "Tue 17 Nov 09:00"),
        ("02079460003", "Thu 19 Nov 11:14"),  # when the caller hung up
        (HOSTILE_CALLER, "Thu 19 Nov 16:00"),
    ]
    assert [o.customer for o in digest.oldest_open] == [HOSTILE_NAME]
    text = render(digest).text
    callbacks = text.split("UNRETURNED CALLBACKS, OLDEST FIRST")[1].split("LONGEST HOLDS")[0]
    assert callbacks.index("O'Brien & Sons") < callbacks.index("02079460003")
    assert (
        "OLDEST UNANSWERED INQUIRIES" in text
        and "O'Brien" not in text.split("OLDEST UNANSWERED INQUIRIES")[1].split("UNRETURNED")[0]
    )


def test_the_digest_link_is_one_link_at_the_top(tmp_path: Path, database_url: str) -> None:
    url = "https://grafana.example.com/d/support?orgId=1&from=now-1d"
    settings, engine = build_day(tmp_path, database_url, digest={"link": url})
    rendered = render(build_digest(engine, settings, DAY, NOW))
    assert rendered.text.splitlines()[1] == f"Live dashboard: {url}"
    links = re.findall(r'<a href="([^"]*)"', rendered.html)
    assert links == [html.escape(url)]
    assert rendered.html.index("<a href") < rendered.html.index("Inquiries")
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, database_url, digest={"link": "javascript:alert(1)"})
    assert caught.value.problems[0].startswith("digest.link: ")


def test_a_source_failing_or_stale_since_it_was_read_comes_first_with_complete_figures(
    tmp_path: Path, database_url: str
) -> None:
    """Read after the day ended, then its polls failed (the chat) or stopped (the phones):
    named first, since when and why, but its figures of the day are whole, not marked."""
    settings, engine = build_day(tmp_path, database_url)
    later = NOW + timedelta(hours=1)  # the phones, polled every 5m, are stale by then
    (tmp_path / "chat.jsonl").unlink()
    chat, _phones, answering = settings.sources
    assert not poll_source(engine, settings, chat, now=later, clock=lambda: later).ok
    assert poll_source(engine, settings, answering, now=later, clock=lambda: later).ok
    rendered = render(build_digest(engine, settings, DAY, later))
    text = rendered.text
    top = text.split("AT A GLANCE")[0]
    assert "SOURCES FAILING" in top and "INCOMPLETE" not in top
    assert (
        "  web-chat (chat): failing since Fri 20 Nov 09:00 (1 failed poll);"
        " last read Fri 20 Nov 08:00\n"
        "     the day's figures are complete; last error: " in top
    )
    assert "chat.jsonl" in top.split("web-chat (chat): failing")[1].split("\n")[1]
    assert (
        "  phones (phone): not read since Fri 20 Nov 08:00: its polls are not running,"
        " stale after 15m 00s\n     the day's figures are complete\n" in top
    )
    assert "answering" not in top
    assert "[INCOMPLETE: not read]" not in text
    assert rendered.subject.startswith("Support digest Thu 19 Nov: 2 sources failing, ")
    seen = visible(rendered.html)
    assert seen.index("Sources failing") < seen.index("Needs attention")
