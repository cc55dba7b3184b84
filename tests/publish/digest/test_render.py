"""The digest's HTML as a reader sees it: drawn by headless Chromium at a laptop's and a phone's
width, with nothing that mail clients block (scripts, remote images, external styles).

Set SUPPORT_MONITOR_SCREENSHOTS=DIR to keep the PNGs for a look."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from monitor.publish.digest.build import build_digest
from monitor.publish.digest.mail import Rendered, render
from tests.browser import screenshot
from tests.digest_day import DAY, NOW, build_day, empty_store, without_customer_text

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
    settings, engine = empty_store(tmp_path, sqlite_url)
    page = render(build_digest(engine, settings, DAY, NOW)).html
    png = tmp_path / "digest-empty-phone.png"
    size = screenshot(chromium, page, WIDTHS["phone"], png)
    keep(png)
    assert size.width <= WIDTHS["phone"] and size.height < 600
