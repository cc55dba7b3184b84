"""`support-monitor slo` as a user meets it: the rules on stdout or in a folder, the other
formats, what a format cannot do said on stderr, no database needed, and exit 2 for a config
without objectives or with a wrong one."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main

CONFIG: dict[str, Any] = {
    "database": "sqlite:///never/created/monitor.db",
    "calendars": {"office": {"timezone": "Europe/London", "hours": {"mon": ["09:00-17:30"]}}},
    "sources": [
        {
            "name": "support-mail",
            "kind": "mbox",
            "path": "mail.mbox",
            "slo": {"objective": "95%", "window": "28d", "during": "office"},
        },
        {
            "name": "phones",
            "kind": "asterisk_queue_log",
            "path": "queue_log",
            "slo": [{"objective": "90%", "sli": "holds"}, {"objective": "95%", "sli": "callbacks"}],
        },
    ],
}


def write_config(tmp_path: Path, raw: dict[str, Any] = CONFIG) -> Path:
    path = tmp_path / "support-monitor.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_rules_are_printed_and_pass_promtool(
    tmp_path: Path, promtool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(write_config(tmp_path)), "slo"]) == 0
    out, err = capsys.readouterr()
    groups = [g["name"] for g in yaml.safe_load(out)["groups"]]
    assert groups == [
        "support-monitor.slo.support-mail-replies",
        "support-monitor.slo.phones-holds",
        "support-monitor.slo.phones-callbacks",
        "support-monitor.slo.calendars",
    ]
    # The 90% holds objective cannot page at 13.44 times its budget: said on stderr.
    assert err.splitlines() == [
        "slo: sources[1].slo[0]: the page tier 1h/5m (13.44x the budget) cannot fire at "
        "objective 90% (it needs an objective above 92.5595%): left out"
    ]
    (tmp_path / "rules.yml").write_text(out)
    result = subprocess.run(
        [promtool, "check", "rules", "--lint-fatal", "rules.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "never").exists()  # no database was opened


@pytest.mark.parametrize(
    ("kind", "files"),
    [
        ("prometheus", ["support-monitor.slo.rules.yml"]),
        ("sloth", ["support-monitor.sloth.yml"]),
        ("pyrra", ["phones-callbacks.yaml", "phones-holds.yaml", "support-mail-replies.yaml"]),
    ],
)
def test_output_writes_each_format_s_files_into_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, files: list[str]
) -> None:
    folder = tmp_path / "rules" / "slo"
    config = write_config(tmp_path)
    assert main(["--config", str(config), "slo", "--format", kind, "--output", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == files
    out, err = capsys.readouterr()
    assert sorted(out.splitlines()) == [f"wrote {folder / name}" for name in files]
    for name in files:
        assert yaml.safe_load((folder / name).read_text())
    if kind == "pyrra":
        assert "slo: sources[0].slo[0]: pyrra cannot count only the opening hours of office" in err


def test_a_config_without_objectives_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = {"sources": [{"name": "mail", "kind": "mbox", "path": "mail.mbox"}]}
    assert main(["--config", str(write_config(tmp_path, raw)), "slo"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "support-monitor: the config has no `slo:` objectives to write (see docs/slo.md)"
    ]


def test_an_objective_of_100_percent_or_an_unknown_calendar_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = {
        "sources": [
            {"name": "mail", "kind": "mbox", "path": "m", "slo": {"objective": "100%"}},
            {"name": "chat", "kind": "chat_jsonl", "path": "c", "slo": {"objective": "90%"}},
        ],
        "slo": {"email": {"objective": "95%", "during": "office", "sli": "holds"}},
    }
    assert main(["--config", str(write_config(tmp_path, raw)), "slo"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "config error: sources[0].slo[0].objective (source mail): expected an objective above 0% "
        "and below 100%, got 100%"
    ]
    raw["sources"] = raw["sources"][1:]
    assert main(["--config", str(write_config(tmp_path, raw)), "slo"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "config error: slo.email[0].sli: holds is not measured on channel email (use replies)",
        "config error: slo.email[0].during: no calendar named 'office'",
    ]


def test_an_output_folder_that_cannot_be_written_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "rules"
    taken.write_text("a file, not a folder")
    assert main(["--config", str(write_config(tmp_path)), "slo", "--output", str(taken)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        f"support-monitor: --output: cannot write {taken / 'support-monitor.slo.rules.yml'} "
        "(File exists)"
    )
