"""Compiled templates are kept in Jinja2's bytecode cache (monitor.publish.templating): the next
process renders without compiling, and a damaged or unusable cache is passed by, never a
digest or an alert lost.

Each render runs in a child interpreter of its own, as each command does, with its temporary
directory (where the cache folder is) in the test's folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Renders the alert subject and counts Jinja2's compilations (the library's, counted by
# wrapping it: no code of ours is replaced).
CHILD = """
import json, jinja2
compiled = []
original = jinja2.Environment.compile
def counting(self, *args, **kwargs):
    compiled.append(1)
    return original(self, *args, **kwargs)
jinja2.Environment.compile = counting
from monitor.publish.templating import render
class Notice:
    summary = "queue sales: 3 callers waiting"
text = render("alert_subject.txt", label="FIRING", notice=Notice())
print(json.dumps({"text": text, "compiled": len(compiled)}))
"""


def _render(tmp: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _entries(tmp: Path) -> list[Path]:
    return sorted((tmp / f"_jinja2-cache-{os.getuid()}").glob("support-monitor-*.cache"))


def test_the_next_process_renders_a_template_without_compiling_it(tmp_path: Path) -> None:
    first = _render(tmp_path)
    assert first == {"text": "[FIRING] queue sales: 3 callers waiting\n", "compiled": 1}
    assert len(_entries(tmp_path)) == 1
    assert _render(tmp_path) == {**first, "compiled": 0}


def test_a_damaged_entry_is_compiled_again_and_rewritten(tmp_path: Path) -> None:
    first = _render(tmp_path)
    (entry,) = _entries(tmp_path)
    entry.write_bytes(entry.read_bytes()[:40])  # cut short, as by a full disk
    assert _render(tmp_path) == first  # compiled again
    assert _render(tmp_path) == {**first, "compiled": 0}  # and kept again


def test_a_cache_folder_that_is_not_safe_is_not_used(tmp_path: Path) -> None:
    # Jinja2 refuses a cache "folder" that is not a folder of this user's with mode 0700 (one
    # that others could write compiled code into): the templates are compiled as without one.
    (tmp_path / f"_jinja2-cache-{os.getuid()}").write_text("not a folder")
    first = _render(tmp_path)
    assert first == {"text": "[FIRING] queue sales: 3 callers waiting\n", "compiled": 1}
    assert _render(tmp_path) == first
    assert _entries(tmp_path) == []
