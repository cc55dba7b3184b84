"""The `asterisk_cdr` connector: Asterisk CDR CSV files (`Master.csv`), tailed.

Two writers share the file name (Asterisk's `cdr/cdr_csv.c` and the sample
`cdr_custom.conf`), both without a header:

- `cdr_csv`: accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
  start, answer, end, duration, billsec, disposition, amaflags, then optionally uniqueid,
  userfield, and peeraccount, linkedid, sequence: 16, 17, 18, 19 or 21 columns;
- `cdr_custom` with the stock mapping: clid first, 19 columns, accountcode after amaflags.

The layout is detected per line by its column count (a 19-column line is cdr_custom when its
9th field is a time and its 12th is not: start and duration there, lastdata and end in cdr_csv),
or fixed with `layout:`; `columns:` names the fields of any other cdr_custom mapping.

One call writes several rows (a leg per Dial attempt, Local channel halves, ring-group forks);
they are grouped by linkedid, else uniqueid. A group is built only once it is *settled*: its
legs ended `settle` (default 2 minutes) before the newest leg read or before now, since legs are
written as they hang up. Rows of groups not settled yet travel in the cursor.

A group becomes:
- inbound (dcontext matches `inbound_contexts`, or an outside caller dialled a short number): a
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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal, NotRequired

from pydantic import ConfigDict, Field, Strict, with_config
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
from connectors.csv_rows import (
    RowError,
    parse_time,
    seconds,
    split_line,
    text,
)
from connectors.file_source import LineFileSettings, LineFileSource, read_error
from connectors.files import FileCursor
from monitor.config import Duration, PhoneSettings, SourceSettings, TimezoneName
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
REQUIRED = ("src", "dst", "dcontext", "channel", "start", "end", "duration", "billsec")
DEFAULT_INBOUND = ["from-pstn*", "from-trunk*", "from-did*", "ext-queues", "ext-group", "*-pstn"]
DEFAULT_OUTBOUND = ["from-internal*", "outrt-*", "macro-dialout*", "*outbound*"]
MAX_PENDING = 2000  # groups held unsettled at most; beyond, the oldest are built as they are
_TIME = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d")
_EXTERNAL_DIGITS = 9  # as many digits as a callback number needs (monitor.measure.events)


class AsteriskCdrSettings(LineFileSettings, PhoneSettings):
    # `path`: Master.csv, or a glob (LineFileSettings)
    layout: Literal["auto", "cdr_csv", "cdr_custom"] = "auto"
    columns: list[str] | None = None  # field names of a cdr_custom mapping other than the stock
    timezone: TimezoneName | None = None  # default: the config's; "UTC" with usegmtime=yes
    queue: str | None = None  # one queue label for every inbound call
    queues: dict[str, str] = Field(default_factory=dict)  # dcontext or dst -> queue label
    inbound_contexts: list[str] = Field(default_factory=lambda: list(DEFAULT_INBOUND))
    outbound_contexts: list[str] = Field(default_factory=lambda: list(DEFAULT_OUTBOUND))
    settle: Duration = timedelta(minutes=2)


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
    channel: str = ""  # the calling channel (a cursor saved before it was kept has none)

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
        self.settle = source.settle

    def fetch(self, cursor: Cursor | None, now: datetime) -> Iterator[Batch]:
        tail_cursor, legs, latest = _load(cursor)
        chunks = self.tail_chunks(tail_cursor)
        pending = _Pending(legs, latest)
        yield from self._batches(chunks, tail_cursor, pending, now, final=False)

    def fetch_paths(self, paths: list[Path], now: datetime) -> Iterator[Batch]:
        chunks = self.read_chunks(paths)
        yield from self._batches(chunks, None, _Pending({}, None), now, final=True)

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
                    records.take(location, self._pend, data, pending, records.window)
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

    def _pend(self, data: bytes, pending: _Pending, window: Window) -> None:
        leg = self.parse_line(data, window)
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
            records.take(f"call {key}", self.build, key, legs.pop(key), records.skip)
        return bool(done)

    def parse_line(self, data: bytes, window: Window | None = None) -> Leg | None:
        """One CDR row as a leg; None for a blank line; RowError (the reason) when malformed
        or, given a `window`, when one of its times is implausible."""
        fields = split_line(data)
        if fields is None:
            return None
        row = dict(zip(self._names(fields), fields, strict=True))
        for name in REQUIRED:
            if not row[name].strip():
                raise RowError(f"missing {name}")
        start = parse_time(row["start"], "start", self.zone, ("iso",))
        end = parse_time(row["end"], "end", self.zone, ("iso",))
        answer_text = text(row["answer"], "answer")
        answer = parse_time(answer_text, "answer", self.zone, ("iso",)) if answer_text else None
        if window is not None:  # before it joins the pending legs: it would settle them all
            for at, name in ((start, "start"), (end, "end"), (answer, "answer")):
                if at is not None:
                    window.check(at, name)
        seconds(row["duration"], "duration")
        billsec = seconds(row["billsec"], "billsec")
        uniqueid = text(row.get("uniqueid", ""), "uniqueid")
        linkedid = text(row.get("linkedid", ""), "linkedid")
        channel = text(row["channel"], "channel")
        # Channel names repeat after a restart, so the fallback key includes the start time.
        key = linkedid or uniqueid or f"{channel}@{start.isoformat()}"
        return Leg(
            key=key,
            src=text(row["src"], "src"),
            dst=text(row["dst"], "dst"),
            dcontext=text(row["dcontext"], "dcontext"),
            dstchannel=text(row["dstchannel"], "dstchannel"),
            lastapp=text(row["lastapp"], "lastapp"),
            disposition=text(row["disposition"], "disposition").upper(),
            start=start.isoformat(),
            answer=answer.isoformat() if answer else None,
            end=end.isoformat(),
            billsec=billsec,
            origin=not linkedid or uniqueid == linkedid,
            channel=channel,
        )

    def _names(self, fields: list[str]) -> list[str]:
        count, layout = len(fields), self.options.layout
        if self.options.columns is not None:
            names = self.options.columns
        elif layout == "cdr_custom" or (
            layout == "auto" and count == 19 and _is_time(fields[8]) and not _is_time(fields[11])
        ):
            names = CDR_CUSTOM
        elif count in CDR_CSV:
            names = CDR_CSV[count]
        else:
            raise RowError(f"expected 16, 17, 18, 19 or 21 columns, got {count}")
        if len(names) != count:
            raise RowError(f"expected {len(names)} columns, got {count}")
        used = (*REQUIRED, "answer", "dstchannel", "lastapp", "disposition")
        absent = [n for n in used if n not in names]
        if absent:
            raise RowError(f"the layout has no {absent[0]} column")
        return names

    def build(self, key: str, legs: list[Leg], skip: Callable[[str], None]) -> list[Event]:
        """The events of one settled call (all its legs); a call that is no queue call is
        counted by `skip` with its reason."""
        legs = sorted(legs, key=lambda leg: (leg.start, leg.end))
        origin = next((leg for leg in legs if leg.origin), legs[0])
        direction = self._direction(origin)
        if direction == "outbound":
            skip("outbound calls (callbacks, not queue calls)")
            # Who called back: the extension whose channel placed the call.
            return callback_made(key, origin.dst, legs[0].started, member_of(origin.channel))
        if direction != "inbound":
            skip("internal calls")
            return []
        entered = legs[0].started
        people = [
            leg
            for leg in legs
            if leg.disposition == "ANSWERED"
            and leg.answer
            and leg.dstchannel
            and leg.lastapp.lower() != "voicemail"
        ]
        caller = origin.src or None
        queue = self._queue(origin)
        if people:
            first = min(people, key=lambda leg: datetime.fromisoformat(leg.answer or ""))
            answered = datetime.fromisoformat(first.answer or "")
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
        events: list[Event] = [
            CallEvent(
                external_id=f"call:{key}",
                queue=queue,
                entered_at=entered,
                outcome=_missed_outcome(legs, bool(voicemail)),
                left_at=left,
                wait_seconds=max(0.0, (left - entered).total_seconds()),
                caller=caller,
            )
        ]
        return events + callback_request(key, caller, left, call=f"call:{key}")

    def _direction(self, origin: Leg) -> str:
        context = origin.dcontext
        if any(fnmatch.fnmatchcase(context, p) for p in self.options.inbound_contexts):
            return "inbound"
        outside_dst = _digits(origin.dst) >= _EXTERNAL_DIGITS
        if any(fnmatch.fnmatchcase(context, p) for p in self.options.outbound_contexts):
            return "outbound" if outside_dst else "internal"
        outside_src = _digits(origin.src) >= _EXTERNAL_DIGITS
        if outside_src and not outside_dst:
            return "inbound"
        if outside_dst and not outside_src:
            return "outbound"
        return "internal"

    def _queue(self, origin: Leg) -> str:
        if self.options.queue is not None:
            return self.options.queue
        mapping = self.options.queues
        return mapping.get(origin.dcontext) or mapping.get(origin.dst) or origin.dcontext or "cdr"


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


def _digits(number: str) -> int:
    return sum(ch.isdigit() for ch in number)


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
    channel: NotRequired[Text]  # the calling channel (a cursor saved before it was kept has none)


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
