"""The objectives as sloth specifications (`support-monitor slo --format sloth`).

Written to sloth's `prometheus/v1` spec (https://github.com/slok/sloth,
`pkg/prometheus/api/v1/v1.go` and the examples of its README): `version`, `service`,
`slo_plugins`, and per objective `name`, `objective` (a percentage), `description`, `labels`,
`sli.events.error_query`/`total_query` (with sloth's `{{.window}}`) and `alerting` (`name`,
`annotations`, `page_alert`, `ticket_alert`). The spec has no window: sloth takes it from the
command line (`--default-slo-period`, with catalogues for 28d and 30d), so objectives are
written one file per window, each saying how to run it.

Sloth's default rule for the whole window averages the 5-minute ratios, which is NaN as soon
as one 5-minute slot has no event (most of a support inbox's); the spec turns that off with its
SLI plugin's `disableOptimized` (`internal/plugin/slo/core/sli_rules_v1/README.md`; a plugin of
the spec's chain at priority 0 runs after the defaults, `internal/app/generate/generate.go`),
so every window is a ratio of sums, as in our own rules.

Opening hours (`during`) fit in the queries themselves: the events are summed over 5-minute
steps taken only while the calendar was open for all of those 5 minutes (a subquery), as our
own rules sum gated samples (monitor.publish.slo.prometheus). Sloth evaluates that subquery
over each window at every evaluation, which costs Prometheus more than our recorded samples.
Sloth's alerts are not gated: they are silent while closed only in that no event is counted,
and a ticket opened by the day's events can still fire at night; route them with Alertmanager's
time intervals if that matters.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from monitor.config import Slo
from monitor.publish.slo import (
    CALENDAR_OPEN,
    TIERS,
    Output,
    can_fire,
    describe,
    duration,
    factor,
    impossible,
    labels_of,
    percent,
    quoted,
    sli_of,
)
from monitor.publish.slo.prometheus import ALERT, SEVERITY, SUMMARY, literal
from monitor.publish.slo.yamltext import comment, dump

SERVICE = "support-monitor"
GATE_STEP = "5m"


def specs(objectives: list[Slo], config_name: str) -> Output:
    by_window: dict[timedelta, list[Slo]] = defaultdict(list)
    for slo in objectives:
        by_window[slo.window].append(slo)
    files = []
    notes = [
        f"{line}: sloth writes it all the same" for slo in objectives for line in impossible(slo)
    ]
    several = len(by_window) > 1
    for window, members in sorted(by_window.items()):
        name = f"{SERVICE}.sloth{'-' + duration(window) if several else ''}.yml"
        files.append((name, _file(window, members, config_name, name)))
    return Output(files, notes)


def _file(window: timedelta, objectives: list[Slo], config_name: str, name: str) -> str:
    period = duration(window)
    catalogue = (
        "sloth has catalogues for 28d and 30d"
        if period in ("28d", "30d")
        else f"sloth has no catalogue for {period}: give it one with --slo-period-windows-path"
    )
    header = [
        f"Service-level objectives of Support Monitor as a sloth spec (prometheus/v1), written "
        f"by `support-monitor slo --format sloth` from {config_name}.",
        "Format: https://github.com/slok/sloth (pkg/prometheus/api/v1); rules with:",
        f"  sloth generate --default-slo-period={period} -i {name}",
        f"({catalogue}). Sloth's windows and factors are the SRE workbook's, as ours.",
    ]
    if any(slo.during for slo in objectives):
        header += [
            "Objectives with `during` count only events of the calendar's opening hours",
            "(5-minute steps taken while support_calendar_open was 1); their alerts are",
            "not silenced while closed.",
        ]
    spec = {
        "version": "prometheus/v1",
        "service": SERVICE,
        # Every window a ratio of sums of events: the optimised period rule (a mean of
        # 5-minute ratios) is NaN on a quiet inbox.
        "slo_plugins": {
            "chain": [{"id": "sloth.dev/core/sli_rules/v1", "config": {"disableOptimized": True}}]
        },
        "slos": [_slo(slo) for slo in objectives],
    }
    return comment(header) + dump(spec)


def _slo(slo: Slo) -> dict[str, Any]:
    sli = sli_of(slo)
    labels = labels_of(slo)
    del labels["slo"]  # sloth labels its series sloth_slo/sloth_id itself
    return {
        "name": slo.id,
        "objective": float(slo.objective * 100),
        "description": describe(slo),
        "labels": labels,
        "sli": {
            "events": {
                "error_query": _query(slo, sli.selector(bad=True)),
                "total_query": _query(slo, sli.selector()),
            }
        },
        "alerting": {
            "name": ALERT,
            "annotations": {"description": literal(describe(slo))},
            "page_alert": _alert(slo, "page"),
            "ticket_alert": _alert(slo, "ticket"),
        },
    }


def _alert(slo: Slo, severity: str) -> dict[str, Any]:
    # Sloth writes every tier; say so when one cannot fire at this objective.
    lost = [
        f"{duration(t.long)} ({factor(t, slo.window)}x)"
        for t in TIERS
        if t.severity == severity and not can_fire(slo, t)
    ]
    annotations = {"summary": SUMMARY[severity].format(id=slo.id)}
    if lost:
        annotations["note"] = (
            f"at {percent(slo.objective)}% the {' and '.join(lost)} window pair cannot fire"
        )
    return {"labels": {"severity": SEVERITY[severity]}, "annotations": annotations}


def _query(slo: Slo, selector: str) -> str:
    events = f"sum(max without (instance) (increase({selector}[{{{{.window}}}}])))"
    if slo.during is None:
        return events
    # Sloth renders the query as a Go template: a `{` of the calendar's name is written as
    # PromQL's \u007b, so that no name can open a template action.
    calendar = quoted(slo.during).replace("{", "\\u007b")
    gate = f"(min_over_time({CALENDAR_OPEN}{{calendar={calendar}}}[{GATE_STEP}]) == 1)"
    sample = f"sum(max without (instance) (increase({selector}[{GATE_STEP}])))"
    return f"sum_over_time(({sample} and on() {gate})[{{{{.window}}}}:{GATE_STEP}])"
