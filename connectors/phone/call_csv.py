"""The `call_csv` connector: call-log CSV exports of hosted phone systems.

A `columns:` mapping names, for each of our keys, the file's column (a header name; for files
without a header, a name from `fields:`, the column order):

    id, entered (required: when the call came in), answered, ended, wait (seconds), talk
    (seconds), queue, caller, callee, direction, outcome, voicemail (non-empty: reached voicemail),
    agent (who answered an inbound call, or made an outbound one)

`preset:` fills the mapping (and the header/field order) for a documented export; `columns:`
entries override it:
- `aircall`: Aircall call records (started_at, answered_at, ended_at, direction, raw_digits,
  missed_call_reason, voicemail; times as epoch seconds or ISO 8601), with a header;
- `3cx`: the 3CX CDR file, which has no header: `fields:` defaults to every documented 3CX CDR
  field in the documented order; set it to the order chosen in the 3CX CDR settings.

Each inbound row is a `CallEvent`. Its wait is the `wait` column, else answered − entered, else
(not answered) ended − entered. The outcome is the `outcome` column through `outcomes:` (file
value → answered, abandoned, voicemail, timeout, exit_key, exit_empty, transferred, unknown,
short_abandoned: an abandoned call the file itself calls a short abandon),
else `voicemail` when the voicemail column is set, else answered when there is an answer time,
else abandoned. An inbound call not answered also asks for a callback: a customer-side message
on channel `voicemail` in the caller's `tel:` conversation. Each outbound row is an agent-side
message in the callee's `tel:` conversation at the call's start, closing that number's callback
inquiry in any phone source. Direction comes from the `direction` column through `directions:`
(defaults: in/inbound/incoming, out/outbound/outgoing), else from the numbers (an outside
number calling a short one is inbound).

Files are tailed like the other logs (connectors.files); an export written again as a new file
is read again, and stable ids (the `id` column, else a hash of the call's fields) make the
repeat add nothing. A record must be on one line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from connectors import files
from connectors.base import Batch, ConnectorContext, Cursor
from connectors.csv_rows import (
    DEFAULT_TIME_FORMATS,
    RowError,
    optional_time,
    parse_time,
    seconds,
    split_line,
    text,
)
from connectors.file_source import LineFileSettings, LineFileSource, read_error
from connectors.regular_files import open_regular
from monitor.config import PhoneSettings, SourceSettings, TimezoneName
from monitor.measure.events import (
    CallEvent,
    CallOutcome,
    Event,
    callback_made,
    callback_request,
    responder,
)

KEYS = (
    "id entered answered ended wait talk queue caller callee direction outcome voicemail agent"
).split()
Outcome = Literal[
    "answered",
    "abandoned",
    "voicemail",
    "timeout",
    "exit_key",
    "exit_empty",
    "transferred",
    "unknown",
    "short_abandoned",
]
Direction = Literal["inbound", "outbound", "internal"]
DEFAULT_DIRECTIONS: dict[str, Direction] = {
    "in": "inbound",
    "inbound": "inbound",
    "incoming": "inbound",
    "out": "outbound",
    "outbound": "outbound",
    "outgoing": "outbound",
    "internal": "internal",
}
# Fields of the 3CX CDR output, in the order the 3CX documentation lists them.
THREECX_FIELDS = (
    "historyid callid duration time-start time-answered time-end reason-terminated from-no "
    "to-no from-dn to-dn dial-no reason-changed final-number final-dn bill-code bill-rate "
    "bill-cost bill-name chain from-type to-type final-type from-dispname to-dispname "
    "final-dispname missed-queue-calls"
).split()
PRESETS: dict[str, dict[str, object]] = {
    "aircall": {
        "header": True,
        "columns": {
            "id": "id",
            "entered": "started_at",
            "answered": "answered_at",
            "ended": "ended_at",
            "direction": "direction",
            "caller": "raw_digits",
            "callee": "raw_digits",
            "outcome": "missed_call_reason",
            "voicemail": "voicemail",
        },
        "outcomes": {
            "out_of_opening_hours": "unknown",
            # "The caller hangs up during the first 10 seconds" (Aircall's missed call reasons,
            # support.aircall.io/hc/en-gb/articles/14936017803549): a short abandon.
            "short_abandoned": "short_abandoned",
            "abandoned_in_ivr": "abandoned",
            "abandoned_in_classic": "abandoned",
            "no_available_agent": "exit_empty",
            "agents_did_not_answer": "timeout",
        },
    },
    "3cx": {
        "header": False,
        "fields": THREECX_FIELDS,
        "columns": {
            "id": "historyid",
            "entered": "time-start",
            "answered": "time-answered",
            "ended": "time-end",
            "caller": "from-no",
            "callee": "to-no",
        },
    },
}
MISSED = {
    CallOutcome.ABANDONED,
    CallOutcome.TIMEOUT,
    CallOutcome.EXIT_KEY,
    CallOutcome.EXIT_EMPTY,
    CallOutcome.UNKNOWN,
}
_EXTERNAL_DIGITS = 9


class CallCsvSettings(LineFileSettings, PhoneSettings):
    preset: Literal["aircall", "3cx"] | None = None
    columns: dict[str, str] = Field(default_factory=dict)  # our key -> the file's column
    header: bool | None = None  # default: the preset's, else True
    fields: list[str] | None = None  # column names in order, for files without a header
    time_format: list[str] = Field(default_factory=lambda: list(DEFAULT_TIME_FORMATS))
    timezone: TimezoneName | None = None  # for times without an offset; default: the config's
    queue: str = "calls"  # the queue label when no queue column is mapped or it is empty
    outcomes: dict[str, Outcome] = Field(default_factory=dict)  # file value -> our outcome
    directions: dict[str, Direction] = Field(default_factory=dict)  # file value -> direction

    @model_validator(mode="after")
    def _complete(self) -> CallCsvSettings:
        unknown = sorted(set(self.columns) - set(KEYS))
        if unknown:
            raise ValueError(f"unknown column key {unknown[0]!r} (expected one of {KEYS})")
        if "entered" not in self.mapping():
            raise ValueError("columns: 'entered' (when the call came in) is required")
        if not self.has_header() and not self.field_names():
            raise ValueError("a file without a header needs `fields:` (its column names in order)")
        return self

    def _preset(self) -> dict[str, object]:
        return PRESETS[self.preset] if self.preset else {}

    def mapping(self) -> dict[str, str]:
        columns = dict(self._preset().get("columns", {}))  # type: ignore[call-overload]
        return {**columns, **self.columns}

    def has_header(self) -> bool:
        if self.header is not None:
            return self.header
        return bool(self._preset().get("header", True))

    def field_names(self) -> list[str] | None:
        if self.fields is not None:
            return self.fields
        preset = self._preset().get("fields")
        return list(preset) if isinstance(preset, tuple | list) else None

    def outcome_map(self) -> dict[str, str]:
        preset = dict(self._preset().get("outcomes", {}))  # type: ignore[call-overload]
        merged = {**preset, **self.outcomes}
        return {k.strip().lower(): v for k, v in merged.items()}

    def direction_map(self) -> dict[str, str]:
        merged = {**DEFAULT_DIRECTIONS, **self.directions}
        return {k.strip().lower(): v for k, v in merged.items()}


class CallCsvConnector(LineFileSource):
    kind = "call_csv"
    settings = CallCsvSettings

    def __init__(self, source: SourceSettings, context: ConnectorContext, **limits: int) -> None:
        super().__init__(source, context, **limits)
        assert isinstance(source, CallCsvSettings), type(source)
        self.options = source
        self.mapping = source.mapping()
        self.outcomes = source.outcome_map()
        self.directions = source.direction_map()

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        matched = self.matched(permanent=False)
        yield from self._batches(self.tail_chunks(cursor, matched), matched, now)

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        yield from self._batches(self.read_chunks(paths), paths, now)

    def _batches(
        self, chunks: Iterator[files.Chunk], paths: list[Path], now: datetime
    ) -> Iterator[Batch]:
        records = self.collector(now)
        try:
            # Line locations carry the file name; each file's own first line is its header.
            headers = {path.name: self._header(path) for path in paths}
            for chunk in chunks:
                records.rejected.extend(chunk.rejected)
                for location, data in chunk.lines:
                    name, _, number = location.rpartition(":")
                    if self.options.has_header() and number == "1":
                        continue
                    records.take(location, self.parse_row, data, headers.get(name), records.skip)
                yield records.batch(chunk.cursor)
        except OSError as exc:
            raise read_error(exc, self.path) from None

    def _header(self, path: Path) -> list[str] | None:
        """The column names of `path` (None when its first line is not a usable header)."""
        if not self.options.has_header():
            return self.options.field_names()
        try:
            with open_regular(path) as handle:
                first = handle.readline(self.max_line_bytes + 1).rstrip(b"\r\n")
        except OSError:
            return None  # not a regular file, or unreadable: its reading says so, located
        try:
            fields = split_line(first.removeprefix(b"\xef\xbb\xbf"))  # a BOM from spreadsheets
            return [text(name, "header") for name in fields] if fields else None
        except RowError:
            return None

    def parse_row(
        self, data: bytes, header: list[str] | None, skip: Callable[[str], None]
    ) -> list[Event]:
        """The events of one line; [] for a blank line; RowError (the reason) when malformed.
        A call that is no queue call (internal, outbound) is counted by `skip` with its reason."""
        if header is None:
            raise RowError("the file has no readable header line")
        fields = split_line(data)
        if fields is None:
            return []
        if len(fields) != len(header):
            raise RowError(f"expected {len(header)} columns, got {len(fields)}")
        row = dict(zip(header, fields, strict=True))

        def get(key: str) -> str:
            column = self.mapping.get(key)
            if column is None:
                return ""
            if column not in row:
                raise RowError(f"the header has no column {column!r}")
            return text(row[column], column)

        formats = self.options.time_format
        entered = parse_time(get("entered"), self.mapping["entered"], self.zone, formats)
        answered = optional_time(get("answered"), "answered", self.zone, formats)
        ended = optional_time(get("ended"), "ended", self.zone, formats)
        caller, callee = get("caller"), get("callee")
        call_id = get("id") or _content_id(entered, caller, callee, get("direction"))
        direction = self._direction(get("direction"), caller, callee)
        agent = responder(get("agent"))  # who answered, or who called back
        if direction == "outbound":
            skip("outbound calls (callbacks, not queue calls)")
            return callback_made(call_id, callee, entered, agent)
        if direction != "inbound":
            skip("internal calls")
            return []
        outcome, voicemail, short = self._outcome(get("outcome"), bool(get("voicemail")), answered)
        wait_text = get("wait")
        if wait_text:
            wait = seconds(wait_text, "wait")
        elif outcome is CallOutcome.ANSWERED and answered is not None:
            wait = max(0.0, (answered - entered).total_seconds())
        elif ended is not None:
            wait = max(0.0, (ended - entered).total_seconds())
        else:
            raise RowError("no wait: map `wait`, or `answered` and `ended`")
        talk_text = get("talk")
        call = CallEvent(
            external_id=f"call:{call_id}",
            queue=get("queue") or self.options.queue,
            entered_at=entered,
            outcome=outcome,
            answered_at=answered if outcome is CallOutcome.ANSWERED else None,
            left_at=ended,
            wait_seconds=wait,
            talk_seconds=seconds(talk_text, "talk") if talk_text else None,
            caller=caller or None,
            short_abandon=short,
            agent=agent if outcome in (CallOutcome.ANSWERED, CallOutcome.TRANSFERRED) else None,
        )
        events: list[Event] = [call]
        # A short abandon (a misdial, a caller who thought better of it) asks for no callback.
        if (voicemail or outcome in MISSED) and not short:
            events += callback_request(call_id, caller, ended or entered, call=call.external_id)
        return events

    def _direction(self, value: str, caller: str, callee: str) -> str:
        if value:
            found = self.directions.get(value.lower())
            if found is None:
                raise RowError(f"unknown direction {value[:24]!r} (add it to `directions:`)")
            return found
        outside_caller = _digits(caller) >= _EXTERNAL_DIGITS
        outside_callee = _digits(callee) >= _EXTERNAL_DIGITS
        if outside_callee and not outside_caller:
            return "outbound"
        return "inbound" if outside_caller or not callee else "internal"

    def _outcome(
        self, value: str, voicemail: bool, answered: datetime | None
    ) -> tuple[CallOutcome, bool, bool]:
        """The call's outcome, whether it reached voicemail, and whether the file calls it a
        short abandon."""
        if value:
            found = self.outcomes.get(value.lower())
            if found is None:
                raise RowError(f"unknown outcome {value[:24]!r} (add it to `outcomes:`)")
            if found == "voicemail":
                return CallOutcome.TIMEOUT, True, False
            if found == "short_abandoned":
                return CallOutcome.ABANDONED, False, True
            return CallOutcome(found), voicemail, False
        if voicemail:
            return CallOutcome.TIMEOUT, True, False
        if answered is not None:
            return CallOutcome.ANSWERED, False, False
        return CallOutcome.ABANDONED, False, False


def _digits(number: str) -> int:
    return sum(ch.isdigit() for ch in number)


def _content_id(entered: datetime, caller: str, callee: str, direction: str) -> str:
    """A stable id for a row without one: the same call in a later export gets the same id."""
    canonical = json.dumps([entered.isoformat(), caller, callee, direction.lower()])
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()
