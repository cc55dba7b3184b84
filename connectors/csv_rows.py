"""CSV rows in phone logs: splitting one line into fields, times and numbers.

The phone kinds (`asterisk_cdr`, `call_csv`, `answering_service_csv`, `asterisk_queue_log` as
CSV) read CSV files that a PBX or an export writes (matched by `connectors.file_source`), through
`connectors.tabular` (which column holds what). They share what is here:

- `split_line`: one physical line (bytes from `connectors.files`) into fields, split at `,` or
  another delimiter. A record must be on one line (CDR and call-log writers never put newlines
  in fields). Invalid UTF-8 is kept as surrogates so that a bad byte in a field nobody reads (a
  CallerID name) costs nothing, while `text()` rejects it in a field that is used;
- `parse_time`: local or offset timestamps in a list of formats, always to aware UTC;
- `seconds`: a duration column (`47`, `47.5`, `0:00:47`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from monitor.errors import BadRecord

# The formats tried when a source configures none: ISO 8601 (which also covers Asterisk's
# `2024-01-27 15:07:24`), Unix epoch seconds, and the slashed forms a spreadsheet re-save leaves
# (`2020/2/10 22:41`, seconds lost).
DEFAULT_TIME_FORMATS = ("iso", "epoch", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M")


class RowError(BadRecord):
    """A line that cannot be used; the message is the rejection reason (never field contents
    beyond short vocabulary such as a column name)."""


def split_line(data: bytes, delimiter: str = ",") -> list[str] | None:
    """The fields of one CSV line; None for a blank line; RowError when it is not a CSV row."""
    if not data.strip():
        return None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise RowError(f"binary data (NUL byte at byte {nul + 1})")
    text = data.decode("utf-8", errors="surrogateescape")
    try:
        rows = list(csv.reader([text], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise RowError(f"not a CSV row ({exc})") from None
    if len(rows) != 1:
        raise RowError("not a CSV row")
    return rows[0]


def text(value: str, name: str) -> str:
    """`value` stripped; RowError if it holds bytes that were not valid UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RowError(f"invalid UTF-8 in {name} at character {exc.start + 1}") from None
    return value.strip()


def parse_time(value: str, name: str, zone: ZoneInfo, formats: Sequence[str]) -> datetime:
    """`value` as aware UTC: a time with an offset keeps it, a naive one is read in `zone`.

    Formats are strptime patterns or the words `iso` and `epoch` (seconds, decimals allowed)."""
    value = text(value, name)
    if not value:
        raise RowError(f"missing {name}")
    for fmt in formats:
        parsed: datetime | None = None
        try:
            if fmt == "iso":
                parsed = datetime.fromisoformat(value)
            elif fmt == "epoch":
                parsed = datetime.fromtimestamp(float(value), UTC)
            else:
                parsed = datetime.strptime(value, fmt)  # noqa: DTZ007 (zone added below)
        except (ValueError, OverflowError, OSError):
            continue
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            parsed = parsed.replace(tzinfo=zone)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # the year 9999 (or 1) moved past the end of the calendar
            raise RowError(f"{name} is out of range") from None
    raise RowError(f"{name} is not a time in the configured formats ({', '.join(formats)})")


def optional_time(value: str, name: str, zone: ZoneInfo, formats: Sequence[str]) -> datetime | None:
    return parse_time(value, name, zone, formats) if text(value, name) else None


def seconds(value: str, name: str) -> float:
    """A non-negative duration: plain seconds, or `[h:]mm:ss`."""
    value = text(value, name)
    if not value:
        raise RowError(f"missing {name}")
    try:
        if ":" in value:
            total = 0.0
            for part in value.split(":"):
                total = total * 60 + float(part)
        else:
            total = float(value)
    except ValueError:
        raise RowError(f"{name} is not a number of seconds") from None
    if not 0 <= total < 10**9:
        raise RowError(f"{name} is out of range")
    return total
