"""`make compat`: real exports read with the sources a user would write, one line per file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.compat import DEFAULT_CONFIG, load, main
from monitor.config_file import settings_from_mapping

T0 = 1795165200  # 2026-11-20 09:00 UTC
QUEUE_LOG = "\n".join(
    [
        f"{T0}|1.1|support|NONE|ENTERQUEUE||02079460001|1",
        f"{T0 + 20}|1.1|support|SIP/201|CONNECT|20|1.2|3",
        f"{T0 + 80}|1.1|support|SIP/201|COMPLETECALLER|20|60|1",
        f"{T0 + 90}|NONE|support|SIP/201|PAUSE|lunch",
    ]
)
# Two extensions calling each other (cdr_csv, 16 columns): nothing from a customer.
INTERNAL_CDR = (
    '"","201","202","from-internal","""A"" <201>","SIP/201-1","SIP/202-2","Dial","SIP/202",'
    '"2026-11-20 10:00:00","2026-11-20 10:00:05","2026-11-20 10:01:00",60,55,"ANSWERED",'
    '"DOCUMENTATION"'
)
ENTRIES = [
    {"file": "asterisk/queue_log", "expect": "measured", "source": {"kind": "asterisk_queue_log"}},
    {
        "file": "asterisk/Master.csv",
        "expect": "left out",
        "why": "calls between extensions",
        "source": {"kind": "asterisk_cdr", "timezone": "UTC"},
    },
    {"file": "notes/readme.json", "expect": "not loadable", "why": "documentation"},
]


def folder(tmp_path: Path, entries: list[dict[str, object]]) -> tuple[Path, Path]:
    samples = tmp_path / "samples"
    (samples / "asterisk").mkdir(parents=True)
    (samples / "notes").mkdir()
    (samples / "asterisk" / "queue_log").write_text(QUEUE_LOG + "\n")
    (samples / "asterisk" / "Master.csv").write_text(INTERNAL_CDR + "\n")
    (samples / "notes" / "readme.json").write_text("{not json")
    (samples / "SOURCES.md").write_text("where the files come from")
    config = tmp_path / "compat.yaml"
    config.write_text(yaml.safe_dump({"files": entries}))
    return samples, config


def test_each_file_gets_a_line_saying_what_was_read_rejected_and_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples, config = folder(tmp_path, ENTRIES)
    assert main([str(samples), "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "ok    asterisk/queue_log: asterisk_queue_log: 4 lines read, 0 rejected, 1 calls and 0 "
        "messages measured; left out on purpose: 1 agent, member and system lines"
    )
    assert lines[1] == (
        "ok    asterisk/Master.csv: asterisk_cdr: 1 line read, 0 rejected, 0 calls and 0 messages "
        "measured; left out on purpose: 1 internal calls (calls between extensions)"
    )
    assert lines[2] == "ok    notes/readme.json: not meant to load: documentation"
    assert lines[3].startswith("3 entries, 0 failed, ")


def test_a_file_that_should_load_and_does_not_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = [
        dict(ENTRIES[0], source={"kind": "asterisk_queue_log", "format": "csv"}),
        *ENTRIES[1:],
    ]
    samples, config = folder(tmp_path, entries)
    assert main([str(samples), "--config", str(config)]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("FAIL  asterisk/queue_log: asterisk_queue_log: 4 lines read, ")
    assert "poll failed: every record read was rejected" in first


def test_a_file_measured_where_nothing_should_be_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = [dict(ENTRIES[0], expect="left out", why="nothing"), *ENTRIES[1:]]
    samples, config = folder(tmp_path, entries)
    assert main([str(samples), "--config", str(config)]) == 1
    assert "expected every record left out (nothing)" in capsys.readouterr().out


def test_a_file_no_entry_names_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples, config = folder(tmp_path, ENTRIES)
    (samples / "asterisk" / "queue_log.1").write_text(QUEUE_LOG + "\n")
    assert main([str(samples), "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  asterisk/queue_log.1: no entry in compat.yaml says how to read it" in out


def test_an_entry_without_its_reason_is_a_usage_error(tmp_path: Path) -> None:
    entries = [{"file": "notes/readme.json", "expect": "not loadable"}]
    samples, config = folder(tmp_path, entries)
    assert main([str(samples), "--config", str(config)]) == 2


def test_the_shipped_entries_are_sources_a_config_accepts(tmp_path: Path) -> None:
    entries = load(DEFAULT_CONFIG)
    sources = [
        {**e.source, "name": f"s{n}", "path": f"samples/{e.file}"}
        for n, e in enumerate(entries)
        if e.source is not None
    ]
    assert len(settings_from_mapping({"sources": sources}, tmp_path).sources) == len(sources) > 8


# A queue_log table dump stating each call's wait itself (htime) on the row that ends it; the
# second call's end row says 9 s where its CONNECT (and the clock) say 8.
DUMP = "\n".join(
    [
        "uid,date_time,callid,queue_name,type,event,param1,param2,param3,entpos,expos,htime,ttime",
        f"1,{T0},2.1,IT,NONE,ENTERQUEUE,02079460001,,,1,0,0,0",
        f"2,{T0 + 30},2.1,IT,NONE,ABANDON,02079460001,,,1,1,30,0",
        f"3,{T0 + 100},3.1,IT,NONE,ENTERQUEUE,02079460002,,,1,0,0,0",
        f"4,{T0 + 108},3.1,IT,Agent/1127,CONNECT,,3.2,2,0,0,8,0",
        f"5,{T0 + 200},3.1,IT,Agent/1127,COMPLETEAGENT,02079460002,,,1,0,9,92",
    ]
)


def dump_entry(**agree: object) -> dict[str, object]:
    where = {"event": ["ABANDON", "COMPLETEAGENT", "COMPLETECALLER"]}
    return {
        "file": "asterisk/queue_log",
        "expect": "measured",
        "source": {"kind": "asterisk_queue_log", "format": "csv", "preset": "htime_ttime"},
        "agree": {"id": "callid", "wait": "htime", "where": where, **agree},
    }


def test_stored_waits_are_checked_against_the_files_own_column_call_by_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples, config = folder(tmp_path, [dump_entry(), *ENTRIES[1:]])
    (samples / "asterisk" / "queue_log").write_text(DUMP + "\n")
    assert main([str(samples), "--config", str(config)]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("FAIL  asterisk/queue_log: ")
    assert first.endswith(
        "waits equal htime for 1 of 2 calls; 1 disagree: 3.1 stored 8.0, the file 9"
    )


def test_a_call_where_the_file_contradicts_itself_is_counted_apart_when_the_entry_says_how(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = dump_entry(differs={"3.1": "CONNECT at +8 s, COMPLETEAGENT's holdtime 9"})
    samples, config = folder(tmp_path, [entry, *ENTRIES[1:]])
    (samples / "asterisk" / "queue_log").write_text(DUMP + "\n")
    assert main([str(samples), "--config", str(config)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("ok    asterisk/queue_log: ")
    assert first.endswith(
        "waits equal htime for 1 of 2 calls, 1 differ where the file contradicts itself"
    )
