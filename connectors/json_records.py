"""Reading JSON chat exports record by record: decoding, typed fields, times and ids.

Every function raises `RecordError` with a reason that names a field or a type but never
quotes message text, so that a rejection can be logged and stored as it is.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, tzinfo
from typing import Any

from monitor.errors import BadRecord

_UTF8_BOM = b"\xef\xbb\xbf"


class RecordError(BadRecord):
    """A record that cannot be used; the message is the rejection reason (no message text)."""


def load_json(data: bytes) -> Any:
    """`data` (UTF-8, an optional BOM) as a JSON value; RecordError with the reason if not."""
    try:
        text = data.removeprefix(_UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"invalid UTF-8 at byte {exc.start + 1}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise RecordError(reason) from None
    except (ValueError, RecursionError):
        # Valid syntax beyond the parser's limits: an over-long integer or very deep nesting.
        raise RecordError("not valid JSON (a number or nesting beyond limits)") from None


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def short(value: object) -> str:
    """Vocabulary (a subtype, a type name) for a reason, bounded: never a whole record."""
    text = str(value)
    return repr(text if len(text) <= 32 else text[:32] + "…")


def text(record: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = record.get(key)
    if value is None:
        if required:
            raise RecordError(f"missing {key}")
        return None
    if not isinstance(value, str):
        raise RecordError(f"{key} must be a string, got {json_type(value)}")
    return value


def identifier(record: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    """A string or an integer (not a boolean) as a non-empty string; None when absent."""
    value = record.get(key)
    if value is None or value == "":
        if required:
            raise RecordError(f"missing {key}" if value is None else f"{key} is empty")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordError(f"{key} must be a string or an integer, got {json_type(value)}")
    return str(value)


def mapping(record: dict[str, Any], key: str) -> dict[str, Any]:
    """An object field; {} when absent or null."""
    value = record.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"{key} must be an object, got {json_type(value)}")
    return value


def array(record: dict[str, Any], key: str) -> list[Any]:
    """An array field; [] when absent or null."""
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(f"{key} must be an array, got {json_type(value)}")
    return value


def parse_time(value: object, key: str, naive: tzinfo = UTC) -> datetime:
    """An ISO 8601 string (a time without offset is in `naive`) or a Unix epoch number in
    seconds or milliseconds (exports use both), as aware UTC."""
    if value is None or value == "":
        raise RecordError(f"missing {key}")
    if isinstance(value, bool):
        raise RecordError(f"{key} must be a time, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
        if seconds > 1e11:  # milliseconds: 1e11 s is the year 5138
            seconds /= 1000
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise RecordError(f"{key} is out of range") from None
    if not isinstance(value, str):
        raise RecordError(f"{key} must be a time, got {json_type(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"{key} is not an ISO 8601 time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=naive)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # the year 1 or 9999 moved across midnight by its offset
        raise RecordError(f"{key} is out of range") from None


def nested(location: str, path: str) -> str:
    """`location` (a file, a line, maybe already a jq path) extended by the jq path `path`."""
    return f"{location}{path}" if " ." in location else f"{location} {path}"


def stable_id(prefix: str, parts: list[object], seen: dict[str, int]) -> str:
    """An id for a record that has none, from what identifies it (a time, a type, an author;
    never its text), so the same record in a later export gets the same id. `seen` numbers
    identical records within one chat so that two of them stay two."""
    canonical = json.dumps(parts, ensure_ascii=False, separators=(",", ":"), default=str)
    digest = hashlib.sha1(canonical.encode("utf-8")).hexdigest()[:16]
    count = seen.get(digest, 0)
    seen[digest] = count + 1
    return f"{prefix}:{digest}" if count == 0 else f"{prefix}:{digest}.{count}"
