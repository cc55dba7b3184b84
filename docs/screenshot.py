"""Draw docs/digest.png: the daily digest of the bundled demo, as a mail client would show it.

    make screenshot
    .venv/bin/python docs/screenshot.py [--out docs/digest.png] [--width 720] [--height 1200]

Polls every source of config.example.yaml (the demo data in examples/) into a throwaway SQLite
database as if it were 08:00 on Friday 20 November 2026, builds the digest of Thursday 19
November with the code `support-monitor digest --preview` runs, and photographs its HTML with
headless Chromium through the driver the test suite uses (tests/browser.py: a throwaway
profile, no network), keeping its top `--height` pixels (the day at a glance, what needs
attention and the oldest unanswered inquiries: what fits a README; 0 keeps the whole page,
about 5,000 pixels). `now` is pinned, so the picture changes only when the digest, its
template or the demo data do; a rerun on the same code redraws the same digest.

Needs Chromium (Debian `chromium`) and the test extras (Pillow): `make screenshot` installs
them into .venv first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: `tests.browser` is found from the checkout

from monitor.config_file import settings_from_mapping  # noqa: E402
from monitor.publish.digest.build import build_digest  # noqa: E402
from monitor.publish.digest.mail import render  # noqa: E402
from monitor.store.database import make_engine, prepare  # noqa: E402
from monitor.store.ingest import poll_source  # noqa: E402
from tests.browser import find_chromium, screenshot  # noqa: E402

DAY = date(2026, 11, 19)  # the demo's busiest day: every source has data on it
NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)  # when `run` would send that day's digest
WIDTH = 720  # CSS pixels: the digest is at most 640 wide, with the mail client's margin
HEIGHT = 1200  # the top of the digest


def demo_html(folder: Path) -> str:
    """The HTML of the demo's digest of DAY, built from a fresh database in `folder`."""
    raw = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    raw["database"] = f"sqlite:///{folder / 'demo.db'}"
    settings = settings_from_mapping(raw, ROOT)
    engine = make_engine(raw["database"], folder)
    prepare(engine)
    for source in settings.sources:
        if source.enabled:
            poll_source(engine, settings, source, now=NOW)
    top = settings.file.digest.top if settings.file.digest is not None else 10
    html = render(build_digest(engine, settings, DAY, NOW, top)).html
    engine.dispose()
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "digest.png")
    parser.add_argument("--width", type=int, default=WIDTH, help="CSS pixels (default 720)")
    parser.add_argument("--height", type=int, default=HEIGHT, help="keep the top (0: all)")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("screenshot: no Chromium found (install the `chromium` package)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="digest-demo-") as tmp:
        html = demo_html(Path(tmp))
    size = screenshot(chromium, html, args.width, args.out)
    height = min(args.height or size.height, size.height)
    with Image.open(args.out) as image:
        image.crop((0, 0, args.width, height)).save(args.out, optimize=True)
    print(f"screenshot: {args.out} ({args.width} x {height} px, digest of {DAY})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
