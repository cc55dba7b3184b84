"""The `call_csv` connector: call-log CSV exports of hosted phone systems and PBXs.

A `columns:` mapping names, for each of our keys, the file's column (a header name; for files
without a header, a name from `fields:`, the column order), read through `connectors.tabular`:

    id, entered (required: when the call came in; may be [date column, time column]), answered,
    ended, wait (s), wait_to_answer (s, the wait of an answered call), duration (s, the whole
    call), billable (s, from the answer), talk (s), queue, caller, callee, direction, outcome,
    voicemail (non-empty: reached voicemail), agent (who answered an inbound call, or made an
    outbound one), channel (the line, trunk or channel the call came in on)

Durations are seconds or `H:MM:SS`. `preset:` fills the mapping (and the header or field order,
outcome and direction values, the zone of the times) for a documented export
(connectors.phone.call_presets: `aircall`, `3cx`, `talkdesk`, `freeswitch`); `columns:` entries
override it.

Each inbound row is a `CallEvent`. Its wait is the `wait` column; else, answered,
`wait_to_answer`; else duration − billable; else answered − entered; else (not answered) ended −
entered. The outcome is the `outcome` column through `outcomes:` (file value → answered,
abandoned, voicemail, timeout, exit_key, exit_empty, transferred, unknown, short_abandoned: an
abandoned call the file itself calls a short abandon), else `voicemail` when the voicemail column
is set or the preset's record ends in voicemail with no person (3CX final-type VoiceMail,
FreeSWITCH last_app voicemail; the wait then runs to voicemail's own answer where the record
has it, else to the end of the call), else answered when there is an answer time, else
abandoned. An inbound call not answered
also asks for a callback: a customer-side message on channel `voicemail` in the caller's `tel:`
conversation. Each outbound row is an agent-side message in the callee's `tel:` conversation at
the call's start, closing that number's callback inquiry in any phone source. Direction is
`direction:` when set (a file of inbound calls only), else the record (a preset's rules: 3CX's
from-type; the `direction` column through `directions:`, defaults in/inbound/incoming,
out/outbound/outgoing), else the `channel` column or the caller among `trunks:`/`extensions:`
(connectors.phone.parties), else from the numbers (an outside or withheld number calling a short
one is inbound), a guess the poll notes. Calls the system placed itself are left out by reason.

Answered means a person (a preset's rules, `answered_by_person`, or an outcome column saying so):
a call the PBX answered and no person took is `abandoned` (the caller gave up in the IVR or
queue) or, where the record says the system ended it (3CX EndCall), `exit_empty`, noted by
destination. A file that cannot tell says so in `check` and in each poll's remarks.

Files are tailed like the other logs (connectors.files); an export written again as a new file
is read again, and stable ids (the `id` column, else a hash of the call's fields) make the
repeat add nothing. A record must be on one line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from connectors import files
from connectors.base import Batch, ConnectorContext, Cursor, Records
from connectors.csv_rows import DEFAULT_TIME_FORMATS, RowError
from connectors.file_source import LineFileSettings, LineFileSource, read_error
from connectors.phone.call_presets import PRESETS, RULES, THREECX_FIELDS, CallRules
from connectors.phone.parties import GUESSED, Parties, PartySettings, guess, system_ended
from connectors.tabular import (
    CallTimes,
    Direction,
    Keys,
    Layout,
    Row,
    TabularSettings,
    header_of,
    mapping,
)
from monitor.config import PhoneSettings, SourceSettings
from monitor.measure.events import (
    CallEvent,
    CallOutcome,
    Event,
    callback_made,
    callback_request,
    responder,
)

__all__ = ["THREECX_FIELDS", "CallCsvConnector", "CallCsvSettings"]

KEYS = Keys(
    names=(
        "id",
        "entered",
        "answered",
        "ended",
        "wait",
        "wait_to_answer",
        "duration",
        "billable",
        "talk",
        "queue",
        "caller",
        "callee",
        "direction",
        "outcome",
        "voicemail",
        "agent",
        "channel",
    ),
    times=frozenset({"entered", "answered", "ended"}),
    required=("entered",),
)
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
PresetName = Literal["aircall", "3cx", "talkdesk", "freeswitch"]
DEFAULT_DIRECTIONS: dict[str, Direction] = {
    "in": "inbound",
    "inbound": "inbound",
    "incoming": "inbound",
    "out": "outbound",
    "outbound": "outbound",
    "outgoing": "outbound",
    "internal": "internal",
}
MISSED = {
    CallOutcome.ABANDONED,
    CallOutcome.TIMEOUT,
    CallOutcome.EXIT_KEY,
    CallOutcome.EXIT_EMPTY,
    CallOutcome.UNKNOWN,
}
# Said once per poll, with how many answered calls it concerns, by a source whose file has
# nothing that tells a person's answer from the PBX's (and in `check`).
CANNOT_TELL = (
    "answered calls the file cannot tell from the phone system's own answer "
    "(set answered_by_person)"
)


class CallCsvSettings(TabularSettings, LineFileSettings, PartySettings, PhoneSettings):
    preset: PresetName | None = None
    # [column, [values]]: the column saying who answered, and its values that are a person (an
    # agent, an extension, a forwarded number), or `!value`s that are not (an auto attendant):
    # for a file that cannot tell a person's answer from the phone system's otherwise.
    answered_by_person: tuple[str, list[str]] | None = None
    queue: str = "calls"  # the queue label when no queue column is mapped or it is empty
    outcomes: dict[str, Outcome] = Field(default_factory=dict)  # file value -> our outcome
    directions: dict[str, Direction] = Field(default_factory=dict)  # file value -> direction
    direction: Direction | None = None  # every call of the file (a log of inbound calls only)

    @model_validator(mode="after")
    def _complete(self) -> CallCsvSettings:
        KEYS.check(self.columns)
        if "entered" not in self.mapping()[0]:
            raise ValueError("columns: 'entered' (when the call came in) is required")
        if not self.has_header() and not self.field_names():
            raise ValueError("a file without a header needs `fields:` (its column names in order)")
        return self

    def mapping(self) -> tuple[dict[str, str | list[str]], frozenset[str]]:
        preset = PRESETS[self.preset].columns if self.preset else {}
        return mapping(KEYS, preset, self.columns)

    def has_header(self) -> bool:
        if self.header is not None:
            return self.header
        return PRESETS[self.preset].header if self.preset else True

    def field_names(self) -> list[str] | None:
        if self.fields is not None:
            return self.fields
        preset = PRESETS[self.preset].fields if self.preset else None
        return list(preset) if preset else None

    def outcome_map(self) -> dict[str, str]:
        preset = dict(PRESETS[self.preset].outcomes) if self.preset else {}
        return {k.strip().lower(): v for k, v in {**preset, **self.outcomes}.items()}

    def direction_map(self) -> dict[str, str]:
        preset = dict(PRESETS[self.preset].directions) if self.preset else {}
        merged = {**DEFAULT_DIRECTIONS, **preset, **self.directions}
        return {k.strip().lower(): v for k, v in merged.items()}

    def zone_name(self) -> str | None:
        """The zone of times without an offset: the source's, else the preset's documented one
        (None: the config's)."""
        return self.timezone or (PRESETS[self.preset].timezone if self.preset else None)


class CallCsvConnector(LineFileSource):
    kind = "call_csv"
    settings = CallCsvSettings

    def __init__(self, source: SourceSettings, context: ConnectorContext, **limits: int) -> None:
        super().__init__(source, context, **limits)
        assert isinstance(source, CallCsvSettings), type(source)
        self.options = source
        zone = source.zone_name()
        self.zone = ZoneInfo(zone) if zone else context.timezone
        self.wanted, self.optional = source.mapping()
        self.formats = source.time_format or list(DEFAULT_TIME_FORMATS)
        self.hint = PRESETS[source.preset].hint if source.preset else None
        self.outcomes = source.outcome_map()
        self.directions = source.direction_map()
        self.parties = Parties(source)
        self.rules: CallRules | None = RULES.get(source.preset or "")
        values = [v.strip().casefold() for v in (source.answered_by_person or ("", []))[1]]
        # Values that are a person; or, written `!IVR`, the values that are not (any other
        # value is then a person: a column of agents' names beside "Auto Attendant").
        self.person_values = frozenset(v for v in values if not v.startswith("!"))
        self.not_person_values = frozenset(v[1:].strip() for v in values if v.startswith("!"))
        preset = PRESETS[source.preset] if source.preset else None
        self.answers_are_people = bool(preset and preset.answers_are_people)

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
            layouts = {path.name: self.layout(path) for path in paths}
            for chunk in chunks:
                records.rejected.extend(chunk.rejected)
                for location, data in chunk.lines:
                    name, _, number = location.rpartition(":")
                    if self.options.has_header() and number == "1":
                        continue
                    layout = layouts.get(name)
                    records.take(location, self.parse_row, data, layout, records)
                yield records.batch(chunk.cursor)
        except OSError as exc:
            raise read_error(exc, self.path) from None

    def layout(self, path: Path) -> Layout | None:
        """How `path`'s records are read (None when its first line is not a usable header)."""
        names = self.options.field_names()
        if self.options.has_header():
            names = header_of(path, self.options.delimiter, self.max_line_bytes)
        if names is None:
            return None
        layout = Layout(
            names,
            self.wanted,
            self.optional,
            self.zone,
            self.formats,
            delimiter=self.options.delimiter,
        )
        if layout.problem and self.hint:
            layout.problem = f"{layout.problem} ({self.hint})"
        return layout

    def parse_row(self, data: bytes, layout: Layout | None, records: Records) -> list[Event]:
        """The events of one line; [] for a blank line; RowError (the reason) when malformed.
        A call that is no queue call (internal, outbound) is counted by `skip` with its reason."""
        if layout is None:
            raise RowError("the file has no readable header line")
        fields = layout.split(data)
        if fields is None:
            return []
        return self.events(layout.row(fields), records)

    def events(self, row: Row, records: Records) -> list[Event]:
        """The events of one call record (see the module docstring)."""
        times = CallTimes.of(row)
        caller, callee = row.text("caller"), row.text("callee")
        call_id = row.text("id") or _content_id(
            times.entered, caller, callee, row.text("direction")
        )
        agent = responder(row.text("agent"))  # who answered, or who called back
        rules = self.rules
        placed = rules.originated(row) if rules else None
        if placed:
            records.skip(f"calls the phone system placed itself ({placed})")
            return []
        direction, guessed = self._direction(row, caller, callee)
        how = f" {GUESSED}" if guessed else ""
        if direction == "outbound":
            records.skip(f"outbound calls (callbacks, not queue calls){how}")
            return callback_made(call_id, callee, times.entered, agent)
        if direction != "inbound":
            records.skip(f"internal calls{how}")
            return []
        if guessed:
            records.note(f"inbound calls {GUESSED}")
        person = self._person(row)
        # Voicemail as the record's last destination (3CX VoiceMail, FreeSWITCH last_app): no
        # person took the call, the caller could leave a message.
        reached = bool(rules and not person and rules.reached_voicemail(row))
        outcome, voicemail, short = self._outcome(
            row.text("outcome"), bool(row.text("voicemail")) or reached, times.was_answered()
        )
        ended_by = rules.ended_by_system(row) if rules and not person else None
        if ended_by is not None and not voicemail:
            outcome = CallOutcome.EXIT_EMPTY  # the system hung up: nobody could take it
        elif outcome is CallOutcome.ANSWERED and person is False:
            # The PBX answered (an IVR, a queue, an announcement) and no person did: the caller
            # gave up there, unless the record says the caller did not hang up (the system did).
            hung_up = rules.caller_hung_up(row) if rules else None
            if hung_up is False:
                outcome = CallOutcome.EXIT_EMPTY
                ended_by = self._answered_by(row)
            else:
                outcome = CallOutcome.ABANDONED
        elif outcome is CallOutcome.ANSWERED and person is None and not row.text("outcome"):
            records.note(CANNOT_TELL)
        if outcome is CallOutcome.EXIT_EMPTY:
            # Where the system ended it; a file that only says so in its outcome column
            # (Aircall's out_of_opening_hours) names it by that value.
            ended_by = ended_by or row.text("outcome") or None
            if ended_by:
                records.note(system_ended(ended_by))
        else:
            ended_by = None
        answered = outcome is CallOutcome.ANSWERED
        wait, left = times.wait_for(answered), times.ended
        if reached and rules and times.answered and rules.voicemail_answered(row):
            # Voicemail's own answer: the wait for a person ended when it took the call.
            wait, left = max(0.0, (times.answered - times.entered).total_seconds()), times.answered
        call = CallEvent(
            external_id=f"call:{call_id}",
            queue=row.text("queue") or self.options.queue,
            entered_at=times.entered,
            outcome=outcome,
            answered_at=times.answer_at(wait) if answered else None,
            left_at=left,
            wait_seconds=wait,
            talk_seconds=times.talk_for(answered),
            caller=caller or None,
            short_abandon=short,
            agent=agent if outcome in (CallOutcome.ANSWERED, CallOutcome.TRANSFERRED) else None,
            ended_by=ended_by,
        )
        events: list[Event] = [call]
        # A short abandon (a misdial, a caller who thought better of it) asks for no callback.
        if (voicemail or outcome in MISSED) and not short:
            left = left or times.entered
            events += callback_request(call_id, caller, left, call=call.external_id)
        return events

    def _person(self, row: Row) -> bool | None:
        """Whether a person answered, as far as the record says (None: it does not say)."""
        rule = self.options.answered_by_person
        if rule is not None:
            value = row.column(rule[0]).casefold()
            if self.person_values:
                return value in self.person_values
            return bool(value) and value not in self.not_person_values
        if self.rules is not None:
            return self.rules.person(row)
        return True if self.answers_are_people else None

    def _answered_by(self, row: Row) -> str:
        """Who answered a call no person took, as the file says (for the poll's remark)."""
        rule = self.options.answered_by_person
        found = row.column(rule[0]) if rule is not None else ""
        rules = self.rules
        if not found and rules is not None and rules.person_columns:
            found = next((row.column(c) for c in rules.person_columns if row.column(c)), "")
        return found or "the phone system's own answer"

    def cannot_tell(self, layout: Layout) -> bool:
        """Whether records of `layout` cannot tell a person's answer from the PBX's: no
        outcome column, no `answered_by_person`, and no column of the preset that could."""
        if self.answers_are_people or self.options.answered_by_person is not None:
            return False
        if layout.has("outcome"):
            return False
        rules = self.rules
        if rules is not None and rules.person_columns:
            return not any(layout.find(c) is not None for c in rules.person_columns)
        return True

    def check(self) -> str:
        found = super().check()
        for path in self.matched(permanent=True):
            layout = self.layout(path)
            if layout is not None and not layout.problem and self.cannot_tell(layout):
                return f"{found}; {path.name}: {CANNOT_TELL}"
        return found

    def _direction(self, row: Row, caller: str, callee: str) -> tuple[str, bool]:
        """The call's direction, and whether it is a guess from the numbers: `direction:`,
        else the record (the preset's rules, the direction column), else the channel or line
        (a trunk, one of our extensions), else our extensions among the numbers, else the
        numbers."""
        if self.options.direction is not None:
            return self.options.direction, False
        found = self.rules.direction(row) if self.rules else None
        if found is not None:
            return found, False
        value = row.text("direction")
        if value:
            mapped = self.directions.get(value.lower())
            if mapped is None:
                raise RowError(f"unknown direction {value[:24]!r} (add it to `directions:`)")
            return mapped, False
        parties = self.parties
        channel = row.text("channel")
        if channel and parties.is_trunk(channel):
            return "inbound", False
        ours = channel and parties.is_extension(channel)
        if ours or (parties.configured and parties.is_extension(caller)):
            return ("outbound" if parties.is_outside(callee) and callee else "internal"), False
        if not callee:  # a log of the calls that came in, with the caller alone
            return "inbound", not parties.is_outside(caller)
        return guess(caller, callee, parties), True

    def _outcome(
        self, value: str, voicemail: bool, answered: bool
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
        if answered:
            return CallOutcome.ANSWERED, False, False
        return CallOutcome.ABANDONED, False, False


def _content_id(entered: datetime, caller: str, callee: str, direction: str) -> str:
    """A stable id for a row without one: the same call in a later export gets the same id."""
    canonical = json.dumps([entered.isoformat(), caller, callee, direction.lower()])
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()
