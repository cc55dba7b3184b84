"""Polling a phone source into a real SQLite database and reading back what was stored."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import PollResult, poll_source
from monitor.store.tables import CALLS, INQUIRIES, MESSAGES, TALLIES

NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def open_store(folder: Path, sources: list[dict[str, Any]], **top: Any) -> tuple[Settings, Engine]:
    settings = settings_from_mapping({"sources": sources, **top}, folder)
    engine = make_engine(f"sqlite:///{folder / 'monitor.db'}", folder)
    prepare(engine)
    return settings, engine


def poll(
    engine: Engine, settings: Settings, name: str, now: datetime = NOW, *, in_child: bool = False
) -> PollResult:
    """A poll of source `name`, read here or (`in_child`, as the CLI's `poll`) in a child."""
    (source,) = [s for s in settings.sources if s.name == name]
    result = poll_source(engine, settings, source, now=now, clock=lambda: now, in_child=in_child)
    assert result.ok, result.error
    return result


def calls(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.external_id: r for r in conn.execute(select(CALLS))}


def messages(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.external_id: r for r in conn.execute(select(MESSAGES))}


def inquiries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(INQUIRIES).order_by(INQUIRIES.c.opened_at)))


def tally(engine: Engine, metric: str, **labels: str) -> float:
    """The sum of a counter's values over the series whose labels include `labels`."""
    wanted = {f"{k}={v}" for k, v in labels.items()}
    with engine.connect() as conn:
        rows = conn.execute(select(TALLIES).where(TALLIES.c.metric == metric, TALLIES.c.le == ""))
        return float(sum(r.value for r in rows if wanted <= set(r.labels.split(","))))


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back as stored; compare them as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
