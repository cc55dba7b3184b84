"""The line tailer: complete lines, locations, rotation, truncation and resumable cursors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from connectors.files import Chunk, Line, read_all, tail


def write(path: Path, data: bytes, *, mtime: int | None = None) -> Path:
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def poll(paths: list[Path], cursor: dict[str, object] | None, **options: int) -> list[Chunk]:
    return list(tail(paths, cursor, **options))


def lines_of(chunks: list[Chunk]) -> list[Line]:
    return [line for chunk in chunks for line in chunk.lines]


def last_cursor(chunks: list[Chunk]) -> dict[str, object]:
    assert chunks, "expected at least one chunk"
    return chunks[-1].cursor


def test_new_file_is_read_from_the_start_with_line_numbers(tmp_path: Path) -> None:
    log = write(tmp_path / "chat.log", b"one\ntwo\nthree\n")
    chunks = poll([log], None)
    assert lines_of(chunks) == [
        Line("chat.log:1", b"one"),
        Line("chat.log:2", b"two"),
        Line("chat.log:3", b"three"),
    ]
    (entry,) = last_cursor(chunks)["files"].values()  # type: ignore[attr-defined]
    assert entry["offset"] == 14 and entry["line"] == 3 and entry["path"] == str(log)


def test_next_poll_reads_only_what_was_appended_and_keeps_counting_lines(tmp_path: Path) -> None:
    log = write(tmp_path / "chat.log", b"one\ntwo\n")
    cursor = last_cursor(poll([log], None))
    append(log, b"three\n")
    assert lines_of(poll([log], cursor)) == [Line("chat.log:3", b"three")]


def test_unchanged_file_yields_nothing(tmp_path: Path) -> None:
    log = write(tmp_path / "chat.log", b"one\n")
    cursor = last_cursor(poll([log], None))
    assert poll([log], cursor) == []


def test_partial_last_line_waits_for_the_next_poll(tmp_path: Path) -> None:
    log = write(tmp_path / "chat.log", b"one\ntw")
    first = poll([log], None)
    assert lines_of(first) == [Line("chat.log:1", b"one")]
    append(log, b"o\n")
    assert lines_of(poll([log], last_cursor(first))) == [Line("chat.log:2", b"two")]


def test_crlf_line_endings_are_stripped_and_blank_lines_kept(tmp_path: Path) -> None:
    log = write(tmp_path / "chat.log", b"one\r\n\ntwo\n")
    assert [line.data for line in lines_of(poll([log], None))] == [b"one", b"", b"two"]


def test_rotated_file_is_finished_before_the_new_one(tmp_path: Path) -> None:
    log = write(tmp_path / "queue_log", b"a1\na2\n")
    cursor = last_cursor(poll([log], None))
    append(log, b"a3\n")  # written just before rotation, not yet read
    log.rename(tmp_path / "queue_log.1")
    os.utime(tmp_path / "queue_log.1", (1_000, 1_000))
    write(tmp_path / "queue_log", b"b1\nb2\n", mtime=2_000)
    matched = sorted(tmp_path.glob("queue_log*"))  # the new file sorts first by name
    assert lines_of(poll(matched, cursor)) == [
        Line("queue_log.1:3", b"a3"),
        Line("queue_log:1", b"b1"),
        Line("queue_log:2", b"b2"),
    ]


def test_rotated_file_no_longer_matched_is_forgotten(tmp_path: Path) -> None:
    log = write(tmp_path / "queue_log", b"a1\n")
    cursor = last_cursor(poll([log], None))
    log.rename(tmp_path / "queue_log.1")
    write(tmp_path / "queue_log", b"b1\n")
    chunks = poll([tmp_path / "queue_log"], cursor)
    assert lines_of(chunks) == [Line("queue_log:1", b"b1")]
    (entry,) = last_cursor(chunks)["files"].values()  # type: ignore[attr-defined]
    assert entry["path"] == str(tmp_path / "queue_log")


def test_copytruncate_restarts_from_the_beginning(tmp_path: Path) -> None:
    log = write(tmp_path / "queue_log", b"old line 1\nold line 2\n")
    cursor = last_cursor(poll([log], None))
    log.write_bytes(b"new\n")  # truncated in place, same inode, now shorter than the offset
    assert lines_of(poll([log], cursor)) == [Line("queue_log:1", b"new")]


def test_file_rewritten_with_a_different_head_restarts_even_when_longer(tmp_path: Path) -> None:
    log = write(tmp_path / "queue_log", b"old 1\n")
    cursor = last_cursor(poll([log], None))
    log.write_bytes(b"fresh 1\nfresh 2\n")  # same inode, longer than the stored offset
    assert [line.location for line in lines_of(poll([log], cursor))] == [
        "queue_log:1",
        "queue_log:2",
    ]


def test_small_file_that_grows_past_the_head_size_is_not_mistaken_for_a_new_one(
    tmp_path: Path,
) -> None:
    log = write(tmp_path / "chat.log", b"short\n")
    cursor = last_cursor(poll([log], None))
    append(log, b"x" * 300 + b"\n")
    cursor = last_cursor(poll([log], cursor))
    append(log, b"last\n")
    assert lines_of(poll([log], cursor)) == [Line("chat.log:3", b"last")]


def test_huge_line_is_skipped_and_the_rest_is_read(tmp_path: Path) -> None:
    huge = b"y" * (3 * 1024 * 1024)  # longer than the default 1 MiB limit and many read blocks
    log = write(tmp_path / "chat.log", b"before\n" + huge + b"\nafter\n")
    chunks = poll([log], None)
    assert lines_of(chunks) == [Line("chat.log:1", b"before"), Line("chat.log:3", b"after")]
    (rejection,) = [r for chunk in chunks for r in chunk.rejected]
    assert rejection.location == "chat.log:2"
    assert "longer than the limit" in rejection.reason


def test_huge_partial_line_waits_for_its_end(tmp_path: Path) -> None:
    log = write(tmp_path / "chat.log", b"ok\n" + b"z" * 100)
    first = poll([log], None, max_line_bytes=10)
    assert lines_of(first) == [Line("chat.log:1", b"ok")]
    assert not [r for chunk in first for r in chunk.rejected]
    append(log, b"z\nnext\n")
    second = poll([log], last_cursor(first), max_line_bytes=10)
    assert lines_of(second) == [Line("chat.log:3", b"next")]
    assert [r.location for chunk in second for r in chunk.rejected] == ["chat.log:2"]


def test_each_chunk_holds_at_most_max_lines_and_its_cursor_covers_exactly_them(
    tmp_path: Path,
) -> None:
    first = write(tmp_path / "a.log", b"".join(b"a%d\n" % i for i in range(5)), mtime=1_000)
    second = write(tmp_path / "b.log", b"".join(b"b%d\n" % i for i in range(4)), mtime=2_000)
    chunks = poll([first, second], None, max_lines=2)
    assert [len(chunk.lines) for chunk in chunks] == [2, 2, 2, 2, 1]
    everything = lines_of(chunks)
    for index, chunk in enumerate(chunks):
        rest = lines_of(poll([first, second], chunk.cursor, max_lines=2))
        assert rest == everything[2 * (index + 1) :]


def test_interrupted_pass_keeps_the_position_of_files_not_reached_yet(tmp_path: Path) -> None:
    first = write(tmp_path / "a.log", b"a1\n", mtime=1_000)
    second = write(tmp_path / "b.log", b"b1\n", mtime=2_000)
    cursor = last_cursor(poll([first, second], None))
    append(first, b"a2\na3\n")
    os.utime(first, (1_000, 1_000))
    append(second, b"b2\n")
    chunks = poll([first, second], cursor, max_lines=1)
    resumed = poll([first, second], chunks[0].cursor)  # stopped after the first chunk
    assert lines_of(resumed) == [Line("a.log:3", b"a3"), Line("b.log:2", b"b2")]


def test_files_are_read_oldest_first_then_by_name(tmp_path: Path) -> None:
    newest = write(tmp_path / "a.log", b"a\n", mtime=3_000)
    tie_b = write(tmp_path / "c.log", b"c\n", mtime=1_000)
    tie_a = write(tmp_path / "b.log", b"b\n", mtime=1_000)
    data = [line.data for line in lines_of(poll([newest, tie_b, tie_a], None))]
    assert data == [b"b", b"c", b"a"]


def test_same_file_given_twice_is_read_once(tmp_path: Path) -> None:
    log = write(tmp_path / "chat.log", b"one\n")
    os.link(log, tmp_path / "link.log")
    assert len(lines_of(poll([log, log, tmp_path / "link.log"], None))) == 1


def test_missing_file_is_skipped(tmp_path: Path) -> None:
    log = write(tmp_path / "chat.log", b"one\n")
    assert len(lines_of(poll([tmp_path / "gone.log", log], None))) == 1


def test_cursor_round_trips_through_json(tmp_path: Path) -> None:
    log = write(tmp_path / "chat.log", b"one\ntwo\n")
    cursor = last_cursor(poll([log], None))
    restored = json.loads(json.dumps(cursor))
    assert restored == cursor
    append(log, b"three\n")
    assert lines_of(poll([log], restored)) == [Line("chat.log:3", b"three")]


@pytest.mark.parametrize(
    "cursor",
    [
        {"v": 2, "files": {}},
        {"v": 1},
        {"v": 1, "files": {"1:2": {"path": "x", "offset": -1, "line": 0, "head": ""}}},
        {"v": 1, "files": {"1:2": {"path": "x", "offset": 0, "head": ""}}},
    ],
)
def test_malformed_cursor_is_refused(tmp_path: Path, cursor: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="cursor"):
        tail([tmp_path / "chat.log"], cursor)


def test_read_all_takes_an_unterminated_last_line_and_ignores_no_cursor(tmp_path: Path) -> None:
    log = write(tmp_path / "chat.log", b"one\ntwo")
    assert lines_of(list(read_all([log]))) == [
        Line("chat.log:1", b"one"),
        Line("chat.log:2", b"two"),
    ]


def test_read_all_rejects_an_unterminated_huge_last_line(tmp_path: Path) -> None:
    log = write(tmp_path / "chat.log", b"one\n" + b"w" * 50)
    chunks = list(read_all([log], max_line_bytes=10))
    assert lines_of(chunks) == [Line("chat.log:1", b"one")]
    assert [r.location for chunk in chunks for r in chunk.rejected] == ["chat.log:2"]


def test_lines_across_block_boundaries_are_read_as_splitting_the_file_would(
    tmp_path: Path,
) -> None:
    # Lines of every length, some with "\r\n", some longer than the limit, so that lines and
    # over-long lines straddle the 64 KB blocks the file is read in; read in chunks of 7.
    parts = [b"x" * (n * 37 % 5000) + (b"\r" if n % 5 == 0 else b"") for n in range(150)]
    log = write(tmp_path / "queue_log", b"\n".join(parts) + b"\n")
    chunks = list(read_all([log], max_lines=7, max_line_bytes=4000))
    expected_lines, expected_rejected = [], []
    for number, part in enumerate(parts, 1):
        if len(part) > 4000:
            expected_rejected.append(f"queue_log:{number}")
        else:
            expected_lines.append(Line(f"queue_log:{number}", part.removesuffix(b"\r")))
    assert lines_of(chunks) == expected_lines
    assert [r.location for chunk in chunks for r in chunk.rejected] == expected_rejected
    assert all(len(chunk.lines) + len(chunk.rejected) <= 7 for chunk in chunks)
    assert log.stat().st_size > 3 * 64 * 1024
    # Resuming from any chunk's cursor reads exactly the lines after it.
    middle = chunks[len(chunks) // 2]
    rest = lines_of(poll([log], middle.cursor, max_lines=7, max_line_bytes=4000))
    consumed = sum(len(c.lines) for c in chunks[: len(chunks) // 2 + 1])
    assert rest == expected_lines[consumed:]
