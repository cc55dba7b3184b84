"""The status page as people see it: drawn by headless Chromium at a phone's and a desktop's
width, on a wall screen, in light and dark. The waiting caller's badge (red) and the overdue
inquiry's (amber) must be drawn, above today's figures, without the page scrolling sideways.

Set SUPPORT_MONITOR_SCREENSHOTS=DIR to keep the PNGs for a look."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from monitor.publish.status_page import StatusPage, build_status
from monitor.publish.status_routes import render_status
from tests.browser import screenshot
from tests.status_day import NOW, build_moment

CALLER_RED = (0xB4, 0x23, 0x18)  # --caller: the waiting caller's badge and edge
LATE_AMBER = (0xB5, 0x47, 0x08)  # --late: an inquiry past its target
WIDTHS = {"phone": 390, "desktop": 1280}


@pytest.fixture
def page(tmp_path: Path, sqlite_url: str) -> StatusPage:
    settings, engine = build_moment(tmp_path, sqlite_url)
    return build_status(engine, settings, NOW)


def keep(png: Path) -> None:
    folder = os.environ.get("SUPPORT_MONITOR_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(folder) / png.name)


def colour_rows(png: Path, colour: tuple[int, int, int]) -> tuple[int, int | None]:
    """How many pixels have `colour`, and the first row holding one."""
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        width, height = rgb.size
        pixels = rgb.load()
        assert pixels is not None
        count, first = 0, None
        for y in range(height):
            for x in range(0, width, 2):  # every other column: plenty for areas of colour
                if pixels[x, y] == colour:
                    count += 1
                    first = y if first is None else first
    return count, first


@pytest.mark.parametrize(
    ("name", "wall"), [("phone", False), ("desktop", False), ("desktop", True)]
)
def test_the_waiting_caller_and_the_overdue_inquiry_are_seen_first(
    page: StatusPage, chromium: str, tmp_path: Path, name: str, wall: bool
) -> None:
    width = WIDTHS[name]
    png = tmp_path / f"status-{name}{'-wall' if wall else ''}.png"
    size = screenshot(chromium, render_status(replace(page, wall=wall)), width, png)
    keep(png)
    assert size.width <= width, f"the page scrolls sideways at {width} px: {size.width} px"
    red, red_top = colour_rows(png, CALLER_RED)
    amber, amber_top = colour_rows(png, LATE_AMBER)
    assert red > 300 and amber > 600, (red, amber)  # the badges and edges are drawn
    assert red_top is not None and amber_top is not None
    # the caller first (beside them on a wide wall screen), in the top half of the page
    assert red_top <= amber_top < size.height / 2


def test_a_dark_screen_gets_the_dark_page(page: StatusPage, chromium: str, tmp_path: Path) -> None:
    """With the system in dark mode (prefers-color-scheme: dark) the background is dark and the
    alarms keep their colours."""
    html = render_status(page).replace('content="light dark"', 'content="dark"')
    html = html.replace("@media (prefers-color-scheme:dark){", "@media all{")
    png = tmp_path / "status-dark.png"
    screenshot(chromium, html, WIDTHS["phone"], png)
    keep(png)
    with Image.open(png) as image:
        corner = image.convert("RGB").getpixel((2, 2))
    assert isinstance(corner, tuple) and sum(corner[:3]) < 3 * 60, corner
    assert colour_rows(png, CALLER_RED)[0] > 300
