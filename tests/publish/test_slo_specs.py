"""The objectives as sloth and pyrra specifications: they parse as YAML in those tools' documented
shapes and carry the config's objectives and windows; their queries are PromQL promtool
accepts; sloth's gated queries count no event of the closed hours; and pyrra, which cannot
count opening hours, says so."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import Settings, slos
from monitor.config_file import settings_from_mapping
from monitor.publish.slo import WINDOWS, Unwritable, duration, pyrra, sloth

CONFIG: dict[str, Any] = {
    "calendars": {"office": {"timezone": "UTC", "hours": {"mon": ["00:00-24:00"]}}},
    "sources": [
        {
            "name": "inbox",
            "kind": "mbox",
            "path": "inbox.mbox",
            "slo": {"objective": "95%", "during": "office"},
        },
        {
            "name": "Phones_1",
            "kind": "asterisk_queue_log",
            "path": "queue_log",
            "slo": [{"objective": "90%"}, {"objective": "99.5%", "sli": "callbacks"}],
        },
    ],
    "slo": {"chat": {"objective": "0.8", "window": "30d"}},
}
# sloth's name rule (pkg/common/validation/slo.go) and Kubernetes' for pyrra's objects.
SLOTH_NAME = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$")
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# The fields of sloth's prometheus/v1 spec (pkg/prometheus/api/v1/v1.go, v0.16.0), by place.
SLOTH_FIELDS = {
    "spec": {"version", "service", "labels", "slo_plugins", "slos"},
    "slo": {"name", "objective", "description", "labels", "plugins", "sli", "alerting"},
    "alerting": {"name", "labels", "annotations", "page_alert", "ticket_alert"},
    "alert": {"disable", "labels", "annotations"},
}


def settings(tmp_path: Path, raw: dict[str, Any] = CONFIG) -> Settings:
    return settings_from_mapping(raw, tmp_path)


def promtool_accepts(promtool: str, tmp_path: Path, exprs: list[str]) -> None:
    rules = [{"record": f"spec:query_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "specs", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sloth_specs_carry_the_objectives_one_file_per_window(tmp_path: Path) -> None:
    output = sloth.specs(slos(settings(tmp_path)), "support-monitor.yaml")
    files = dict(output.files)
    assert sorted(files) == ["support-monitor.sloth-28d.yml", "support-monitor.sloth-30d.yml"]
    found = {}
    for name, text in files.items():
        period = name.split("-")[-1].removesuffix(".yml")
        assert f"sloth generate --default-slo-period={period} -i {name}" in text
        spec = yaml.safe_load(text)
        assert (spec["version"], spec["service"]) == ("prometheus/v1", "support-monitor")
        assert spec["slo_plugins"]["chain"] == [
            {"id": "sloth.dev/core/sli_rules/v1", "config": {"disableOptimized": True}}
        ]
        assert set(spec) <= SLOTH_FIELDS["spec"]
        for slo in spec["slos"]:
            assert SLOTH_NAME.match(slo["name"])
            assert set(slo) <= SLOTH_FIELDS["slo"]
            assert set(slo["alerting"]) <= SLOTH_FIELDS["alerting"]
            for severity in ("page_alert", "ticket_alert"):
                assert set(slo["alerting"][severity]) <= SLOTH_FIELDS["alert"]
            assert all(LABEL_NAME.match(k) and isinstance(v, str) for k, v in slo["labels"].items())
            assert 0 < slo["objective"] <= 100  # sloth's bounds (pkg/common/validation/slo.go)
            events = slo["sli"]["events"]
            assert "{{.window}}" in events["error_query"] and "{{.window}}" in events["total_query"]
            assert events["error_query"] != events["total_query"]
            assert slo["alerting"]["name"] == "SupportSLOBudgetBurn"
            assert slo["alerting"]["page_alert"]["labels"] == {"severity": "critical"}
            assert slo["alerting"]["ticket_alert"]["labels"] == {"severity": "warning"}
            found[slo["name"]] = (slo["objective"], period)
    assert found == {
        "inbox-replies": (95.0, "28d"),
        "Phones_1-holds": (90.0, "28d"),
        "Phones_1-callbacks": (99.5, "28d"),
        "chat-replies": (80.0, "30d"),
    }
    # At 90% and 80%, sloth's 1h page cannot fire: it writes it anyway, and the spec says so.
    assert any("Phones_1-holds" in n or "sources[1].slo[0]" in n for n in output.notes)
    assert "cannot fire" in files["support-monitor.sloth-28d.yml"]


def test_sloth_queries_are_promql_for_every_window(promtool: str, tmp_path: Path) -> None:
    output = sloth.specs(slos(settings(tmp_path)), "support-monitor.yaml")
    exprs = []
    for _, text in output.files:
        for slo in yaml.safe_load(text)["slos"]:
            events = slo["sli"]["events"]
            for window in [*WINDOWS, "28d", "30d"]:
                w = window if isinstance(window, str) else duration(window)
                # What sloth writes for an events SLI (internal/plugin/slo/core/sli_rules_v1).
                error, total = (events[k].replace("{{.window}}", w) for k in events)
                exprs.append(f"({error})\n/\n(({total}) > 0)")
    promtool_accepts(promtool, tmp_path, exprs)


def test_sloth_s_gated_queries_count_no_event_of_the_closed_hours(
    promtool: str, tmp_path: Path
) -> None:
    """The office is open for 5 hours, closed for 2, open again; nine late replies a minute in
    the last closed half hour: over the 6 hours to 7h30m, sloth's ratio for the inbox is 0."""
    (inbox,) = [slo for slo in slos(settings(tmp_path)) if slo.id == "inbox-replies"]
    ((_, text),) = sloth.specs([inbox], "support-monitor.yaml").files
    events = yaml.safe_load(text)["slos"][0]["sli"]["events"]
    error, total = (events[k].replace("{{.window}}", "6h") for k in events)
    (tmp_path / "rules.yml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "sloth",
                        "rules": [{"record": "sloth:ratio6h", "expr": f"({error}) / ({total})"}],
                    }
                ]
            }
        )
    )
    base = 'job="support-monitor",instance="a",source="inbox",channel="email",stage="experience"'
    unit = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'support_calendar_open{job="support-monitor",calendar="office"}',
                        "values": "1x300 0x119 1x180",
                    },
                    {
                        "series": f'support_response_verdicts_total{{{base},verdict="within"}}',
                        "values": "0+1x600",
                    },
                    {
                        "series": f'support_response_verdicts_total{{{base},verdict="late"}}',
                        "values": "0x390 9+9x29 270x180",
                    },
                ],
                "promql_expr_test": [
                    {
                        "expr": "sloth:ratio6h",
                        "eval_time": "7h30m",
                        "exp_samples": [{"labels": "sloth:ratio6h", "value": 0}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "unit.yml").write_text(yaml.safe_dump(unit))
    result = subprocess.run(
        [promtool, "test", "rules", "unit.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pyrra_objects_carry_the_objectives_one_per_file(promtool: str, tmp_path: Path) -> None:
    output = pyrra.specs(slos(settings(tmp_path)), "support-monitor.yaml")
    objects = {name: yaml.safe_load(text) for name, text in output.files}
    assert sorted(objects) == [
        "chat-replies.yaml",
        "inbox-replies.yaml",
        "phones-1-callbacks.yaml",
        "phones-1-holds.yaml",
    ]
    selectors = []
    found = {}
    for name, obj in objects.items():
        assert (obj["apiVersion"], obj["kind"]) == ("pyrra.dev/v1alpha1", "ServiceLevelObjective")
        assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
        assert set(obj["spec"]) == {"description", "target", "window", "indicator"}
        assert K8S_NAME.match(obj["metadata"]["name"]) and name == f"{obj['metadata']['name']}.yaml"
        ratio = obj["spec"]["indicator"]["ratio"]
        assert set(ratio) == {"errors", "total"}
        selectors += [ratio["errors"]["metric"], ratio["total"]["metric"]]
        found[obj["metadata"]["name"]] = (obj["spec"]["target"], obj["spec"]["window"])
    assert found == {
        "inbox-replies": ("95", "28d"),
        "phones-1-holds": ("90", "28d"),
        "phones-1-callbacks": ("99.5", "28d"),
        "chat-replies": ("80", "30d"),
    }
    # Pyrra wants plain vector selectors (its validate(): "must be a vector selector").
    assert all(re.fullmatch(r"support_\w+_total\{[^{}]*\}", s) for s in selectors)
    promtool_accepts(promtool, tmp_path, selectors)


def test_pyrra_says_it_cannot_count_only_opening_hours(tmp_path: Path) -> None:
    output = pyrra.specs(slos(settings(tmp_path)), "support-monitor.yaml")
    text = dict(output.files)["inbox-replies.yaml"]
    assert "# pyrra cannot count only the opening hours of office" in text
    assert "cannot count only opening hours" in yaml.safe_load(text)["spec"]["description"]
    assert output.notes == [
        "sources[0].slo[0]: pyrra cannot count only the opening hours of office: "
        "inbox-replies counts every hour"
    ]
    others = [t for n, t in output.files if n != "inbox-replies.yaml"]
    assert not any("opening hours" in t for t in others)


def test_two_objectives_with_one_pyrra_name_are_refused(tmp_path: Path) -> None:
    raw = {
        "sources": [
            {"name": "Desk", "kind": "mbox", "path": "a", "slo": {"objective": "95%"}},
            {"name": "desk", "kind": "mbox", "path": "b", "slo": {"objective": "95%"}},
        ]
    }
    with pytest.raises(Unwritable, match="pyrra name 'desk-replies'"):
        pyrra.specs(slos(settings(tmp_path, raw)), "support-monitor.yaml")
