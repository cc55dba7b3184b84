"""The objectives as Prometheus recording and alerting rules (`support-monitor slo`).

Per objective, one rule group (`support-monitor.slo.<id>`; its alerts evaluated with its
recordings, so they never read a previous evaluation's ratios):

- `slo:sli_error:ratio_rate<w>`: the share of bad events over each alert window and the
  objective's own window: always a ratio of sums of events, never a mean of ratios (at support
  volumes most 5-minute slots are empty, and one empty slot makes a mean NaN);
- `slo:objective:ratio`, `slo:error_budget:ratio`, `slo:period_sli:ratio` (the good share over
  the window), `slo:current_burn_rate:ratio` (over the last hour),
  `slo:period_burn_rate:ratio` and `slo:period_error_budget_remaining:ratio` (negative once
  overspent) — the names sloth gives the same series, so either reads familiar;
- `SupportSLOBudgetBurn`, `slo_severity` page (`severity: critical`) or ticket (`warning`):
  the workbook's window pairs with factors for the objective's window (monitor.publish.slo);
  a pair that could never fire at the objective is left out, and says so.

Every series carries `slo` (the objective's id), `sli`, and `source` or `channel`.

**Counting only opening hours (`during`).** Gating the alert alone is not enough: a burst of
late replies half an hour before opening still fills the 6-hour and 1-day windows when the
office opens, and would page at 09:00 for the night. So the events themselves are gated: a
5-minute sample of the verdict counters is recorded only while the calendar
(`support_calendar_open`) was open for all of those 5 minutes (`slo:sli_error_events:increase5m`
and `slo:sli_total_events:increase5m`), and every window sums those samples; the alerts are
also silent while the calendar is closed. A verdict given while closed is left out: a reply
target passing at night (calendar clock) is not counted, nor a reply sent at night. Without
`during`, each window is the plain increase of the counters over it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from monitor.config import Slo
from monitor.publish.slo import (
    BURN_WINDOW,
    CALENDAR_OPEN,
    TIERS,
    Output,
    Tier,
    budget,
    describe,
    duration,
    factor,
    impossible,
    labels_of,
    percent,
    quoted,
    sli_of,
    threshold,
    tiers_of,
    windows,
)
from monitor.publish.slo.yamltext import comment, dump

FILE = "support-monitor.slo.rules.yml"
ALERT = "SupportSLOBudgetBurn"
CALENDAR_ALERT = "SupportSLOCalendarAbsent"
SAMPLE = "5m"  # the gated samples: each covers this much time, all of it open
SEVERITY = {"page": "critical", "ticket": "warning"}
SUMMARY = {
    "page": "{id}: error budget burning fast",
    "ticket": "{id}: error budget burning",
}


def rules(objectives: list[Slo], config_name: str) -> Output:
    notes: list[str] = []
    parts = [comment(_header(objectives, config_name)), "groups:\n"]
    for slo in objectives:
        lost = [f"{line}: left out" for line in impossible(slo)]
        notes.extend(lost)
        parts.append(comment([describe(slo), *_factors(slo), *lost], indent=2))
        parts.append(dump([{"name": f"support-monitor.slo.{slo.id}", "rules": _group(slo)}], 2))
    calendars = sorted({slo.during for slo in objectives if slo.during is not None})
    if calendars:
        parts.append(
            comment(
                [
                    "Objectives counted during opening hours cannot alert without the calendar",
                    "gauge: its absence is an alert of its own.",
                ],
                indent=2,
            )
        )
        group = {"name": "support-monitor.slo.calendars", "rules": _calendar_alerts(calendars)}
        parts.append(dump([group], 2))
    return Output([(FILE, "".join(parts))], notes)


def _header(objectives: list[Slo], config_name: str) -> list[str]:
    longest = max(slo.window for slo in objectives)
    return [
        f"Service-level objectives of Support Monitor, written by `support-monitor slo` from "
        f"{config_name}:",
        "change `slo:` there and write this file again; do not edit it. Load it with",
        "`rule_files:` beside rules.yml; check it with `promtool check rules`.",
        "",
        "Method: Google SRE workbook, ch. 5 (https://sre.google/workbook/alerting-on-slos/),",
        "multi-window, multi-burn-rate alerts: page when 2% of the error budget is spent in 1h",
        "(and 5m) or 5% in 6h (and 30m); ticket when 10% is spent in 1d (and 2h) or 3d (and 6h).",
        "A factor is that share times the objective's window over the long window (14.4, 6, 3",
        "and 1 for 30d; 13.44, 5.6, 2.8 and 0.9333 for 28d), so every window spends the same",
        "share before it alerts. Inhibit the ticket while the page fires (docs/slo.md).",
        "",
        f"Prometheus must keep at least {duration(longest)} of data "
        "(--storage.tsdb.retention.time, 15d by default),",
        "and the window ratios cover only the time since these rules were loaded.",
    ]


def _factors(slo: Slo) -> list[str]:
    return [
        f"{tier.severity} {duration(tier.long)}/{duration(tier.short)}: "
        f"{factor(tier, slo.window)}x the budget of {budget(slo)}, "
        f"error ratio over {threshold(slo, tier)}"
        for tier in TIERS
    ]


def _group(slo: Slo) -> list[dict[str, Any]]:
    labels = labels_of(slo)
    mine = "{slo=" + quoted(slo.id) + "}"
    out = _ratios(slo, labels, mine)
    own = duration(slo.window)

    def record(name: str, expr: str) -> dict[str, Any]:
        return {"record": name, "expr": expr, "labels": labels}

    out += [
        record("slo:objective:ratio", f"vector({slo.objective})"),
        record("slo:error_budget:ratio", f"vector({budget(slo)})"),
        record("slo:period_sli:ratio", f"1 - slo:sli_error:ratio_rate{own}{mine}"),
        record(
            "slo:current_burn_rate:ratio",
            f"slo:sli_error:ratio_rate{duration(BURN_WINDOW)}{mine} / slo:error_budget:ratio{mine}",
        ),
        record(
            "slo:period_burn_rate:ratio",
            f"slo:sli_error:ratio_rate{own}{mine} / slo:error_budget:ratio{mine}",
        ),
        record("slo:period_error_budget_remaining:ratio", f"1 - slo:period_burn_rate:ratio{mine}"),
    ]
    for severity in ("page", "ticket"):
        alert = _alert(slo, severity, mine)
        if alert is not None:
            out.append(alert)
    return out


def _ratios(slo: Slo, labels: dict[str, str], mine: str) -> list[dict[str, Any]]:
    """The error ratio over every window: of gated 5-minute samples with `during`, else of the
    counters' increase over the window itself."""
    sli = sli_of(slo)
    bad, every = sli.selector(bad=True), sli.selector()
    out: list[dict[str, Any]] = []
    if slo.during is None:
        for window in windows(slo):
            w = duration(window)
            expr = f"{_events(bad, w)}\n  / {_events(every, w)}\n"
            out.append({"record": f"slo:sli_error:ratio_rate{w}", "expr": expr, "labels": labels})
        return out
    gate = f"(min_over_time({CALENDAR_OPEN}{{calendar={quoted(slo.during)}}}[{SAMPLE}]) == 1)"
    for name, selector in (("error", bad), ("total", every)):
        out.append(
            {
                "record": f"slo:sli_{name}_events:increase{SAMPLE}",
                "expr": f"{_events(selector, SAMPLE)}\n  and on() {gate}\n",
                "labels": labels,
            }
        )
    for window in windows(slo):
        w = duration(window)
        if w == SAMPLE:
            expr = (
                f"slo:sli_error_events:increase{SAMPLE}{mine}"
                f" / slo:sli_total_events:increase{SAMPLE}{mine}"
            )
        else:
            expr = (
                f"sum_over_time(slo:sli_error_events:increase{SAMPLE}{mine}[{w}])\n"
                f"  / sum_over_time(slo:sli_total_events:increase{SAMPLE}{mine}[{w}])\n"
            )
        out.append({"record": f"slo:sli_error:ratio_rate{w}", "expr": expr, "labels": labels})
    return out


def _events(selector: str, window: str) -> str:
    # Instances sharing a database export the same counters: one copy of each, then the sum.
    return f"sum(max without (instance) (increase({selector}[{window}])))"


def _alert(slo: Slo, severity: str, mine: str) -> dict[str, Any] | None:
    tiers = list(tiers_of(slo, severity))
    if not tiers:
        return None
    pairs = [_pair(slo, tier, mine) for tier in tiers]
    expr = "(\n" + "\n  or\n".join(pairs) + "\n)\n"
    if slo.during is not None:
        expr += f"and on() ({CALENDAR_OPEN}{{calendar={quoted(slo.during)}}} == 1)\n"
    spent = " or ".join(
        f"{percent(t.budget)}% of the budget in {duration(t.long)} ({factor(t, slo.window)}x)"
        for t in tiers
    )
    return {
        "alert": ALERT,
        "expr": expr,
        # The objective's labels too: they come with the series, and keep the alerts of two
        # objectives apart for promtool's duplicate check.
        "labels": {"severity": SEVERITY[severity], "slo_severity": severity, **labels_of(slo)},
        "annotations": {
            "summary": SUMMARY[severity].format(id=slo.id),
            "description": literal(f"{describe(slo)} Spending {spent}."),
        },
    }


def literal(text: str) -> str:
    """`text` as an annotation shows it: Prometheus expands annotations as Go templates, so
    an opening `{{` (a calendar may be named anything) is written as a template printing it."""
    return text.replace("{{", '{{ "{{" }}')


def _pair(slo: Slo, tier: Tier, mine: str) -> str:
    limit: Decimal = threshold(slo, tier)
    return (
        f"  (\n"
        f"    slo:sli_error:ratio_rate{duration(tier.long)}{mine} > {limit}\n"
        f"    and slo:sli_error:ratio_rate{duration(tier.short)}{mine} > {limit}\n"
        f"  )"
    )


def _calendar_alerts(calendars: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "alert": CALENDAR_ALERT,
            "expr": f"absent({CALENDAR_OPEN}{{calendar={quoted(name)}}})",
            "for": "10m",
            "labels": {"severity": "warning", "calendar": name},
            "annotations": {
                "summary": "The opening hours of an SLO calendar are not exported",
                "description": (
                    "support_calendar_open is absent for {{ $labels.calendar }}: the "
                    "objectives counted during its opening hours record nothing and "
                    "cannot alert."
                ),
            },
        }
        for name in calendars
    ]
