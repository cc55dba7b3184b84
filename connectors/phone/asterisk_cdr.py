"""The `asterisk_cdr` connector: Asterisk CDR CSV files (`Master.csv`), tailed.

Two writers share the file name (Asterisk's `cdr/cdr_csv.c` and the sample
`cdr_custom.conf`), both without a header:

- `cdr_csv`: accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
  start, answer, end, duration, billsec, disposition, amaflags, then optionally uniqueid,
  userfield, and peeraccount, linkedid, sequence: 16, 17, 18, 19 or 21 columns;
- `cdr_custom` with the stock mapping: clid first, 19 columns, accountcode after amaflags.

The layout is detected per line by its column count (a 19-column line is cdr_custom when its
9th field is a time and its 12th is not: start and duration there, lastdata and end in cdr_csv),
or fixed with `layout:`; `fields:` names the fields of any other cdr_custom mapping (or of an
export with a header line, `header: true`), and `columns:` maps a CDR field to a column named
otherwise (`start: calldate`), through `connectors.tabular`: a time over two columns, times as
epoch seconds (`${CDR(start,u)}`), `end` as start + duration when there is no end column.

One call writes several rows (a leg per Dial attempt, Local channel halves, ring-group forks);
they are grouped by linkedid, else uniqueid. A group is built only once it is *settled*: its
legs ended `settle` (default 2 minutes) before the newest leg read or before now, since legs are
written as they hang up. Rows of groups not settled yet travel in the cursor.

A group becomes:
- inbound (`direction: inbound` for a file of inbound calls only; else the caller's channel is
  a trunk (connectors.phone.parties: `trunks:`, `extensions:`); else dcontext matches
  `inbound_contexts`; else an outside or withheld caller dialled a short number, a guess the
  poll notes): a
  `CallEvent`. Answered when a leg was ANSWERED by a channel (dstchannel set, not VoiceMail);
  its wait is first such answer − the group's first start, i.e. duration − billsec of the
  answering leg plus the earlier legs' ring time: ring and queue time, including any IVR or
  announcement before it, which CDR cannot tell apart. Otherwise it is missed: `timeout` if it
  reached VoiceMail, `exit_empty` if BUSY, `unknown` for FAILED/CONGESTION, else `abandoned`;
  and a customer-side message on channel `voicemail` in the caller's `tel:` conversation asks for
  a callback;
- outbound (dcontext matches `outbound_contexts`, or a short extension dialled an outside
  number): an agent-side message in the callee's `tel:` conversation at the call's start, which
  closes that number's open callback inquiry in any phone source (answered or not: trying to
  call back is the response);
- anything else (internal calls): nothing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, Strict, model_validator, with_config
from typing_extensions import TypedDict

from connectors import files
from connectors.base import (
    CURSOR_VERSION,
    Batch,
    ConnectorContext,
    Cursor,
    Number,
    Records,
    Text,
    Window,
    checked_cursor,
    unusable_cursor,
)
from connectors.csv_rows import DEFAULT_TIME_FORMATS, RowError
from connectors.file_source import LineFileSettings, LineFileSource, read_error
from connectors.files import FileCursor
from connectors.phone.parties import (
    GUESSED,
    OUTSIDE_DIGITS,
    Parties,
    PartySettings,
    digits,
    guess,
    system_ended,
)
from connectors.tabular import (
    Direction,
    Fields,
    Keys,
    Layout,
    TabularSettings,
    header_of,
    mapping,
)
from monitor.config import Duration, PhoneSettings, SourceSettings
from monitor.measure.events import (
    CallEvent,
    CallOutcome,
    Event,
    callback_made,
    callback_request,
    responder,
)

BASE = (
    "accountcode src dst dcontext clid channel dstchannel lastapp lastdata start answer end "
    "duration billsec disposition amaflags"
).split()
CDR_CSV = {
    16: BASE,
    17: [*BASE, "uniqueid"],
    18: [*BASE, "uniqueid", "userfield"],
    19: [*BASE, "peeraccount", "linkedid", "sequence"],
    21: [*BASE, "uniqueid", "userfield", "peeraccount", "linkedid", "sequence"],
}
CDR_CUSTOM = (
    "clid src dst dcontext channel dstchannel lastapp lastdata start answer end duration billsec "
    "disposition amaflags accountcode uniqueid userfield sequence"
).split()
# Fields that must hold something; `end` may also be missing (start + duration).
# `src` may be empty: a call file's CDR has none (the CDR specification's originate example).
REQUIRED = ("dst", "dcontext", "channel", "start", "duration", "billsec")
KEYS = Keys(
    names=tuple(dict.fromkeys([*CDR_CSV[21], *CDR_CUSTOM])),
    times=frozenset({"start", "answer", "end"}),
    required=(*REQUIRED, "answer", "dstchannel", "lastapp", "disposition"),
    defaults={name: name for name in dict.fromkeys([*CDR_CSV[21], *CDR_CUSTOM])},
)
DEFAULT_INBOUND = ["from-pstn*", "from-trunk*", "from-did*", "ext-queues", "ext-group", "*-pstn"]
DEFAULT_OUTBOUND = ["from-internal*", "outrt-*", "macro-dialout*", "*outbound*"]
MAX_PENDING = 2000  # groups held unsettled at most; beyond, the oldest are built as they are
_TIME = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d")


class AsteriskCdrSettings(TabularSettings, LineFileSettings, PartySettings, PhoneSettings):
    # `path`: Master.csv, or a glob (LineFileSettings); `timezone`: default the config's, "UTC"
    # with usegmtime=yes; `fields`: the field names of a cdr_custom mapping other than the stock
    layout: Literal["auto", "cdr_csv", "cdr_custom"] = "auto"
    direction: Direction | None = None  # every call of the file (a log of inbound calls only)
    queue: str = "calls"  # the label of inbound calls that ran no Queue application
    queues: dict[str, str] = Field(default_factory=dict)  # dcontext or dst -> queue label
    inbound_contexts: list[str] = Field(default_factory=lambda: list(DEFAULT_INBOUND))
    outbound_contexts: list[str] = Field(default_factory=lambda: list(DEFAULT_OUTBOUND))
    settle: Duration = timedelta(minutes=2)

    @model_validator(mode="before")
    @classmethod
    def _columns_in_order(cls, data: Any) -> Any:
        # Earlier versions took a cdr_custom mapping's field names, in order, as `columns:`.
        if isinstance(data, dict) and isinstance(data.get("columns"), list):
            data = dict(data)
            names = data.pop("columns")
            if data.get("fields") is None:
                data["fields"] = names
        return data

    @model_validator(mode="after")
    def _known_keys(self) -> AsteriskCdrSettings:
        KEYS.check(self.columns)
        if self.header and self.fields:
            raise ValueError("give the field names by `header: true` or by `fields:`, not both")
        return self


@dataclass(frozen=True, slots=True)
class Leg:
    """The fields of one CDR row that calls are built from (JSON-safe, for the cursor)."""

    key: str
    src: str
    dst: str
    dcontext: str
    dstchannel: str
    lastapp: str
    disposition: str
    start: str  # ISO 8601 UTC
    answer: str | None
    end: str
    billsec: float
    origin: bool  # the caller's own channel (uniqueid == linkedid, or no linkedid)
    # Kept since calls are told apart by the caller's channel and labelled by their Queue's
    # first argument: a cursor saved before has legs without them.
    channel: str = ""  # the calling channel
    lastdata: str = ""  # the last application's arguments (a Queue's name first)

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.start)

    @property
    def ended(self) -> datetime:
        return datetime.fromisoformat(self.end)


class AsteriskCdrConnector(LineFileSource):
    kind = "asterisk_cdr"
    settings = AsteriskCdrSettings

    def __init__(self, source: SourceSettings, context: ConnectorContext, **limits: int) -> None:
        super().__init__(source, context, **limits)
        assert isinstance(source, AsteriskCdrSettings), type(source)
        self.options = source
        self.parties = Parties(source)
        self.settle = source.settle
        self.wanted, self.optional = mapping(KEYS, {}, source.columns)
        self.formats = source.time_format or list(DEFAULT_TIME_FORMATS)
        self.layouts: dict[tuple[str, ...], Layout] = {}
        self.split = Fields(source.delimiter).split
        self.headers: dict[str, list[str] | None] = {}  # file name -> its header line's names

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        tail_cursor, legs, latest = _load(cursor)
        matched = self.matched(permanent=False)
        self._read_headers(matched)
        chunks = self.tail_chunks(tail_cursor, matched)
        pending = _Pending(legs, latest)
        yield from self._batches(chunks, tail_cursor, pending, now, final=False)

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        chunks = self.read_chunks(paths)
        self._read_headers(paths)
        yield from self._batches(chunks, None, _Pending({}, None), now, final=True)

    def _read_headers(self, paths: list[Path]) -> None:
        if self.options.header:
            delimiter, limit = self.options.delimiter, self.max_line_bytes
            self.headers = {path.name: header_of(path, delimiter, limit) for path in paths}

    def _batches(
        self,
        chunks: Iterator[files.Chunk],
        tail_cursor: Cursor | None,
        pending: _Pending,
        now: datetime,
        *,
        final: bool,
    ) -> Iterator[Batch]:
        records = self.collector(now)
        try:
            for chunk in chunks:
                records.rejected.extend(chunk.rejected)
                for location, data in chunk.lines:
                    name, _, number = location.rpartition(":")
                    if self.options.header and number == "1":
                        continue  # the file's header line
                    header = self.headers.get(name) if self.options.header else None
                    records.take(location, self._pend, data, pending, records.window, header)
                tail_cursor = chunk.cursor
                latest = pending.latest
                self._settle(records, pending, None if latest is None else latest - self.settle)
                yield records.batch(pending.dump(tail_cursor))
        except OSError as exc:
            raise read_error(exc, self.path) from None
        # The file has nothing newer: calls that ended `settle` ago are complete by now.
        horizon = None if final else now - self.settle
        done = self._settle(records, pending, horizon, final=final)
        # Not measured yet, not lost: they are built by a later poll.
        records.skip("rows of calls still settling", sum(map(len, pending.legs.values())))
        if done or records.skipped:
            yield records.batch(pending.dump(tail_cursor))

    def _pend(
        self, data: bytes, pending: _Pending, window: Window, header: list[str] | None = None
    ) -> None:
        leg = self.parse_line(data, window, header)
        if leg is not None:
            pending.add(leg)

    def _settle(
        self,
        records: Records,
        pending: _Pending,
        horizon: datetime | None,
        *,
        final: bool = False,
    ) -> bool:
        """Build and drop the pending calls that ended by `horizon` (all when `final`); whether
        any was. A call that cannot be built is rejected under its key."""
        legs = pending.legs
        done = {
            key
            for key, group in legs.items()
            if final or (horizon is not None and max(leg.ended for leg in group) <= horizon)
        }
        overflow = max(0, len(legs) - len(done) - MAX_PENDING)
        done.update([key for key in legs if key not in done][:overflow])
        for key in [key for key in legs if key in done]:  # in file order
            records.take(f"call {key}", self.build, key, legs.pop(key), records)
        return bool(done)

    def parse_line(
        self, data: bytes, window: Window | None = None, header: list[str] | None = None
    ) -> Leg | None:
        """One CDR row as a leg; None for a blank line; RowError (the reason) when malformed
        or, given a `window`, when one of its times is implausible. `header`: the names of the
        file's header line (`header: true`)."""
        fields = self.split(data)
        if fields is None:
            return None
        row = self._layout(fields, header).row(fields)
        for name in REQUIRED:
            if not row.text(name):
                raise RowError(f"missing {row.label(name)}")
        start = row.time("start")
        duration = row.seconds("duration") or 0.0
        end = row.optional_time("end") or start + timedelta(seconds=duration)
        answer = row.optional_time("answer")
        if window is not None:  # before it joins the pending legs: it would settle them all
            for at, name in ((start, "start"), (end, "end"), (answer, "answer")):
                if at is not None:
                    window.check(at, name)
        billsec = row.seconds("billsec") or 0.0
        uniqueid, linkedid = row.text("uniqueid"), row.text("linkedid")
        channel = row.text("channel")
        # Channel names repeat after a restart, so the fallback key includes the start time.
        key = linkedid or uniqueid or f"{channel}@{start.isoformat()}"
        return Leg(
            key=key,
            src=row.text("src"),
            dst=row.text("dst"),
            dcontext=row.text("dcontext"),
            dstchannel=row.text("dstchannel"),
            lastapp=row.text("lastapp"),
            disposition=row.text("disposition").upper(),
            channel=channel,
            lastdata=row.text("lastdata")[:200],
            start=start.isoformat(),
            answer=answer.isoformat() if answer else None,
            end=end.isoformat(),
            billsec=billsec,
            origin=not linkedid or uniqueid == linkedid,
        )

    def _layout(self, fields: list[str], header: list[str] | None) -> Layout:
        names = tuple(header or self._names(fields))
        layout = self.layouts.get(names)
        if layout is None:
            layout = self.layouts[names] = Layout(
                names,
                self.wanted,
                self.optional,
                self.zone,
                self.formats,
                delimiter=self.options.delimiter,
            )
        return layout

    def _names(self, fields: list[str]) -> list[str]:
        count, layout = len(fields), self.options.layout
        if self.options.fields is not None:
            names = self.options.fields
        elif self.options.header:
            raise RowError("the file has no readable header line")
        elif layout == "cdr_custom" or (
            layout == "auto" and count == 19 and _is_time(fields[8]) and not _is_time(fields[11])
        ):
            names = CDR_CUSTOM
        elif count in CDR_CSV:
            names = CDR_CSV[count]
        else:
            raise RowError(f"expected 16, 17, 18, 19 or 21 columns, got {count}")
        return names

    def build(self, key: str, legs: list[Leg], records: Records) -> list[Event]:
        """The events of one settled call (all its legs); a call that is no customer's queue
        call is counted by `records.skip` with its reason."""
        legs = sorted(legs, key=lambda leg: (leg.start, leg.end))
        origin = next((leg for leg in legs if leg.origin), legs[0])
        if _originated(origin):
            records.skip("calls the PBX originated (originate, call files)")
            return []
        direction, guessed = self._direction(origin, legs)
        how = f" {GUESSED}" if guessed else ""
        if direction == "outbound":
            records.skip(f"outbound calls (callbacks, not queue calls){how}")
            # Who called back: the extension whose channel placed the call.
            return callback_made(key, origin.dst, legs[0].started, member_of(origin.channel))
        if direction != "inbound":
            records.skip(f"internal calls{how}")
            return []
        if guessed:
            records.note(f"inbound calls {GUESSED}")
        entered = legs[0].started
        people = [leg for leg in legs if _by_person(leg)]
        caller = origin.src or None
        queue = self._queue(legs, origin)
        if people:
            first = min(people, key=_person_answered)
            answered = _person_answered(first)
            call = CallEvent(
                external_id=f"call:{key}",
                queue=queue,
                entered_at=entered,
                outcome=CallOutcome.ANSWERED,
                answered_at=answered,
                left_at=max(leg.ended for leg in legs),
                wait_seconds=max(0.0, (answered - entered).total_seconds()),
                talk_seconds=max(leg.billsec for leg in people),
                caller=caller,
                # Who answered: the channel that answered first (`PJSIP/1001`).
                agent=member_of(first.dstchannel),
            )
            return [call]
        voicemail = [leg for leg in legs if leg.lastapp.lower() == "voicemail"]
        left = voicemail[0].started if voicemail else max(leg.ended for leg in legs)
        ended_by = None if voicemail else _ended_by_system(legs)
        if ended_by is not None:
            records.note(system_ended(ended_by))
        outcome = CallOutcome.EXIT_EMPTY if ended_by else _missed_outcome(legs, bool(voicemail))
        if outcome is CallOutcome.EXIT_EMPTY and ended_by is None:
            last = legs[-1]  # every leg was BUSY: nobody free to take it, where it last rang
            ended_by = f"{last.dcontext},{last.dst} (BUSY)"
        events: list[Event] = [
            CallEvent(
                external_id=f"call:{key}",
                queue=queue,
                entered_at=entered,
                outcome=outcome,
                left_at=left,
                wait_seconds=max(0.0, (left - entered).total_seconds()),
                caller=caller,
                ended_by=ended_by,
            )
        ]
        return events + callback_request(key, caller, left, call=f"call:{key}")

    def _direction(self, origin: Leg, legs: list[Leg]) -> tuple[str, bool]:
        """The call's direction, and whether it is a guess from the numbers: the setting, else
        the caller's channel (a trunk, or one of our extensions), else the dialplan context,
        else the numbers."""
        if self.options.direction is not None:
            return self.options.direction, False
        parties = self.parties
        if parties.is_trunk(origin.channel):
            return "inbound", False
        dialled_out = any(parties.is_trunk(leg.dstchannel) for leg in legs) or (
            digits(origin.dst) >= OUTSIDE_DIGITS and not parties.is_extension(origin.dst)
        )
        ours = parties.is_extension(origin.channel)
        if ours or (parties.configured and parties.is_extension(origin.src)):
            return ("outbound" if dialled_out else "internal"), False
        context = origin.dcontext
        if any(fnmatch.fnmatchcase(context, p) for p in self.options.inbound_contexts):
            return "inbound", False
        if any(fnmatch.fnmatchcase(context, p) for p in self.options.outbound_contexts):
            return ("outbound" if dialled_out else "internal"), False
        return guess(origin.src, origin.dst, parties), True

    def _queue(self, legs: list[Leg], origin: Leg) -> str:
        """The queue label: the Queue application's first argument (`500,t,,,300` -> `500`,
        the name queue_log gives the queue), else `queues:` by dcontext or dst, else `queue:`.
        Never a dialplan context by itself: a CDR and a queue_log of one server name a queue
        alike."""
        for leg in legs:
            if leg.lastapp.lower() == "queue":
                name = _QUEUE_ARGS.split(leg.lastdata, maxsplit=1)[0].strip()
                if name:
                    return name
        mapping = self.options.queues
        return mapping.get(origin.dcontext) or mapping.get(origin.dst) or self.options.queue


# Application names as Asterisk registers them (`lastapp` is the registered name: main/pbx_app.c;
# BackGround, Playback, Hangup, Busy, Congestion in main/pbx_builtins.c; VoiceMail in
# apps/app_voicemail.c; Queue in apps/app_queue.c), compared ignoring case.
# The dialplan itself ended the call: FreePBX's "Terminate Call" destinations (app-blackhole:
# hangup, busy, congestion...) run these, as 3CX's EndCall does.
_ENDING_APPS = frozenset({"hangup", "busy", "congestion"})
# What a channel runs before the PBX has dialled anyone: a dialled channel's placeholder until it
# answers (main/dial.c sets AppDial2, apps/app_dial.c AppDial, both with "(Outgoing Line)"). As
# the caller's own channel, it is one the PBX called: an originate or a call file (the CDR
# specification's "Unanswered 'Outbound' Call": no src, lastapp AppDial).
_DIALLED_APPS = frozenset({"appdial", "appdial2"})
# Queue(queuename,options,...); Asterisk 1.4 and older separated arguments with "|".
_QUEUE_ARGS = re.compile(r"[,|]")


def _originated(origin: Leg) -> bool:
    """Whether the PBX placed the call itself (AMI Originate, a call file, a wake-up call):
    its first channel ran no dialplan of a caller's, or it is the channel Asterisk runs when an
    originate fails (`OutgoingSpoolFailed`, main/pbx.c)."""
    return (
        origin.lastapp.lower() in _DIALLED_APPS and not origin.dstchannel
    ) or origin.channel.startswith("OutgoingSpoolFailed")


def _by_person(leg: Leg) -> bool:
    """A leg answered by a person: ANSWERED by a channel the call was bridged to (an agent,
    a ring group member, a forwarded number), not by the PBX itself (an IVR, an announcement or
    a queue answer the caller's own channel, with no dstchannel) nor by voicemail."""
    return (
        leg.disposition == "ANSWERED"
        and leg.answer is not None
        and bool(leg.dstchannel)
        and leg.lastapp.lower() != "voicemail"
    )


def _person_answered(leg: Leg) -> datetime:
    """When a person answered on `leg`: its answer time, but never before the leg began. Since
    Asterisk 12, once the PBX has answered a caller (an IVR), every later CDR of that caller
    carries the PBX's answer time (main/cdr.c sets `answer` when the caller's own channel goes
    up), so the person's pickup is at least the start of the leg that reached them."""
    answered = datetime.fromisoformat(leg.answer or leg.start)
    return max(answered, leg.started)


def _ended_by_system(legs: list[Leg]) -> str | None:
    """Where the dialplan ended a call no person took (`app-blackhole,hangup (Hangup)`), or
    None: its last leg ran Hangup, Busy or Congestion and was bridged to nobody."""
    last = max(legs, key=lambda leg: (leg.end, leg.start))
    if last.dstchannel or last.lastapp.lower() not in _ENDING_APPS:
        return None
    return f"{last.dcontext},{last.dst} ({last.lastapp})"


# Asterisk names a channel `TECH/resource-<8 hex digits>` (a Local channel adds `;1` or `;2`):
# the resource without the suffix is the member a queue or `teams:` names.
_CHANNEL_SUFFIX = re.compile(r"(?:-[0-9a-fA-F]{4,8})?(?:;\d+)?$")


def member_of(channel: str) -> str | None:
    """The member behind a channel name: `PJSIP/1001-0000002a` is `PJSIP/1001`,
    `Local/1001@from-queue-00000012;2` is `Local/1001@from-queue`; None for none."""
    name = _CHANNEL_SUFFIX.sub("", channel.strip(), count=1)
    return responder(name) if name else None


def _missed_outcome(legs: list[Leg], voicemail: bool) -> CallOutcome:
    if voicemail:
        return CallOutcome.TIMEOUT  # rang out to voicemail
    dispositions = {leg.disposition for leg in legs}
    if dispositions <= {"BUSY"}:
        return CallOutcome.EXIT_EMPTY  # nobody free to take it
    if dispositions & {"NO ANSWER", "ANSWERED", "BUSY"}:
        return CallOutcome.ABANDONED  # hung up while ringing, or in the IVR/queue
    return CallOutcome.UNKNOWN  # FAILED, CONGESTION


def _is_time(value: str) -> bool:
    return bool(_TIME.match(value.strip()))


@dataclass
class _Pending:
    """The legs of calls not settled yet, by call, and the end of the newest leg read."""

    legs: dict[str, list[Leg]]
    latest: datetime | None

    def add(self, leg: Leg) -> None:
        self.legs.setdefault(leg.key, []).append(leg)
        ended = leg.ended
        self.latest = ended if self.latest is None else max(self.latest, ended)

    def dump(self, tail: Cursor | None) -> Cursor:
        return {
            "v": CURSOR_VERSION,
            "tail": tail,
            "pending": [asdict(leg) for legs in self.legs.values() for leg in legs],
            "latest": self.latest.isoformat() if self.latest else None,
        }


@with_config(ConfigDict(extra="forbid"))
class LegState(TypedDict):
    """A `Leg` of a call still settling, as the cursor keeps it."""

    key: Text
    src: Text
    dst: Text
    dcontext: Text
    dstchannel: Text
    lastapp: Text
    disposition: Text
    start: Text
    answer: Text | None
    end: Text
    billsec: float
    origin: Annotated[bool, Strict()]
    # Kept since calls are told apart by the caller's channel and labelled by their Queue's
    # first argument: a cursor saved before has legs without them.
    channel: NotRequired[Text]
    lastdata: NotRequired[Text]


@with_config(ConfigDict(extra="forbid"))
class CdrCursor(TypedDict):
    v: Number
    tail: NotRequired[FileCursor | None]  # the CSV files, tailed (connectors.files)
    pending: NotRequired[list[LegState] | None]  # rows of calls still settling
    latest: NotRequired[Text | None]  # the end of the newest row read (ISO 8601)


def _load(cursor: Cursor | None) -> tuple[Cursor | None, dict[str, list[Leg]], datetime | None]:
    if cursor is None:
        return None, {}, None
    try:
        checked = checked_cursor(CdrCursor, cursor, "CDR")
        latest = checked.get("latest")
        settled = datetime.fromisoformat(latest) if latest else None
    except ValueError as exc:
        raise unusable_cursor(exc) from None
    pending: dict[str, list[Leg]] = {}
    for raw in checked.get("pending") or []:
        leg = Leg(**raw)
        pending.setdefault(leg.key, []).append(leg)
    return cursor.get("tail"), pending, settled
