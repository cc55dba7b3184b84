"""Extension points are abstract: a kind (or notifier) missing a method it must define cannot be
built, and the error names the method, instead of failing when a poll first calls it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors.base import Batch, Connector, ConnectorContext, Cursor
from connectors.chat.json_exports import ExportFileSettings, ExportFileSource
from connectors.file_source import FileSource
from monitor.config import Agents, SourceSettings

CONTEXT = ConnectorContext(Agents(), Path("."), ZoneInfo("UTC"))
SOURCE = SourceSettings(name="s", kind="k")


def test_a_connector_without_fetch_cannot_be_built() -> None:
    class Checked(Connector):
        kind = "checked"

        def check(self) -> str:
            return "ok"

    with pytest.raises(TypeError, match="fetch"):
        Checked(SOURCE, CONTEXT)  # type: ignore[abstract]


def test_a_file_source_without_its_path_cannot_be_built() -> None:
    class Pathless(FileSource):
        kind = "pathless"

        def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
            yield from ()

    with pytest.raises(TypeError, match="configured_path"):
        Pathless(SOURCE, CONTEXT)  # type: ignore[abstract]


def test_an_export_source_without_parse_record_cannot_be_built() -> None:
    class Unparsed(ExportFileSource):
        kind = "unparsed"

    settings = ExportFileSettings(name="s", kind="unparsed", path="x.json")
    with pytest.raises(TypeError, match="parse_record"):
        Unparsed(settings, CONTEXT)  # type: ignore[abstract]
