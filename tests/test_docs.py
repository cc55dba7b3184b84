"""Tested docs: the example config loads and shows every setting; README documents every
metric, command and connector kind. A new setting, metric or command fails here until it is
documented."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from connectors import CONNECTORS, connector_class
from monitor.cli import build_parser
from monitor.config import FileSettings, load_settings
from monitor.publish.exporter import exposition
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import poll_source

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"
README = ROOT / "README.md"

# SPEC §6 plus the metrics added by issues (keep in step with README's metrics table).
SPEC_METRICS = {
    "support_inquiries_total",
    "support_response_seconds",
    "support_response_business_seconds",
    "support_response_breaches_total",
    "support_open_inquiries",
    "support_open_inquiries_breached",
    "support_oldest_open_inquiry_age_seconds",
    "support_calls_total",
    "support_hold_seconds",
    "support_hold_breaches_total",
    "support_calls_waiting",
    "support_longest_wait_seconds",
    "support_source_last_success_timestamp_seconds",
    "support_source_poll_errors_total",
    "support_source_records_rejected_total",
    "support_chats_missed_total",
    "support_responses_clamped_total",
    "support_alerts_firing",
    "support_monitor_build_info",
}


def model_fields(model: type[BaseModel], path: str = "") -> Iterator[str]:
    """Every key path of a settings model, descending into nested models."""
    for name, field in model.model_fields.items():
        key = f"{path}.{name}" if path else name
        yield key
        for nested in _models_in(field.annotation):
            yield from model_fields(nested, key)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    elif get_origin(annotation) in (Union, UnionType, list, dict) or get_args(annotation):
        for arg in get_args(annotation):
            yield from _models_in(arg)


def documented_keys(text: str) -> set[str]:
    """Keys written in the example, active or in a commented example (`# key:` / `{key: …}`)."""
    return set(re.findall(r"(?:^|[\s{,#-])([a-z_][a-z0-9_]*):(?:\s|$)", text, re.MULTILINE))


def test_the_example_config_loads_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SMTP_PASSWORD", "SUPPORT_IMAP_PASSWORD", "ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(EXAMPLE)
    assert settings.sources, "the example must measure something"


def test_the_example_config_shows_every_setting() -> None:
    keys = documented_keys(EXAMPLE.read_text())
    wanted = {path.rsplit(".", 1)[-1] for path in model_fields(FileSettings)}
    wanted.discard("sources")  # a list of per-kind mappings, checked below
    for kind in CONNECTORS:
        wanted |= {p.rsplit(".", 1)[-1] for p in model_fields(connector_class(kind).settings)}
    assert sorted(wanted - keys) == []


def test_every_connector_kind_appears_in_the_example_and_readme() -> None:
    example, readme = EXAMPLE.read_text(), README.read_text()
    for kind in CONNECTORS:
        assert re.search(rf"kind: {kind}\b", example), f"{kind} missing from the example"
        assert f"`{kind}`" in readme, f"{kind} missing from README"


def test_every_command_is_documented_in_the_readme() -> None:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    readme = README.read_text()
    missing = [name for name in commands.choices if f"support-monitor {name}" not in readme]
    assert missing == []


def test_every_metric_is_exported_and_documented(tmp_path: Path) -> None:
    readme = README.read_text()
    assert sorted(m for m in SPEC_METRICS if f"`{m}`" not in readme) == []
    example = load_settings(EXAMPLE)
    settings = type(example)(file=example.file, sources=example.sources, base_dir=ROOT)
    engine = make_engine(f"sqlite:///{tmp_path}/docs.db", tmp_path)
    prepare(engine)
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    for source in settings.sources:
        poll_source(engine, settings, source, now=now)
    text = exposition(engine, settings, lambda: now).decode()
    exported = {
        f"{name.removesuffix('_total')}_total" if kind == "counter" else name
        for name, kind in re.findall(r"^# TYPE (\w+) (\w+)", text, re.MULTILINE)
    }
    undocumented = sorted(m for m in exported if f"`{m}`" not in readme)
    assert undocumented == []
    assert SPEC_METRICS <= exported
