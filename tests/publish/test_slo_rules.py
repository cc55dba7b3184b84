"""The rules `support-monitor slo` writes, in promtool: they load (`check rules`, duplicates
fatal), and `test rules` proves the alerts do what the workbook's method promises on the
verdict counters the exporter serves: a burst of late replies pages within the fast window, a
slow leak opens a ticket and never pages, and the same burst while the office is closed
neither pages nor opens a ticket when the objective counts only opening hours — while an
objective counting every hour pages for it at opening, which is why the events themselves
are gated and not only the alert."""

from __future__ import annotations

import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import Settings, slos
from monitor.config_file import settings_from_mapping
from monitor.publish.slo import TIERS, can_fire, factor, threshold
from monitor.publish.slo.prometheus import rules

CALENDAR = {"timezone": "UTC", "hours": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed")}}


SOURCES = {
    "inbox": {
        "kind": "mbox",
        "path": "inbox.mbox",
        "slo": {"objective": "95%", "window": "28d", "during": "office"},
    },
    "desk": {"kind": "mbox", "path": "desk.mbox", "slo": {"objective": "95%"}},
    "phones": {
        "kind": "asterisk_queue_log",
        "path": "queue_log",
        "slo": {"objective": "90%", "sli": "holds"},
    },
}


def config(tmp_path: Path, *names: str) -> Settings:
    """Two mailboxes with a 95% objective over 28 days: `inbox` counted during the opening hours
    of `office`, `desk` at every hour; and a phone source with a 90% objective on its holds
    (those of `names`: each test evaluates only the rules it looks at, for speed)."""
    sources = [{"name": n, **v} for n, v in SOURCES.items() if n in (names or SOURCES)]
    return settings_from_mapping({"calendars": {"office": CALENDAR}, "sources": sources}, tmp_path)


def write_rules(tmp_path: Path, settings: Settings) -> Path:
    ((name, text),) = rules(slos(settings), "support-monitor.yaml").files
    path = tmp_path / name
    path.write_text(text)
    return path


def promtool_run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def verdicts(source: str, within: str, late: str, **labels: str) -> list[dict[str, str]]:
    """Input series of one source's response verdict counters, as the exporter serves them."""
    common = {"job": "support-monitor", "instance": "a", "source": source, **labels}
    common.setdefault("channel", "email")
    common.setdefault("stage", "experience")

    def series(verdict: str) -> str:
        inside = ",".join(f'{k}="{v}"' for k, v in {**common, "verdict": verdict}.items())
        return f"support_response_verdicts_total{{{inside}}}"

    return [
        {"series": series("within"), "values": within},
        {"series": series("late"), "values": late},
    ]


def open_calendar(values: str) -> dict[str, str]:
    labels = 'job="support-monitor",instance="a",calendar="office"'
    return {"series": f"support_calendar_open{{{labels}}}", "values": values}


def written_alerts() -> dict[tuple[str, str], dict[str, Any]]:
    """The alerts the rules of `config` hold, by (objective id, page or ticket)."""
    ((_, text),) = rules(slos(config(Path("."))), "support-monitor.yaml").files
    return {
        (rule["labels"]["slo"], rule["labels"]["slo_severity"]): rule
        for group in yaml.safe_load(text)["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "SupportSLOBudgetBurn"
    }


def alerts(*expected: tuple[str, str]) -> list[dict[str, Any]]:
    """The SupportSLOBudgetBurn alerts expected: (objective id, page or ticket) each, with the
    labels of its series and the annotations written for it."""
    written = written_alerts()
    out = []
    for slo, severity in expected:
        source, sli = slo.rsplit("-", 1)
        labels = {
            "severity": "critical" if severity == "page" else "warning",
            "slo_severity": severity,
            "slo": slo,
            "sli": sli,
            "source": source,
        }
        annotations = written[(slo, severity)]["annotations"]
        out.append({"exp_labels": labels, "exp_annotations": annotations})
    return out


def check(at: str, *expected: tuple[str, str]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": "SupportSLOBudgetBurn", "exp_alerts": alerts(*expected)}


def run_unit_tests(
    promtool: str, tmp_path: Path, tests: list[dict[str, Any]], *sources: str, every: str = "1m"
) -> None:
    path = write_rules(tmp_path, config(tmp_path, *sources))
    unit = {"rule_files": [path.name], "evaluation_interval": every, "tests": tests}
    (tmp_path / "slo.test.yml").write_text(yaml.safe_dump(unit, sort_keys=False))
    result = promtool_run(promtool, "test", "rules", "slo.test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_pass_promtool_check_rules_with_duplicates_fatal(
    promtool: str, tmp_path: Path
) -> None:
    path = write_rules(tmp_path, config(tmp_path))
    result = promtool_run(promtool, "check", "rules", "--lint-fatal", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_burst_of_late_replies_pages_within_the_fast_window(
    promtool: str, tmp_path: Path
) -> None:
    # Seven clean hours (one reply in time a minute), then nine late ones a minute: by 7h20m
    # the last hour is 75% late (over 13.44 x 5% = 67.2%) and so are the last 5 minutes; the
    # page fires inside the 1-hour fast window. Both objectives see it while the office is open.
    burst = "0x420 9+9x120"
    tests = [
        {
            "name": "a burst of late replies while open",
            "interval": "1m",
            "input_series": [
                open_calendar("1x540"),
                *verdicts("inbox", "0+1x540", burst),
                *verdicts("desk", "0+1x540", burst),
            ],
            "alert_rule_test": [
                check("7h"),
                # 45 late of the last 105 replies: no page yet (13.44 x 5% is 67%), but a
                # ticket, since rules loaded 7 hours ago see 3 days as those 7 hours.
                check("7h5m", ("inbox-replies", "ticket"), ("desk-replies", "ticket")),
                check(
                    "7h20m",
                    ("inbox-replies", "page"),
                    ("inbox-replies", "ticket"),
                    ("desk-replies", "page"),
                    ("desk-replies", "ticket"),
                ),
            ],
            "promql_expr_test": [
                {
                    "expr": 'slo:sli_error:ratio_rate5m{slo="inbox-replies"}',
                    "eval_time": "7h20m",
                    "exp_samples": [
                        {
                            "labels": 'slo:sli_error:ratio_rate5m{slo="inbox-replies",'
                            'sli="replies",source="inbox"}',
                            "value": 0.9,
                        }
                    ],
                }
            ],
        }
    ]
    run_unit_tests(promtool, tmp_path, tests, "inbox", "desk")


def test_a_slow_leak_opens_a_ticket_and_never_pages(promtool: str, tmp_path: Path) -> None:
    # A clean day at four replies in time a minute, then one late a minute too (20% late):
    # under the 28% of the slow page pair, over the ticket pairs once enough of 3 days is late
    # (about 5h50m in); and the budget of the window is overspent (negative) by 1d10h.
    tests = [
        {
            "name": "a slow leak",
            "interval": "5m",  # 20 replies in time and then 5 late each 5 minutes
            "input_series": [
                open_calendar("1x420"),
                *verdicts("desk", "0+20x420", "0x288 5+5x132"),
            ],
            "alert_rule_test": [
                check("1d"),
                check("1d5h"),
                check("1d10h", ("desk-replies", "ticket")),
            ],
            "promql_expr_test": [
                {
                    "expr": 'slo:period_error_budget_remaining:ratio{slo="desk-replies"} < bool 0',
                    "eval_time": "1d10h",
                    "exp_samples": [
                        {"labels": '{slo="desk-replies",sli="replies",source="desk"}', "value": 1}
                    ],
                }
            ],
        }
    ]
    run_unit_tests(promtool, tmp_path, tests, "desk", every="5m")


def test_a_burst_while_closed_neither_pages_nor_opens_a_ticket_when_only_open_hours_count(
    promtool: str, tmp_path: Path
) -> None:
    # Open for 5 hours, closed from 5h to 7h, open again; nine late replies a minute in the
    # half hour before opening (6h30m to 7h). `inbox` counts only opening hours: nothing, at
    # opening or after. `desk`, the same burst at every hour, pages at 7h02m: its 30m/6h and
    # 2h/1d windows still hold the night's burst when the office opens.
    burst = "0x390 9+9x29 270x180"
    tests = [
        {
            "name": "a burst before opening",
            "interval": "1m",
            "input_series": [
                open_calendar("1x300 0x119 1x180"),
                *verdicts("inbox", "0+1x600", burst),
                *verdicts("desk", "0+1x600", burst),
            ],
            "alert_rule_test": [
                check("6h45m", ("desk-replies", "page"), ("desk-replies", "ticket")),
                check("7h2m", ("desk-replies", "page"), ("desk-replies", "ticket")),
                check("7h10m", ("desk-replies", "page"), ("desk-replies", "ticket")),
                check("9h", ("desk-replies", "ticket")),
            ],
            "promql_expr_test": [
                {
                    # No gated sample of the closed hours: the inbox's last 6 hours hold only
                    # the clean ones of the morning and those since opening.
                    "expr": 'slo:sli_error:ratio_rate6h{slo="inbox-replies"}',
                    "eval_time": "7h30m",
                    "exp_samples": [
                        {
                            "labels": 'slo:sli_error:ratio_rate6h{slo="inbox-replies",'
                            'sli="replies",source="inbox"}',
                            "value": 0,
                        }
                    ],
                }
            ],
        }
    ]
    run_unit_tests(promtool, tmp_path, tests, "inbox", "desk")


def test_calls_answered_late_or_not_at_all_page_the_holds_objective(
    promtool: str, tmp_path: Path
) -> None:
    # A 90% objective: the 1h/5m page would need 134% late calls, so it is left out; the 6h/30m
    # pair (56%) pages once most of the last 6 hours' calls were late (about 51 minutes in).
    labels = 'job="support-monitor",instance="a",source="phones",queue="sales"'
    tests = [
        {
            "name": "late calls",
            "interval": "1m",
            "input_series": [
                {
                    "series": f'support_call_verdicts_total{{{labels},verdict="within"}}',
                    "values": "0+1x600",
                },
                {
                    "series": f'support_call_verdicts_total{{{labels},verdict="late"}}',
                    "values": "0x360 9+9x240",
                },
            ],
            "alert_rule_test": [
                {
                    # Half the last 6 hours' calls late: a ticket, not yet a page.
                    "eval_time": "6h40m",
                    "alertname": "SupportSLOBudgetBurn",
                    "exp_alerts": alerts(("phones-holds", "ticket")),
                },
                {
                    "eval_time": "7h",
                    "alertname": "SupportSLOBudgetBurn",
                    "exp_alerts": alerts(("phones-holds", "page"), ("phones-holds", "ticket")),
                },
            ],
        }
    ]
    run_unit_tests(promtool, tmp_path, tests, "phones")


def test_a_missing_calendar_gauge_is_an_alert_of_its_own(promtool: str, tmp_path: Path) -> None:
    tests = [
        {
            "name": "no calendar gauge",
            "interval": "1m",
            "input_series": verdicts("inbox", "0+1x30", "0x30"),
            "alert_rule_test": [
                {
                    "eval_time": "15m",
                    "alertname": "SupportSLOCalendarAbsent",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning", "calendar": "office"},
                            "exp_annotations": {
                                "summary": "The opening hours of an SLO calendar are not exported",
                                "description": "support_calendar_open is absent for office: "
                                "the objectives counted during its opening hours record "
                                "nothing and cannot alert.",
                            },
                        }
                    ],
                }
            ],
        }
    ]
    run_unit_tests(promtool, tmp_path, tests, "inbox")


@pytest.mark.parametrize(
    ("window", "factors"),
    [
        ("30d", ["14.4", "6", "3", "1"]),  # the workbook's own numbers
        ("28d", ["13.44", "5.6", "2.8", "0.9333"]),  # the same shares of a 28-day budget
    ],
)
def test_factors_spend_the_workbook_s_share_of_the_objective_s_window(
    tmp_path: Path, window: str, factors: list[str]
) -> None:
    (slo,) = slos(
        settings_from_mapping(
            {"slo": {"email": {"objective": "99.9%", "window": window}}}, tmp_path
        )
    )
    assert [str(factor(t, slo.window)) for t in TIERS] == factors
    assert threshold(slo, TIERS[0]) == Decimal(factors[0]) * Decimal("0.001")


def test_a_tier_that_cannot_fire_is_left_out_with_a_comment_and_a_note(tmp_path: Path) -> None:
    settings = settings_from_mapping(
        {"slo": {"chat": {"objective": "80%"}, "email": {"objective": "99%"}}}, tmp_path
    )
    chat, email = slos(settings)
    assert [can_fire(chat, t) for t in TIERS] == [False, False, True, True]  # 13.44, 5.6 x 20%
    assert all(can_fire(email, t) for t in TIERS)
    output = rules([chat, email], "support-monitor.yaml")
    ((_, text),) = output.files
    assert len(output.notes) == 2
    assert all(n.startswith("slo.chat[0]: the page tier") for n in output.notes)
    assert "cannot fire at objective 80%" in output.notes[0]
    for note in output.notes:
        assert f"  # {note}" in text
    groups = {g["name"]: g["rules"] for g in yaml.safe_load(text)["groups"]}
    chat_alerts = [r for r in groups["support-monitor.slo.chat-replies"] if "alert" in r]
    assert [a["labels"]["slo_severity"] for a in chat_alerts] == ["ticket"]
    email_alerts = [r for r in groups["support-monitor.slo.email-replies"] if "alert" in r]
    assert [a["labels"]["slo_severity"] for a in email_alerts] == ["page", "ticket"]
