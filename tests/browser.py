"""Headless Chromium (Debian `chromium`) for looking at the digest as a reader would.

Chromium's headless windows are at least 500 px wide, so a phone-width page is laid out inside
an iframe of the wanted width (its `srcdoc` shares the harness's origin, so the harness can read
the laid-out size) and the screenshot is cropped to it with Pillow. Every run has its own
throwaway profile and no network, background or sync services.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

MIN_WINDOW = 500  # Chromium will not make a narrower window
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@dataclass(frozen=True)
class Layout:
    width: int  # the page's scroll width: more than the frame's means it scrolls sideways
    height: int  # of the content, however tall the frame


def _harness(page: str, width: int, height: int) -> str:
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        '<body style="margin:0;background:#fff">'
        f'<iframe id="f" style="display:block;width:{width}px;height:{height}px;border:0" '
        f'srcdoc="{html.escape(page, quote=True)}"></iframe>'
        "<script>document.getElementById('f').onload = function () {"
        " var e = this.contentDocument.documentElement;"
        " var tall = Math.ceil(e.getBoundingClientRect().height);"
        " document.title = 'layout ' + e.scrollWidth + ' ' + tall; };</script>"
        "</body></html>"
    )


def _chromium(chromium: str, harness: str, window: tuple[int, int], *extra: str) -> str:
    with tempfile.TemporaryDirectory(prefix="digest-chromium-") as tmp:
        page = Path(tmp) / "harness.html"
        page.write_text(harness, encoding="utf-8")
        done = subprocess.run(
            [
                chromium,
                *FLAGS,
                f"--user-data-dir={tmp}/profile",
                f"--window-size={window[0]},{window[1]}",
                *extra,
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-500:]}")
    return done.stdout


def layout(chromium: str, page: str, width: int) -> Layout:
    """How `page` lays out in a viewport `width` CSS pixels wide."""
    out = _chromium(
        chromium, _harness(page, width, 800), (max(width, MIN_WINDOW), 800), "--dump-dom"
    )
    match = re.search(r"<title>layout (\d+) (\d+)</title>", out)
    if match is None:
        raise RuntimeError("chromium did not report the layout")
    return Layout(int(match.group(1)), int(match.group(2)))


def screenshot(chromium: str, page: str, width: int, png: Path) -> Layout:
    """A PNG of the whole of `page` at `width` CSS pixels; returns its layout."""
    size = layout(chromium, page, width)
    height = size.height + 16
    window = (max(width, MIN_WINDOW), height)
    with tempfile.TemporaryDirectory(prefix="digest-shot-") as tmp:
        raw = Path(tmp) / "raw.png"
        _chromium(chromium, _harness(page, width, height), window, f"--screenshot={raw}")
        with Image.open(raw) as image:
            image.crop((0, 0, width, size.height)).save(png)
    return size
