"""Reading JSON documents record by record (connectors.json_stream): the shapes, the budgets,
and what a hostile document can and cannot do."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from connectors.json_records import RecordError
from connectors.json_stream import DocumentError, read_records


def records(data: bytes | Any, **options: Any) -> list[tuple[str, Any]]:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return [
        (path, f"{type(v).__name__}: {v}" if isinstance(v, RecordError) else v)
        for path, v in read_records(io.BytesIO(body), **options)
    ]


def test_an_array_is_read_element_by_element() -> None:
    assert records([{"a": 1}, [1, {"b": None}], "x", 2.5]) == [
        (".[0]", {"a": 1}),
        (".[1]", [1, {"b": None}]),
        (".[2]", "x"),
        (".[3]", 2.5),
    ]


def test_the_array_under_the_unwrapped_key_is_read_element_by_element_wherever_it_is() -> None:
    page = {"count": 2, "chats": [{"id": 1}, {"id": 2}], "next_url": None}
    assert records(page, unwrap="chats") == [(".chats[0]", {"id": 1}), (".chats[1]", {"id": 2})]


def test_any_other_document_is_one_record() -> None:
    assert records({"id": 7, "history": []}, unwrap="chats") == [("", {"id": 7, "history": []})]
    assert records({"chats": 5}, unwrap="chats") == [("", {"chats": 5})]
    assert records(3) == [("", 3)]


def test_numbers_are_ints_and_floats_as_json_loads_gives_them() -> None:
    ((_, value),) = records(b'{"n": 1, "f": 1.5, "e": 1e3, "big": 12345678901234567890}')
    assert value == {"n": 1, "f": 1.5, "e": 1000.0, "big": 12345678901234567890}
    assert [type(v) for v in value.values()] == [int, float, float, int]


def test_a_record_past_the_byte_budget_is_rejected_alone() -> None:
    document = [{"id": "A"}, {"id": "B", "x": ["y" * 50] * 2000}, {"id": "C"}]
    found = records(document, max_record_bytes=10_000)
    assert found == [
        (".[0]", {"id": "A"}),
        (".[1]", "RecordError: record larger than 10,000 bytes"),
        (".[2]", {"id": "C"}),
    ]


def test_a_record_nested_too_deeply_is_rejected_alone() -> None:
    found = records(b"[" + b"[" * 600 + b"]" * 600 + b', {"ok": 1}]')
    assert found == [
        (".[0]", "RecordError: record nested more than 512 levels deep"),
        (".[1]", {"ok": 1}),
    ]


def test_other_keys_beside_the_unwrapped_array_are_not_kept() -> None:
    junk = b"[" + b"{}," * 100_000 + b"{}]"
    body = b'{"junk": ' + junk + b', "chats": [{"id": 1}]}'
    assert records(body, unwrap="chats", max_record_bytes=1000) == [(".chats[0]", {"id": 1})]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'[{"a": 1}, {"b": 2', "not valid JSON at or after .[1] (the document ends too early)"),
        (b"[1, 2] x", "not valid JSON at or after .[1] (a syntax error within the first 8 bytes)"),
        (b'[1, "\xff"]', "invalid UTF-8 at byte 6"),
        (b"", "not valid JSON (the document ends too early)"),
    ],
)
def test_a_broken_document_keeps_the_records_before_the_break(body: bytes, reason: str) -> None:
    found = list(read_records(io.BytesIO(body)))
    path, error = found[-1]
    assert path == "" and isinstance(error, DocumentError) and str(error) == reason
    assert b"\xff" not in str(error).encode("utf-8", "surrogateescape")


def test_a_byte_order_mark_is_skipped() -> None:
    assert records(b"\xef\xbb\xbf[1]") == [(".[0]", 1)]


def test_lone_surrogates_never_fail_the_document() -> None:
    """yajl replaces a lone high surrogate and cannot decode a lone low one; either way every
    record is given (the events sanitise what they keep)."""
    found = records(b'[{"a": "\\udc00x"}, {"b": "\\ud800"}, {"c": "\\ud83d\\ude00"}]')
    assert [path for path, _ in found] == [".[0]", ".[1]", ".[2]"]
    assert found[2][1] == {"c": "\U0001f600"}
    assert all(not isinstance(value, str) for _, value in found)
