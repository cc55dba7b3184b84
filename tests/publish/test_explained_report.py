"""`report --by` and `report --items` on a day with three agents in two teams across e-mail,
chat and a phone queue (tests/team_day.py), polled through the real connectors.

The figures, by hand (period Thursday 19 November, seen Friday 20 at 12:30):

billing (Ann, Bob; the mail source's team)
  inquiries: M1 (Ann, 1800 s), M3 (Ann, 59400 s; 3600 business), c2 (Ann, 180 s: late, the
  chat target is 2 min), and M4 (open since Thu 12:00: nobody answered it, so it counts for
  its source's team; due Fri 12:00, past target at 12:30, 88200 s old)
  -> received 4, answered 3, within 2 of 4 = 50%; responses 180, 1800, 59400: median
     (nearest rank 2 of 3) 1800, p90 (rank 3) 59400; business 1800, 3600: median 1800,
     p90 3600; open 1, past target 1, oldest 88200 s
  calls: 1.1 (Ann as Agent/1001, wait 10, talk 120), 1.2 (Bob as PJSIP/1002, wait 400, talk 60)
  -> 2 calls, 2 answered, over warn 1 (400 > 300), over max 0; waits 10, 400: median 10,
     p90 400; talk 180 in all, median 60; answered within 20 s: 1 of 2 offered = 50%
helpdesk (Cy; the chat source's team)
  inquiries: M2 (Cy by mail: the responder's team, not the source's; 3600 s, 3600 business),
  c1 (Cy, 60 s), c3 (Cy, 90 s), c4 (missed: the source's team)
  -> received 4, answered 3, within 3 of 4 = 75%; responses 60, 90, 3600: median 90,
     p90 3600; business 3600: median and p90 3600; open 0
  no calls
no team (the phones source has none; PJSIP/1003 is on no team)
  inquiries: V1, the callback of 1.3, opened 11:00:30 (when the caller hung up), open past
  target, 25 h 29 min 30 s = 91770 s old
  -> received 1, answered 0, within 0 of 1; open 1, past target 1
  calls: 1.3 (hung up after 30 s), 1.4 (PJSIP/1003, wait 15, talk 200)
  -> 2 calls, 1 answered; waits 15, 30: median 15, p90 30; talk 200; within 20 s: 1 of 2
     offered (1.3 waited 30 s, past the threshold, so it counts) = 50%

By agent: Ann Smith: inquiries M1, M3, c2 (within 2 of 3, median 1800, p90 59400), call 1.1;
Bob Brown: call 1.2; Cy Jones: M2, c1, c3 (within 3 of 3, median 90, p90 3600); PJSIP/1003:
call 1.4; nobody: M4, c4, V1 and the call 1.3.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from monitor.cli import main
from monitor.config import CalendarSettings, Settings
from monitor.measure.calendars import BusinessCalendar
from monitor.publish.digest.build import build_digest
from monitor.publish.digest.mail import render
from monitor.publish.exporter import exposition
from monitor.publish.report_items import arithmetic, mask_number, render_csv
from tests.team_day import AGENT_NAMES, DAY, NOW, TEAMS, build_day, write_config

PERIOD = ("--since", "2026-11-19", "--until", "2026-11-20")


@dataclass(frozen=True)
class Day:
    config: Path
    settings: Settings
    engine: Engine


@pytest.fixture
def day(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Day:
    """The day stored, its config written; the command line's clock pinned to NOW."""
    settings, engine = build_day(tmp_path, database_url)
    monkeypatch.setattr("monitor.cli.utcnow", lambda: NOW)
    return Day(write_config(tmp_path, database_url), settings, engine)


def run(capsys: pytest.CaptureFixture[str], config: Day | Path, *args: str) -> str:
    capsys.readouterr()
    path = config.config if isinstance(config, Day) else config
    assert main(["--config", str(path), "report", *PERIOD, *args]) == 0
    return capsys.readouterr().out


def groups(capsys: pytest.CaptureFixture[str], config: Day, *by: str) -> dict[Any, Any]:
    out = json.loads(run(capsys, config, *(f"--by={b}" for b in by), "--format", "json"))
    return {tuple(g[d] for d in by): g for g in out["groups"]}


def items(
    capsys: pytest.CaptureFixture[str], config: Day | Path, *args: str
) -> list[dict[str, Any]]:
    out = json.loads(run(capsys, config, "--items", "--format", "json", *args))
    rows: list[dict[str, Any]] = out["items"]
    return rows


INQUIRY_KEYS = (
    "inquiries_received",
    "inquiries_answered",
    "inquiries_within_target",
    "inquiries_decided",
    "inquiries_median_seconds",
    "inquiries_p90_seconds",
    "inquiries_median_business_seconds",
    "inquiries_p90_business_seconds",
    "inquiries_open_now",
    "inquiries_open_past_target_now",
    "inquiries_oldest_open_age_seconds",
)
CALL_KEYS = (
    "calls_total",
    "calls_answered",
    "calls_over_warn",
    "calls_median_wait_seconds",
    "calls_p90_wait_seconds",
    "calls_talk_seconds",
    "calls_median_talk_seconds",
    "calls_answered_within",
    "calls_offered",
    "calls_service_level",
)


def picked(group: dict[str, Any], keys: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(group.get(k) for k in keys)


def test_a_day_of_three_agents_in_two_teams_gives_the_figures_derived_by_hand(
    day: Day, capsys: pytest.CaptureFixture[str]
) -> None:
    by_team = groups(capsys, day, "team")
    assert set(by_team) == {("billing",), ("helpdesk",), (None,)}
    billing, helpdesk, nobody = by_team[("billing",)], by_team[("helpdesk",)], by_team[(None,)]
    assert picked(billing, INQUIRY_KEYS) == (4, 3, 2, 4, 1800, 59400, 1800, 3600, 1, 1, 88200)
    assert billing["inquiries_within_target_ratio"] == 0.5
    assert picked(billing, CALL_KEYS) == (2, 2, 1, 10, 400, 180, 60, 1, 2, 0.5)
    assert picked(helpdesk, INQUIRY_KEYS) == (4, 3, 3, 4, 90, 3600, 3600, 3600, 0, 0, None)
    assert helpdesk["inquiries_missed"] == 1
    assert "calls_total" not in helpdesk
    assert picked(nobody, INQUIRY_KEYS) == (1, 0, 0, 1, None, None, None, None, 1, 1, 91770)
    assert picked(nobody, CALL_KEYS) == (2, 1, 0, 15, 30, 200, 200, 1, 2, 0.5)


def test_the_same_day_by_source_queue_and_stage_gives_the_figures_derived_by_hand(
    day: Day, capsys: pytest.CaptureFixture[str]
) -> None:
    """mail: M1 1800, M2 3600, M3 59400 (business 1800, 3600, 3600), M4 open past target ->
    within 3 of 4, median (rank 2 of 3) 3600, p90 59400, business median and p90 3600.
    chat: c1 60, c3 90 within, c2 180 late, c4 missed -> within 2 of 4, median 90, p90 180.
    phones: the callback V1 open past target; calls waited 10, 15, 30, 400 -> median (rank 2
    of 4) 15, p90 (rank 4) 400; talk 120 + 60 + 200 = 380, median 120; within 20 s: 2 of 4.
    A queue is the calls' alone (inquiries have none); one stage holds all nine inquiries."""
    by_source = groups(capsys, day, "source")
    assert set(by_source) == {("mail",), ("chat",), ("phones",)}
    assert picked(by_source[("mail",)], INQUIRY_KEYS) == (
        *(4, 3, 3, 4, 3600, 59400, 3600, 3600),
        *(1, 1, 88200),
    )
    assert picked(by_source[("chat",)], INQUIRY_KEYS) == (
        *(4, 3, 2, 4, 90, 180, None, None),
        *(0, 0, None),
    )
    phones = by_source[("phones",)]
    assert picked(phones, INQUIRY_KEYS)[:4] == (1, 0, 0, 1)
    assert picked(phones, CALL_KEYS) == (4, 3, 1, 15, 400, 380, 120, 2, 4, 0.5)
    by_queue = groups(capsys, day, "queue")
    assert set(by_queue) == {("support",), (None,)}
    assert picked(by_queue[("support",)], CALL_KEYS) == picked(phones, CALL_KEYS)
    assert by_queue[(None,)]["inquiries_received"] == 9 and "calls_total" not in by_queue[(None,)]
    assert picked(groups(capsys, day, "stage")[("experience",)], INQUIRY_KEYS)[:4] == (9, 6, 5, 9)
    # CSV carries the JSON's figures, a row per group.
    table = list(csv.DictReader(io.StringIO(run(capsys, day, "--by", "source", "--format=csv"))))
    assert {r["source"]: r["inquiries_within_target"] for r in table} == {
        "mail": "3",
        "chat": "2",
        "phones": "0",
    }


def test_figures_per_agent_name_each_person_once_across_their_channels(
    day: Day, capsys: pytest.CaptureFixture[str]
) -> None:
    by_agent = groups(capsys, day, "team", "agent")
    assert sorted(by_agent, key=str) == sorted(
        [
            ("billing", "Ann Smith"),
            ("billing", "Bob Brown"),
            ("billing", None),
            ("helpdesk", "Cy Jones"),
            ("helpdesk", None),
            (None, "PJSIP/1003"),
            (None, None),
        ],
        key=str,
    )
    ann, cy = by_agent[("billing", "Ann Smith")], by_agent[("helpdesk", "Cy Jones")]
    assert picked(ann, INQUIRY_KEYS)[:6] == (3, 3, 2, 3, 1800, 59400)
    assert (ann["calls_total"], ann["calls_median_wait_seconds"]) == (1, 10)
    assert picked(cy, INQUIRY_KEYS)[:6] == (3, 3, 3, 3, 90, 3600)
    assert by_agent[("billing", "Bob Brown")]["calls_over_warn"] == 1
    assert by_agent[(None, "PJSIP/1003")]["calls_talk_seconds"] == 200


def test_items_add_up_to_the_figures_by_team_and_to_the_metrics(
    day: Day, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = items(capsys, day)
    inquiries = [r for r in rows if r["kind"] == "inquiry"]
    calls = [r for r in rows if r["kind"] == "call"]
    by_team = groups(capsys, day, "team")
    for (team,), group in by_team.items():
        mine = [r for r in inquiries if (r["team"] or None) == team]
        verdicts = Counter(r["verdict"] for r in mine)
        assert group["inquiries_received"] == sum(r["in_period"] for r in mine)
        assert group["inquiries_answered"] == sum(bool(r["answered"]) for r in mine)
        assert group["inquiries_within_target"] == verdicts["within"] + verdicts["clamped"]
        assert group["inquiries_not_within_target"] == (
            verdicts["late"] + verdicts["missed"] + verdicts["open_past_target"]
        )
        assert group["inquiries_open_now"] == sum(r["now"] == "open" for r in mine)
        mine_calls = [r for r in calls if (r["team"] or None) == team]
        assert group.get("calls_total", 0) == len(mine_calls)
        assert group.get("calls_over_warn", 0) == sum(r["verdict"] == "late" for r in mine_calls)
    # And to /metrics, which counts the same rows by source (the store holds only this day).
    metrics = samples(exposition(day.engine, day.settings, lambda: NOW).decode())
    answered = [r for r in inquiries if r["answered"]]
    assert metrics["support_inquiries_total"] == len(inquiries) == 9
    assert metrics["support_response_seconds_count"] == len(answered) == 6
    assert metrics["support_response_seconds_sum"] == sum(r["calendar_seconds"] for r in answered)
    business = [r["business_seconds"] for r in answered if r["business_seconds"] is not None]
    assert metrics["support_response_business_seconds_sum"] == sum(business) == 9000
    late = [r for r in inquiries if r["verdict"] == "late"]
    assert metrics["support_response_breaches_total"] == len(late) == 1
    assert metrics["support_chats_missed_total"] == 1
    assert metrics["support_open_inquiries"] == sum(r["now"] == "open" for r in inquiries) == 2
    assert metrics["support_open_inquiries_breached"] == 2
    assert metrics["support_calls_total"] == len(calls) == 4
    assert metrics["support_hold_seconds_sum"] == sum(r["calendar_seconds"] for r in calls)
    assert metrics["support_hold_breaches_total"] == sum(r["verdict"] == "late" for r in calls)


def samples(text: str) -> Counter[str]:
    """Each sample's value summed over its series (histogram buckets left out)."""
    found: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                found[sample.name] += sample.value
    return found


def test_no_agent_or_team_reaches_the_metrics(tmp_path: Path, database_url: str) -> None:
    settings, engine = build_day(tmp_path, database_url)
    text = exposition(engine, settings, lambda: NOW).decode()
    values = {
        value.casefold()
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        for value in sample.labels.values()
    }
    assert values, "the exposition has labelled series"
    forbidden = {name.casefold() for name in (*AGENT_NAMES, *TEAMS)}
    assert {v for v in values if any(name in v for name in forbidden)} == set()
    assert [name for name in (*AGENT_NAMES, *TEAMS) if name in text] == []


def test_each_item_shows_its_arithmetic_verdict_and_responder(
    day: Day, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = {(r["kind"], r["reference"]): r for r in items(capsys, day)}
    late_order = rows[("inquiry", "Late order")]
    assert late_order["business_hours"] == "Thu 17:00–17:30 + Fri 09:00–09:30 = 1h 00m"
    assert (late_order["calendar_seconds"], late_order["business_seconds"]) == (59400, 3600)
    assert (late_order["by"], late_order["team"], late_order["verdict"]) == (
        "Ann Smith",
        "billing",
        "within",
    )
    assert late_order["reply"] == "<r3@example.com>"
    refund = rows[("inquiry", "Refund")]
    assert (refund["by"], refund["team"]) == ("Cy Jones", "helpdesk")  # the responder's team
    open_mail = rows[("inquiry", "Address change")]
    assert (open_mail["verdict"], open_mail["now"], open_mail["by"]) == (
        "open_past_target",
        "open",
        "",
    )
    callback = rows[("inquiry", "•••••••0003")]
    assert (callback["channel"], callback["verdict"], callback["team"]) == (
        "voicemail",
        "open_past_target",
        "",
    )
    held = rows[("call", "•••••••0002")]
    assert (held["verdict"], held["by"], held["calendar_seconds"]) == ("late", "Bob Brown", 400)


def test_items_say_which_messages_were_left_out_and_why(
    day: Day, capsys: pytest.CaptureFixture[str]
) -> None:
    left = {
        (r["source"], r["reference"]): r["reason"]
        for r in items(capsys, day, "--verdict", "left_out")
    }
    assert left == {
        ("mail", "We got your message"): "automatic: Auto-Submitted: auto-replied",
        ("chat", ""): "automatic: author_role: bot",
        ("mail", "Lunch?"): "internal: every participant on our side",
        ("mail", "Your order shipped"): "nobody was waiting (outreach, or a further reply)",
    }


def test_items_filter_by_source_team_and_verdict(
    day: Day, capsys: pytest.CaptureFixture[str]
) -> None:
    chat = items(capsys, day, "--source", "chat")
    assert {r["source"] for r in chat} == {"chat"}
    helpdesk = items(capsys, day, "--team", "helpdesk")
    # Cy's mail (M2) counts for his team; the chat source's bot greeting for its team.
    assert Counter((r["source"], r["kind"], r["verdict"]) for r in helpdesk) == {
        ("mail", "inquiry", "within"): 1,
        ("chat", "inquiry", "within"): 2,
        ("chat", "inquiry", "missed"): 1,
        ("chat", "message", "left_out"): 1,
    }
    late = items(capsys, day, "--verdict", "late", "--verdict", "open past target")
    assert sorted((r["kind"], r["verdict"]) for r in late) == [
        ("call", "late"),
        ("inquiry", "late"),
        ("inquiry", "open_past_target"),
        ("inquiry", "open_past_target"),
    ]


def test_the_digests_lists_are_lines_of_report_items(
    day: Day, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = build_digest(day.engine, day.settings, DAY, NOW, top=10)
    open_rows = [r for r in items(capsys, day) if r["now"] == "open"]
    # Callers waiting to be called back are listed apart from inquiries waiting for a reply.
    for listed, callbacks in [(digest.oldest_open, False), (digest.callbacks, True)]:
        assert [(o.source, o.since) for o in listed] == [
            (r["source"], f"Thu 19 Nov {r['opened'][11:16]}")
            for r in open_rows
            if (r["channel"] in ("voicemail", "answering_service")) == callbacks
        ]
    assert digest.oldest_open and digest.callbacks
    call_rows = sorted(
        (r for r in items(capsys, day) if r["kind"] == "call"),
        key=lambda r: -r["calendar_seconds"],
    )
    assert [(h.source, h.queue, h.at) for h in digest.longest_holds] == [
        (r["source"], r["queue"], r["opened"][11:16]) for r in call_rows
    ]


def test_the_digest_ranks_teams_and_agents_weakest_first(tmp_path: Path, database_url: str) -> None:
    """no team: 1 of 1 inquiry not within target (100%), 1 of 2 calls unanswered; billing:
    2 of 4 inquiries (c2 late, M4 open past target) and 1 of 2 calls held over 5m (50%);
    helpdesk: 1 of 4 (the missed chat, 25%). Bob: his one call held over 5m (100%); Ann: 1 of
    3 inquiries late (33%); Cy and PJSIP/1003: nothing let down, by name."""
    settings, engine = build_day(tmp_path, database_url)
    digest = build_digest(engine, settings, DAY, NOW, top=10)
    assert digest.teams is not None
    assert [(t.name, t.badge) for t in digest.teams.teams] == [
        ("no team", "100% let down"),
        ("billing", "50% let down"),
        ("helpdesk", "25% let down"),
    ]
    assert [(a.name, a.team, a.badge) for a in digest.teams.agents] == [
        ("Bob Brown", "billing", "100% let down"),
        ("Ann Smith", "billing", "33% let down"),
        ("Cy Jones", "helpdesk", "within target"),
        ("PJSIP/1003", "no team", "within target"),
    ]
    billing = digest.teams.teams[1]
    assert (billing.answered, billing.within_note, billing.calls_answered) == (3, "2 of 4", 2)
    text = render(digest).text
    assert "BY TEAM, WEAKEST FIRST" in text and "BY AGENT, WEAKEST FIRST" in text
    assert "1. no team: 100% let down" in text and "1. Bob Brown (billing)" in text


def test_without_reports_agents_nobody_is_named(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    settings, engine = build_day(tmp_path, database_url, agents=False)
    monkeypatch.setattr("monitor.cli.utcnow", lambda: NOW)
    config = write_config(tmp_path, database_url, agents=False)
    assert main(["--config", str(config), "report", *PERIOD, "--by", "agent"]) == 2
    assert "reports.agents: true" in capsys.readouterr().err
    rows = items(capsys, config)
    assert {r["by"] for r in rows} == {""}
    assert {r["team"] for r in rows} == {"billing", "helpdesk", ""}
    digest = build_digest(engine, settings, DAY, NOW, top=10)
    assert digest.teams is not None and digest.teams.agents == ()
    text = render(digest).text + render(digest).html
    assert [name for name in AGENT_NAMES if name in text] == []


def test_the_arithmetic_is_the_calendars_own_open_intervals() -> None:
    office = CalendarSettings(
        timezone="Europe/London",
        hours={d: ["09:00-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")},  # type: ignore[misc]
    )
    calendar = BusinessCalendar.from_settings(office)
    friday, monday = (
        datetime(2026, 11, 20, 17, 0, tzinfo=UTC),
        datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
    )
    seconds, line = arithmetic(calendar, friday, monday)
    assert line == "Fri 17:00–17:30 + Mon 09:00–09:30 = 1h 00m"
    assert seconds == calendar.business_seconds(friday, monday) == 3600
    # A month open: the middle intervals are counted, not listed, and still sum exactly.
    later = datetime(2026, 12, 23, 9, 30, tzinfo=UTC)
    seconds, line = arithmetic(calendar, friday, later)
    assert seconds == calendar.business_seconds(friday, later)
    # 24 intervals: Fri 20 Nov, four whole weeks, then Mon 21 to Wed 23 Dec.
    assert "(19 more intervals)" in line and line.count(" + ") == 5
    assert line.endswith(f"= {round(seconds) // 3600}h {round(seconds) % 3600 // 60:02d}m")
    assert arithmetic(calendar, monday, monday)[1] == "closed throughout = 0s"


def test_numbers_are_masked_and_no_csv_cell_can_start_a_formula() -> None:
    assert mask_number("+44 20 7946 0958") == "+•• •• •••• 0958"
    assert mask_number("anonymous") == "anonymous"
    hostile = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "plain"]
    rows = [{"kind": "inquiry", "reference": value, "calendar_seconds": -5} for value in hostile]
    read = list(csv.DictReader(io.StringIO(render_csv(rows))))
    assert [r["reference"] for r in read] == [
        '\'=HYPERLINK("http://x")',
        "'+1+1",
        "'-2+3",
        "'@SUM(A1)",
        "'\t=1",
        "plain",
    ]
    assert read[0]["calendar_seconds"] == "-5"  # numbers are ours, and stay numbers


def test_a_subject_with_escape_sequences_prints_as_visible_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    from tests.mailboxes import message as mail
    from tests.mailboxes import write_mbox

    at = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
    write_mbox(
        tmp_path / "mail.mbox",
        [(mail("x1@customer.test", subject="\x1b]0;owned\x07\x1b[2J=cmd", date=at), at)],
    )
    config = tmp_path / "c.yaml"
    config.write_text(
        json.dumps(
            {
                "database": "sqlite:///m.db",
                "sources": [{"name": "mail", "kind": "mbox", "path": "mail.mbox"}],
            }
        )
    )
    monkeypatch.setattr("monitor.cli.utcnow", lambda: NOW)
    assert main(["--config", str(config), "poll"]) == 0
    table = run(capsys, config, "--items")
    assert "\x1b" not in table and "\x07" not in table
    assert "␛]0;owned␇␛[2J=cmd" in table
    assert "'" + "␛" not in run(capsys, config, "--items", "--format", "csv")


def test_an_agents_name_is_only_ever_text_in_the_digest(tmp_path: Path, database_url: str) -> None:
    settings, engine = build_day(tmp_path, database_url)
    digest = build_digest(engine, settings, DAY, NOW, top=10)
    assert digest.teams is not None
    hostile = "<img src=x onerror=alert(1)>\x1b[2J"
    lines = (replace(digest.teams.agents[0], name=hostile), *digest.teams.agents[1:])
    shown = render(replace(digest, teams=replace(digest.teams, agents=lines)))
    assert "<img src=x" not in shown.html and "&lt;img src=x onerror=alert(1)&gt;" in shown.html
    assert "\x1b" not in shown.text and "<img src=x onerror=alert(1)>␛[2J" in shown.text
