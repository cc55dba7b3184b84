"""Tested docs: the example config loads and shows every setting; README and the pages of docs/
document every metric, command and connector kind; README links every page, and no link of
theirs points at a file that is not there. A new setting, metric or command fails here until it
is documented."""

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
from monitor.config import FileSettings
from monitor.config_file import load_settings
from monitor.publish.exporter import exposition
from monitor.publish.notifiers import NOTIFIERS, notifier_class
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import poll_source

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").rglob("*.md"))


def documentation() -> str:
    """README and every page of docs/, as one text: where a reader looks for a name."""
    return "\n".join(path.read_text() for path in [README, *PAGES])


# The metrics every installation exports (keep in step with the table of docs/metrics.md).
DOCUMENTED_METRICS = {
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
    "support_digests_incomplete_total",
    "support_response_verdicts_total",
    "support_call_verdicts_total",
    "support_calendar_open",
}


def model_fields(model: type[BaseModel], path: str = "") -> Iterator[str]:
    """Every key path of a settings model, descending into nested models."""
    for name, field in model.model_fields.items():
        name = field.alias or name  # as the file spells it (`from`, not `read_from`)
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
    for kind in NOTIFIERS:
        wanted |= {p.rsplit(".", 1)[-1] for p in model_fields(notifier_class(kind).settings)}
    assert sorted(wanted - keys) == []


def is_documented_key(key: str, text: str) -> bool:
    """`key` is written as a setting in backticks: a key path holding it (`smtp.host`,
    `sources[].every`, `calendars.NAME.hours`) or a mapping that spells it (`{country: GB}`)."""
    name = re.escape(key)
    path = rf"`(?:[\w\[\]]+\.)*{name}(?:[.\[][\w.\[\]]*)?`"
    mapping = rf"`[^`\n]*[{{,]\s*{name}:[^`\n]*`"
    return re.search(f"{path}|{mapping}", text) is not None


def test_every_setting_is_documented() -> None:
    text = documentation()
    keys = set(model_fields(FileSettings))
    for kind in CONNECTORS:
        keys |= {f"{kind}: {p}" for p in model_fields(connector_class(kind).settings)}
    for kind in NOTIFIERS:
        keys |= {f"{kind}: {p}" for p in model_fields(notifier_class(kind).settings)}
    undocumented = [
        k for k in sorted(keys) if not is_documented_key(k.rsplit(".", 1)[-1].split(": ")[-1], text)
    ]
    assert undocumented == []


def test_every_connector_kind_appears_in_the_example_and_readme() -> None:
    example, readme = EXAMPLE.read_text(), README.read_text()
    connector_pages = "\n".join(p.read_text() for p in (ROOT / "docs" / "connectors").glob("*.md"))
    for kind in CONNECTORS:
        assert re.search(rf"kind: {kind}\b", example), f"{kind} missing from the example"
        assert f"`{kind}`" in readme, f"{kind} missing from README"
        assert f"`{kind}`" in connector_pages, f"{kind} missing from docs/connectors/"


def test_every_command_is_documented_in_the_readme() -> None:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    readme = documentation()
    missing = [name for name in commands.choices if f"support-monitor {name}" not in readme]
    assert missing == []


def test_every_metric_is_exported_and_documented(tmp_path: Path) -> None:
    readme = documentation()
    assert sorted(m for m in DOCUMENTED_METRICS if f"`{m}`" not in readme) == []
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
    assert DOCUMENTED_METRICS <= exported


def test_readme_links_every_page_of_docs() -> None:
    linked = set(re.findall(r"\]\((docs/[^)#\s]+\.md)(?:#[^)]*)?\)", README.read_text()))
    pages = {str(page.relative_to(ROOT)) for page in PAGES}
    assert pages, "docs/ has pages"
    assert sorted(pages - linked) == []


def test_every_relative_link_of_the_docs_points_at_a_file() -> None:
    broken = []
    for path in [README, *PAGES]:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL, or an anchor of the same page
            if not (path.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert broken == []
