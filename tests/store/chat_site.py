"""A site of one chat log on a fresh database: what the backlog and verdict tests poll."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.store.database import make_engine, prepare


def chat_site(tmp_path: Path, database_url: str) -> tuple[Path, Settings, Engine]:
    """A chat log (reply target: 2 minutes) on a fresh database: its path, settings, engine."""
    path = tmp_path / "chat.jsonl"
    path.touch()
    settings = settings_from_mapping(
        {"sources": [{"name": "chat", "kind": "chat_jsonl", "path": "chat.jsonl"}]}, tmp_path
    )
    engine = make_engine(database_url, tmp_path)
    prepare(engine)
    return path, settings, engine
