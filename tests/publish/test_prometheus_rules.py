"""The shipped Prometheus files: rules load and their unit tests pass in promtool, every alert
is exercised by rules.test.yml, and the example scrape and Alertmanager configs agree with the
rules."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

PROMETHEUS = Path(__file__).resolve().parents[2] / "prometheus"


def load(name: str) -> Any:
    return yaml.safe_load((PROMETHEUS / name).read_text())


def alert_names() -> set[str]:
    return {
        rule["alert"]
        for group in load("rules.yml")["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def promtool_run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )


def test_the_rules_pass_promtool_check_rules(promtool: str) -> None:
    result = promtool_run(promtool, "check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rule_unit_tests_pass_in_promtool(promtool: str) -> None:
    result = promtool_run(promtool, "test", "rules", "rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_example_scrape_config_passes_promtool_check_config(promtool: str) -> None:
    result = promtool_run(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_both_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load("rules.test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert sorted(alert_names() - firing) == []
    assert sorted(alert_names() - quiet) == []


def test_the_alerts_watch_the_job_of_the_example_scrape_config() -> None:
    jobs = {job["job_name"] for job in load("prometheus.yml")["scrape_configs"]}
    exprs = [rule["expr"] for group in load("rules.yml")["groups"] for rule in group["rules"]]
    watched = {part.split('"')[1] for expr in exprs for part in expr.split("job=")[1:]}
    assert watched and watched <= jobs


def test_the_alertmanager_example_names_only_real_alerts_and_receivers() -> None:
    config = load("alertmanager.yml")
    receivers = {receiver["name"] for receiver in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert {route["receiver"] for route in routes} <= receivers
    alerts = alert_names()
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            label, op, value = matcher.split(maxsplit=2)
            assert label == "alertname"
            pattern = value.strip('"')
            if op == "=":
                assert pattern in alerts, pattern
            else:
                assert any(re.fullmatch(pattern, name) for name in alerts), pattern


def test_every_recording_rule_is_used_by_an_alert() -> None:
    """A recording rule nobody reads costs Prometheus work and misleads: the dashboard reads
    the metrics over its own window, so the recordings are only those the alerts use."""
    rules = [rule for group in load("rules.yml")["groups"] for rule in group["rules"]]
    recorded = {rule["record"] for rule in rules if "record" in rule}
    used = " ".join(rule["expr"] for rule in rules if "alert" in rule)
    dashboard = (PROMETHEUS.parent / "grafana" / "support-monitor.json").read_text()
    assert recorded and sorted(r for r in recorded if r not in used and r not in dashboard) == []


def test_every_recording_rule_is_tested_in_promtool() -> None:
    tested = {
        check["expr"].split("{")[0]
        for case in load("rules.test.yml")["tests"]
        for check in case.get("promql_expr_test", [])
    }
    recorded = {
        rule["record"]
        for group in load("rules.yml")["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    assert sorted(recorded - tested) == []
