"""An installed monitor finds its templates: the wheel carries `templates/` as
`monitor/templates`, and the loader finds them there, away from the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_every_template_and_the_installed_loader_finds_them(
    tmp_path: Path,
) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        + ["--wheel-dir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(installed)
    templates = sorted(p.name for p in (ROOT / "templates").iterdir())
    assert templates and sorted(p.name for p in (installed / "monitor/templates").iterdir()) == (
        templates
    )
    probe = (
        "import monitor.publish.templating as t; "
        "print(t.template_dir()); print(t.environment().list_templates())"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(installed)},
        timeout=60,
    )
    where, listed = done.stdout.splitlines()
    assert where == str(installed / "monitor/templates")
    assert all(name in listed for name in templates)
