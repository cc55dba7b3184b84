"""The digest's HTML as a reader sees it: drawn by headless Chromium at a laptop's and a phone's
width, with nothing that mail clients block (scripts, remote images, external styles).

Set SUPPORT_MONITOR_SCREENSHOTS=DIR to keep the PNGs for a look."""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from monitor.config_file import settings_from_mapping
from monitor.publish.digest.build import build_digest
from monitor.publish.digest.mail import Rendered, render
from monitor.store.ingest import poll_source
from tests.browser import screenshot
from tests.digest_day import (
    DAY,
    NOW,
    T9,
    build_day,
    quiet_store,
    raw_config,
    without_customer_text,
)
from tests.publish.digest.test_build import with_mailbox

BAR_OK, BAR_LET_DOWN = (0x7A, 0xA7, 0xD9), (0xE5, 0x53, 0x4B)
WIDTHS = {"laptop": 1280, "phone": 390}


@pytest.fixture
def day(tmp_path: Path, sqlite_url: str) -> Rendered:
    settings, engine = build_day(tmp_path, sqlite_url)
    return render(build_digest(engine, settings, DAY, NOW))


def keep(png: Path) -> None:
    folder = os.environ.get("SUPPORT_MONITOR_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(folder) / png.name)


def test_the_html_needs_nothing_a_mail_client_blocks(day: Rendered) -> None:
    page = without_customer_text(day.html).lower()
    assert "<script" not in page and "<img" not in page and "<link" not in page
    assert not re.search(r"\b(src|background)=|url\(|@import|https?://", page)


@pytest.mark.parametrize("name", WIDTHS)
def test_the_digest_reads_at_laptop_and_phone_width(
    day: Rendered, chromium: str, tmp_path: Path, name: str
) -> None:
    width = WIDTHS[name]
    png = tmp_path / f"digest-{name}.png"
    size = screenshot(chromium, day.html, width, png)
    keep(png)
    assert size.width <= width, f"the page scrolls sideways at {width} px: {size.width} px wide"
    with Image.open(png) as image:
        assert image.size == (width, size.height)
        counts = {color: n for n, color in image.convert("RGB").getcolors(1 << 24) or []}
    # The hour chart is drawn (table-cell bars, no images): both colours fill real area.
    assert counts.get(BAR_OK, 0) > 2000 and counts.get(BAR_LET_DOWN, 0) > 1000


def test_a_day_without_data_fits_a_phone(tmp_path: Path, sqlite_url: str, chromium: str) -> None:
    settings, engine = quiet_store(tmp_path, sqlite_url)
    page = render(build_digest(engine, settings, DAY, NOW)).html
    png = tmp_path / "digest-empty-phone.png"
    size = screenshot(chromium, page, WIDTHS["phone"], png)
    keep(png)
    assert size.width <= WIDTHS["phone"] and size.height < 600


@pytest.fixture
def troubled(tmp_path: Path, sqlite_url: str) -> Rendered:
    """A day with a mailbox that never connected, a link at the top, two phone queues and a
    quiet touchpoint: everything the digest adds to stay honest and short."""
    settings, engine = with_mailbox(tmp_path, sqlite_url)
    with (tmp_path / "queue_log").open("a") as log:
        log.write(f"{T9 + 7200}|2.1|sales|NONE|ENTERQUEUE||02079460009|1\n")
        log.write(f"{T9 + 7215}|2.1|sales|PJSIP/202|CONNECT|15|9.9|2\n")
        log.write(f"{T9 + 7300}|2.1|sales|PJSIP/202|COMPLETECALLER|15|85|1\n")
    raw = raw_config(sqlite_url)
    raw["sources"] = [*settings.file.sources, QUIET]
    raw["digest"] = {"link": "https://grafana.example.com/d/support-monitor?orgId=1"}
    (tmp_path / "quiet.jsonl").write_text("")
    settings = settings_from_mapping(raw, tmp_path)
    for name in ("phones", "quiet-chat"):
        assert poll_source(engine, settings, settings.source(name), now=NOW, clock=lambda: NOW).ok
    return render(build_digest(engine, settings, DAY, NOW + timedelta(minutes=10)))


QUIET = {"name": "quiet-chat", "kind": "chat_jsonl", "path": "quiet.jsonl", "stage": "decision"}
AMBER_BOX = (0xFF, 0xF8, 0xE5)


@pytest.mark.parametrize("name", WIDTHS)
def test_sources_not_read_lead_the_digest_at_phone_and_laptop_width(
    troubled: Rendered, chromium: str, tmp_path: Path, name: str
) -> None:
    width = WIDTHS[name]
    png = tmp_path / f"digest-not-read-{name}.png"
    size = screenshot(chromium, troubled.html, width, png)
    keep(png)
    assert size.width <= width, f"the page scrolls sideways at {width} px: {size.width} px wide"
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        # The amber box of sources not read is drawn, and near the top of the page.
        top = rgb.crop((0, 0, width, min(size.height, 400)))
        counts = {color: n for n, color in top.getcolors(1 << 24) or []}
    assert counts.get(AMBER_BOX, 0) > 5000
    text = troubled.text
    assert text.splitlines()[1].startswith("Live dashboard: https://grafana.example.com/")
    assert text.index("NOT READ - THESE FIGURES ARE INCOMPLETE") < text.index("AT A GLANCE")
    assert "quiet-chat (chat): no inquiries or calls" in text
    assert "Calls · sales" in text and "Calls · support" in text
    assert max(len(line) for line in text.splitlines()) < 120
