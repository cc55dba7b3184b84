"""What a file source reads is bounded, whatever the files hold or are (hostile input).

Each reproduction runs the real command (`poll`, `check`, `import`) in a child process with a
deadline and a cap on its address space; the child's peak memory (wait4's rusage) is held
against a stated bound. On the code before these limits, each of these ran out of memory,
never ended, or failed the whole source for one bad file.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.connectors.chat.builders import SlackExport, at, message, zendesk_chat, zendesk_entry
from tests.limits import cli, run_child
from tests.servers import free_port

# The interpreter, SQLAlchemy, pydantic and the connectors come to about 60-70 MB; the bound
# leaves room for one record and a few batches, far below what any document here expands to.
POLL_MEMORY_MB = 160
GIGABYTE = 1 << 30


def write_config(folder: Path, source: dict[str, Any]) -> Path:
    config = folder / "support-monitor.yaml"
    body = {
        "timezone": "UTC",
        "database": "sqlite:///monitor.db",
        "sources": [source],
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},  # `check` tries to listen there
    }
    config.write_text(yaml.safe_dump(body))
    return config


def zip_with_bomb(path: Path, members: dict[str, bytes], bomb: str, size: int) -> Path:
    """A valid zip holding `members` as they are and `bomb`: `size` bytes of `{}, ` inside a
    JSON array, deflated to about a thousandth (written by hand: compressing a gigabyte
    through zipfile takes seconds; identical fully flushed deflate blocks repeat exactly)."""
    block = b"{}, " * (1 << 18)  # 1 MiB
    count = size // len(block)  # the data: "[", `count` blocks, "{}]"
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(b"[") + compressor.flush(zlib.Z_FULL_FLUSH)
    piece = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.compress(b"{}]") + compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(b"[")
    for _ in range(count):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(b"{}]", crc)
    total = 1 + count * len(block) + 3
    deflated = head + piece * count + tail
    entries: list[tuple[bytes, int, int, int, int, bytes]] = []
    with path.open("wb") as out:
        for name, data in [*members.items(), (bomb, b"")]:
            if name == bomb:
                method, stored, crc_value, plain = 8, deflated, crc, total
            else:
                method, stored, crc_value, plain = 0, data, zlib.crc32(data), len(data)
            encoded = name.encode()
            offset = out.tell()
            out.write(
                struct.pack(
                    "<IHHHHHIIIHH",
                    0x04034B50,
                    20,
                    0,
                    method,
                    0,
                    0,
                    crc_value,
                    len(stored),
                    plain,
                    len(encoded),
                    0,
                )
            )
            out.write(encoded + stored)
            entries.append(
                (encoded, method, crc_value, len(stored), plain, struct.pack("<I", offset))
            )
        start = out.tell()
        for encoded, method, crc_value, packed, plain, offset in entries:
            out.write(
                struct.pack(
                    "<IHHHHHHIIIHHHHHI",
                    0x02014B50,
                    20,
                    20,
                    0,
                    method,
                    0,
                    0,
                    crc_value,
                    packed,
                    plain,
                    len(encoded),
                    0,
                    0,
                    0,
                    0,
                    0,
                )
                + offset
                + encoded
            )
        end = out.tell()
        out.write(
            struct.pack(
                "<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), end - start, start, 0
            )
        )
    return path


def slack_source(path: str) -> dict[str, Any]:
    return {"name": "slack", "kind": "slack_export", "path": path, "channels": ["support"]}


def test_a_slack_zip_whose_users_json_expands_to_a_gigabyte_is_refused_unread(
    tmp_path: Path,
) -> None:
    export = SlackExport(tmp_path / "export").add("support", message("U09DANA", at(9)))
    export.write()
    day = (tmp_path / "export" / "support" / "2026-11-17.json").read_bytes()
    channels = (tmp_path / "export" / "channels.json").read_bytes()
    zipped = zip_with_bomb(
        tmp_path / "slack.zip",
        {"channels.json": channels, "support/2026-11-17.json": day},
        "users.json",
        GIGABYTE,
    )
    assert zipped.stat().st_size < 2_000_000
    config = write_config(tmp_path, slack_source("slack.zip"))
    for command in ("poll", "check"):
        done = run_child(cli("--config", str(config), command), deadline=60, memory_mb=1500)
        assert done.status == 1, done.stdout + done.stderr
        assert "no readable users.json" in done.stdout
        assert "slack.zip:users.json: expands to 1,073,741,828 bytes" in done.stdout
        assert done.peak_mb < POLL_MEMORY_MB, f"{command}: peak {done.peak_mb:.0f} MB"


def test_a_zipped_day_file_that_expands_a_thousandfold_is_a_located_rejection(
    tmp_path: Path,
) -> None:
    export = SlackExport(tmp_path / "export").add("support", message("U09DANA", at(9)))
    export.write()
    files = {
        name: (tmp_path / "export" / name).read_bytes()
        for name in ("users.json", "channels.json", "support/2026-11-17.json")
    }
    zip_with_bomb(tmp_path / "slack.zip", files, "support/2026-11-18.json", 150 * 1000 * 1000)
    config = write_config(tmp_path, slack_source("slack.zip"))
    done = run_child(cli("--config", str(config), "poll"), deadline=60, memory_mb=1500)
    assert done.status == 0, done.stdout + done.stderr
    assert "slack: 1 new messages, 0 calls, 1 rejected" in done.stdout
    assert "slack.zip:support/2026-11-18.json: day file not read: expands" in done.stderr
    assert done.peak_mb < POLL_MEMORY_MB, f"peak {done.peak_mb:.0f} MB"


def chat_document(tmp_path: Path, name: str, body: bytes) -> Path:
    (tmp_path / name).write_bytes(body)
    return write_config(tmp_path, {"name": "zendesk", "kind": "zendesk_chat", "path": "*.json"})


def small_chat(chat_id: str) -> bytes:
    history = [
        zendesk_entry("chat.msg", at(9), "visitor"),
        zendesk_entry("chat.msg", at(9.1), "360786799676"),
    ]
    return json.dumps(zendesk_chat(chat_id, history, ended=at(9.2))).encode()


def test_a_json_document_is_read_in_memory_bounded_by_one_record_not_the_document(
    tmp_path: Path,
) -> None:
    """40 MB of `{}` under a key beside `chats` (json.loads: some 13 million dicts, a GB)."""
    junk = b"[" + b"{}," * (40 * 1000 * 1000 // 3) + b"{}]"
    body = b'{"count": 1, "junk": ' + junk + b', "chats": [' + small_chat("A1") + b"]}"
    config = chat_document(tmp_path, "page.json", body)
    done = run_child(cli("--config", str(config), "poll"), deadline=60, memory_mb=900)
    assert done.status == 0, done.stdout + done.stderr
    assert "zendesk: 4 new messages, 0 calls, 0 rejected" in done.stdout
    assert done.peak_mb < POLL_MEMORY_MB, f"peak {done.peak_mb:.0f} MB"


def test_one_huge_record_is_rejected_alone_and_its_neighbours_are_read(tmp_path: Path) -> None:
    huge = b'{"id": "HUGE", "type": "chat", "history": [' + b"{}," * 10_000_000 + b"{}]}"
    body = b"[" + small_chat("A1") + b", " + huge + b", " + small_chat("A2") + b"]"
    config = chat_document(tmp_path, "chats.json", body)
    done = run_child(cli("--config", str(config), "poll"), deadline=60, memory_mb=900)
    assert done.status == 0, done.stdout + done.stderr
    assert "zendesk: 8 new messages, 0 calls, 1 rejected" in done.stdout
    assert "chats.json .[1]: record of more than 500,000 values" in done.stderr
    assert done.peak_mb < POLL_MEMORY_MB, f"peak {done.peak_mb:.0f} MB"


def test_fifos_and_devices_in_an_unpacked_export_are_rejections_not_hangs(
    tmp_path: Path,
) -> None:
    export = SlackExport(tmp_path / "export").add("support", message("U09DANA", at(9)))
    folder = export.write()
    os.mkfifo(folder / "support" / "2026-11-18.json")
    (folder / "support" / "2026-11-19.json").symlink_to("/dev/zero")
    config = write_config(tmp_path, slack_source("export"))
    done = run_child(cli("--config", str(config), "poll"), deadline=30)
    assert done.status == 0, done.stdout + done.stderr
    assert "slack: 1 new messages, 0 calls, 2 rejected" in done.stdout
    assert "2026-11-18.json: day file not read: not a regular file (a FIFO)" in done.stderr
    assert "2026-11-19.json: day file not read: not a regular file (a character device)" in (
        done.stderr
    )
    checked = run_child(cli("--config", str(config), "check"), deadline=30)
    assert checked.status == 1
    assert "FAIL  source slack (slack_export): export/support/2026-11-18.json: day file" in (
        checked.stdout
    )


def test_a_fifo_or_a_device_in_a_glob_is_a_rejection_and_the_other_files_are_read(
    tmp_path: Path,
) -> None:
    line = {"conversation": "c1", "at": "2026-11-20T09:00:00+00:00", "author_role": "customer"}
    (tmp_path / "a.jsonl").write_text(json.dumps(line) + "\n")
    os.mkfifo(tmp_path / "b.jsonl")
    (tmp_path / "c.jsonl").symlink_to("/dev/zero")
    (tmp_path / "d.jsonl").symlink_to("d.jsonl")  # a symlink loop: cannot be opened, even by root
    config = write_config(tmp_path, {"name": "chat", "kind": "chat_jsonl", "path": "*.jsonl"})
    done = run_child(cli("--config", str(config), "poll"), deadline=30)
    assert done.status == 0, done.stdout + done.stderr
    assert "chat: 1 new messages, 0 calls, 3 rejected" in done.stdout
    for name, reason in [
        ("b.jsonl", "not a regular file (a FIFO)"),
        ("c.jsonl", "not a regular file (a character device)"),
        ("d.jsonl", "Too many levels of symbolic links"),
    ]:
        assert f"rejected {name}: {reason}" in done.stderr
    checked = run_child(cli("--config", str(config), "check"), deadline=30)
    assert checked.status == 1
    assert f"FAIL  source chat (chat_jsonl): {tmp_path / 'b.jsonl'}: not a regular file" in (
        checked.stdout
    )
    imported = run_child(
        cli("--config", str(config), "import", "chat", str(tmp_path / "b.jsonl")), deadline=30
    )
    # Nothing but a rejection: an import of nothing usable fails, saying why.
    assert imported.status == 1, imported.stdout + imported.stderr
    assert (
        "chat: FAILED every record read was rejected (1): b.jsonl: not a regular file (a FIFO)"
        in imported.stdout
    )


def test_importing_a_fifo_as_a_slack_export_is_one_error_not_a_hang(tmp_path: Path) -> None:
    SlackExport(tmp_path / "export").write()
    config = write_config(tmp_path, slack_source("export"))
    os.mkfifo(tmp_path / "other.zip")
    done = run_child(
        cli("--config", str(config), "import", "slack", str(tmp_path / "other.zip")), deadline=30
    )
    assert done.status == 1
    assert "cannot read other.zip: not a regular file (a FIFO)" in done.stdout + done.stderr


def test_a_double_star_glob_never_follows_a_symlinked_folder(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "2026" / "11").mkdir(parents=True)
    line = {"conversation": "c1", "at": "2026-11-20T09:00:00+00:00", "author_role": "customer"}
    (logs / "2026" / "11" / "chat.jsonl").write_text(json.dumps(line) + "\n")
    (logs / "2026" / "up").symlink_to("..")
    (logs / "2026" / "11" / "up").symlink_to("../..")
    config = write_config(
        tmp_path, {"name": "chat", "kind": "chat_jsonl", "path": "logs/**/*.jsonl"}
    )
    done = run_child(cli("--config", str(config), "poll"), deadline=30)
    assert done.status == 0, done.stdout + done.stderr
    assert "chat: 1 new messages, 0 calls, 0 rejected" in done.stdout
    checked = run_child(cli("--config", str(config), "check"), deadline=30)
    assert "ok    source chat (chat_jsonl): 1 file," in checked.stdout


@pytest.mark.parametrize(
    "source",
    [
        {"kind": "call_csv", "columns": {"entered": "Start"}},
        {"kind": "answering_service_csv"},
        {"kind": "asterisk_cdr"},
        {"kind": "asterisk_queue_log"},
        {"kind": "mbox"},
        {"kind": "zendesk_chat"},
        {"kind": "livechat"},
    ],
)
def test_every_file_kind_rejects_a_fifo_by_name_instead_of_waiting_on_it(
    tmp_path: Path, source: dict[str, Any]
) -> None:
    os.mkfifo(tmp_path / "log.fifo")
    config = write_config(tmp_path, {"name": "src", "path": "*.fifo", **source})
    done = run_child(cli("--config", str(config), "poll"), deadline=30)
    # The source has nothing it can read: its poll fails (exit 1) naming the FIFO, at once.
    assert done.status == 1, done.stdout + done.stderr
    assert (
        "src: FAILED every record read was rejected (1): log.fifo: not a regular file (a FIFO)"
        in done.stdout
    )
    assert "rejected log.fifo: not a regular file (a FIFO)" in done.stderr
