"""The Grafana dashboard: every PromQL expression parses (promtool checks them as recording
rules, Grafana's variables substituted) and uses only metrics the exporter defines, and the
panels the issue asks for carry their targets and thresholds."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import slos
from monitor.config_file import settings_from_mapping
from monitor.publish.exporter import exposition
from monitor.publish.slo.prometheus import rules
from monitor.store.database import make_engine, prepare

DASHBOARD = Path(__file__).resolve().parents[2] / "grafana" / "support-monitor.json"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

# What Grafana puts in place of its variables when it runs a query (multi-value variables
# become a regex alternation; "All" is the allValue `.*`).
GRAFANA_VALUES = {
    "__rate_interval": "2m",
    "__interval": "1m",
    "__range": "1d",
    "window": "1d",
    "source": ".*",
    "channel": ".*",
    "queue": ".*",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$")
PROMQL_WORDS = {
    # operators, modifiers and the functions the dashboard may use
    *"by without on ignoring group_left group_right and or unless bool offset".split(),
    *"sum min max avg count stddev stdvar topk bottomk quantile count_values".split(),
    *"rate irate increase delta idelta deriv histogram_quantile time clamp_min".split(),
    *"clamp_max abs ceil floor round vector scalar absent label_replace".split(),
    *"avg_over_time max_over_time min_over_time sum_over_time".split(),
}
# Label names the exporter uses, plus the target labels Prometheus adds.
LABELS = set(
    "source channel stage kind queue outcome threshold rule version le job instance".split()
)
LABELS |= {"slo", "sli", "verdict", "calendar"}  # the SLO rules' series (support-monitor slo)


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from panels(item.get("panels", []))


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard()["templating"]["list"]}


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every query of the dashboard: panel targets and variable selectors."""
    found = []
    for panel in panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for name, variable in variables().items():
        if variable["type"] == "query":
            match = LABEL_VALUES.match(variable_query(variable))
            assert match, f"variable {name}: expected label_values(selector, label)"
            found.append((f"variable {name}", match.group(1)))
    return found


def substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in GRAFANA_VALUES, f"unknown Grafana variable ${name} in {expr}"
        return GRAFANA_VALUES[name]

    return VARIABLE.sub(value, expr)


def identifiers(expr: str) -> set[str]:
    """Names in an expression outside strings, label matchers and numbers/durations."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    return set(re.findall(r"(?<![\w.])[A-Za-z_:][\w:]*", bare))


@pytest.fixture(scope="module")
def exported_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The sample names the exporter defines (from its exposition: every family is declared
    even with no data), e.g. `support_hold_seconds_bucket` and `support_calls_total`."""
    tmp = tmp_path_factory.mktemp("exporter")
    (tmp / "chat.jsonl").touch()
    settings = settings_from_mapping(
        {"sources": [{"name": "chat", "kind": "chat_jsonl", "path": "chat.jsonl"}]}, tmp
    )
    engine = make_engine(f"sqlite:///{tmp}/monitor.db", tmp)
    prepare(engine)
    text = exposition(engine, settings, lambda: NOW).decode()
    names = set()
    for name, kind in re.findall(r"^# TYPE (\w+) (\w+)", text, re.MULTILINE):
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        elif kind == "counter":
            names.add(f"{name.removesuffix('_total')}_total")
        else:
            names.add(name)
    return names | recorded_names(tmp)


def recorded_names(tmp: Path) -> set[str]:
    """The series the rules of `support-monitor slo` record (the dashboard's SLO row reads
    them), for objectives with and without opening hours."""
    settings = settings_from_mapping(
        {
            "calendars": {"office": {"timezone": "UTC", "hours": {"mon": ["09:00-17:00"]}}},
            "slo": {
                "email": {"objective": "95%"},
                "chat": {"objective": "95%", "during": "office"},
            },
        },
        tmp,
    )
    ((_, text),) = rules(slos(settings), "support-monitor.yaml").files
    return {
        rule["record"]
        for group in yaml.safe_load(text)["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def test_every_dashboard_expression_parses_in_promtool(promtool: str, tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{i}", "expr": substitute(expr)}
        for i, (_, expr) in enumerate(expressions())
    ]
    assert len(rules) > 20
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_uses_only_metrics_the_exporter_defines(exported_names: set[str]) -> None:
    assert "support_hold_seconds_bucket" in exported_names
    unknown = {
        where: sorted(identifiers(expr) - PROMQL_WORDS - LABELS - exported_names)
        for where, expr in expressions()
    }
    assert {where: names for where, names in unknown.items() if names} == {}


def test_the_identifier_scan_sees_metric_names_but_not_labels_or_strings() -> None:
    expr = 'sum by (queue) (rate(x_total{a="b:c", d=~"$e"}[5m])) / on (source) time()'
    assert identifiers(expr) == {"sum", "by", "queue", "rate", "x_total", "on", "source", "time"}


def test_every_query_uses_the_datasource_variable() -> None:
    assert variables()["datasource"]["type"] == "datasource"
    assert variables()["datasource"]["query"] == "prometheus"
    for panel in panels(dashboard()["panels"]):
        for item in [panel, *panel.get("targets", [])]:
            if panel["type"] != "row":
                assert item["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_source_queue_and_channel_come_from_label_values() -> None:
    for name, label in (("source", "source"), ("queue", "queue"), ("channel", "channel")):
        variable = variables()[name]
        match = LABEL_VALUES.match(variable_query(variable))
        assert match and match.group(2) == label
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"


def titled(words: str) -> list[dict[str, Any]]:
    found = [p for p in panels(dashboard()["panels"]) if words.lower() in p["title"].lower()]
    assert found, f"no panel titled with {words!r}"
    return found


def steps(panel: dict[str, Any]) -> list[float]:
    thresholds = panel["fieldConfig"]["defaults"].get("thresholds", {"steps": []})["steps"]
    return [step["value"] for step in thresholds if step["value"] is not None]


def dashed(panel: dict[str, Any]) -> bool:
    custom = panel["fieldConfig"]["defaults"]["custom"]
    return bool(custom["thresholdsStyle"]["mode"] in ("dashed", "line", "line+area"))


def test_response_percentiles_are_drawn_against_each_sources_own_target() -> None:
    """Not a fixed 86,400 line: each source's `reply_within`, as the monitor exports it, drawn
    dashed beside that source's median and p90."""
    (panel,) = titled("Response time by source")
    assert panel["type"] == "timeseries" and not dashed(panel) and 86400 not in steps(panel)
    by_legend = {t["legendFormat"]: t["expr"] for t in panel["targets"]}
    assert "histogram_quantile(0.5, sum by (source, le)" in by_legend["median {{source}}"]
    assert "histogram_quantile(0.9, sum by (source, le)" in by_legend["p90 {{source}}"]
    assert by_legend["target {{source}}"].startswith(
        'max by (source) (support_reply_target_seconds{source=~"$source"})'
    )
    (override,) = panel["fieldConfig"]["overrides"]
    assert override["matcher"] == {"id": "byRegexp", "options": "^target "}
    assert {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}} in override[
        "properties"
    ]


def test_no_panel_draws_a_fixed_24_hour_line() -> None:
    for panel in panels(dashboard()["panels"]):
        if panel["type"] == "timeseries":
            assert 86400 not in steps(panel), panel["title"]


def test_the_source_health_row_marks_sources_not_read() -> None:
    (panel,) = titled("Sources read now")
    (target,) = panel["targets"]
    assert "support_source_not_read" in target["expr"] and target["instant"]
    (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
    assert mapping["options"]["1"]["text"] == "NOT READ: figures incomplete"
    row = next(p for p in dashboard()["panels"] if p["title"] == "Sources and the monitor")
    assert panel["gridPos"]["y"] > row["gridPos"]["y"]


def test_hold_panels_draw_the_5_and_13_minute_lines() -> None:
    for title in ("Hold time of calls", "longest current wait"):
        (panel,) = titled(title)
        assert dashed(panel) and {300, 780} <= set(steps(panel))
    (distribution,) = titled("Hold-time distribution")
    assert distribution["targets"][0]["format"] == "heatmap"


def test_the_issue_panels_are_there() -> None:
    for words in (
        "Answered within target",
        "Open and breached inquiries",
        "Calls by outcome",
        "Callers waiting now",
        "Since last successful poll",
        "Failed polls and rejected records",
        "Share of calls over 5 and 13 minutes",
    ):
        titled(words)


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    items = list(panels(dashboard()["panels"]))
    assert len({p["id"] for p in items}) == len(items)
    cells: set[tuple[int, int]] = set()
    for panel in items:
        pos = panel["gridPos"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, panel["title"]
        assert pos["x"] + pos["w"] <= 24
        cells |= area


def test_the_slo_row_shows_objective_good_share_budget_and_burn_rate_per_objective() -> None:
    row = next(p for p in panels(dashboard()["panels"]) if p["title"].startswith("Service-level"))
    below = [p for p in panels(dashboard()["panels"]) if p["gridPos"]["y"] > row["gridPos"]["y"]]
    exprs = {p["title"]: p["targets"][0]["expr"] for p in below if p["type"] != "row"}
    assert exprs == {
        "SLO objective": 'max by (slo) (slo:objective:ratio{source=~"$source"})',
        "Good over the SLO window": 'max by (slo) (slo:period_sli:ratio{source=~"$source"})',
        "Error budget remaining": (
            'max by (slo) (slo:period_error_budget_remaining:ratio{source=~"$source"})'
        ),
        "Error budget burn rate (last hour)": (
            'max by (slo) (slo:current_burn_rate:ratio{source=~"$source"})'
        ),
    }
    (burn,) = titled("Error budget burn rate")
    assert dashed(burn) and {1, 13.44} <= set(steps(burn))
