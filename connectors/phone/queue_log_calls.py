"""Turning Asterisk queue_log records into calls: one caller's stay in one queue.

The flat file, the realtime table and a CSV export of that table all hold the same records
(Asterisk's `ast_queue_log` in main/logger.c): time, callid, queue, agent, event, data1..dataN. This
module pairs them into `CallEvent`s, whatever form they were read from:

- a stay (*stint*) is keyed by (callid, queue); it opens at ENTERQUEUE, is answered at CONNECT
  (wait = data1) and ends at the first terminal verb: COMPLETECALLER/COMPLETEAGENT (answered;
  talk = data2), BLINDTRANSFER/ATTENDEDTRANSFER/TRANSFER (transferred; ATTENDEDTRANSFER has a
  variable field count, so holdtime and calltime are read from the right), ABANDON,
  EXITWITHTIMEOUT, EXITEMPTY, WITHDRAW (wait = data3), EXITWITHKEY (wait = data4), AGENTDUMP and
  SYSCOMPAT (answered if connected, else unknown);
- a terminal or CONNECT line whose ENTERQUEUE was never read (the file starts mid-call) makes a
  stint that entered at time - wait;
- callers still in the queue at the end of a poll are emitted once as WAITING, and the final
  state replaces that row later. A caller answered after being shown as waiting is emitted as
  answered at once (a talking caller must not look like one on hold), so such a call keeps no
  talk time or transfer;
- a stint with no end `unknown_after` after it entered (by the newest record or by now) is
  emitted as `unknown` (or answered, if it was connected);
- an unanswered call (abandoned, timeout, exit key, exit empty) from a caller number asks for a
  callback: a customer-side message on channel `voicemail` in the caller's `tel:` conversation,
  as asterisk_cdr does, closed by an outbound call to that number in any phone source.

Agent, member and system events (AGENTLOGIN, PAUSE, QUEUESTART, RINGNOANSWER, ...) are ignored.
Verbs we do not know (custom `QueueLog()` verbs, Wazo's FULL/CLOSED, OUTDIAL...) are valid lines,
not rejections: they are counted per verb and logged once per poll. Both are counted in the
poll's skipped records (`skipped`), so a log of nothing but those says so.

`verbs` (the source's `verbs:`) says what a custom verb means: `outbound_call` (an outbound
call to the number in its first field, data1: an agent-side message in that number's `tel:`
conversation, the callback that closes its inquiry in any phone source, as asterisk_cdr's
outbound calls are), `ignore` (not about a caller), or a standard verb whose fields it has
(`CALLERCONNECTED: CONNECT`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

from pydantic import Strict

from connectors.base import Text, Window
from connectors.csv_rows import RowError
from monitor.measure.events import (
    CallEvent,
    CallOutcome,
    Event,
    callback_made,
    callback_request,
    finished_call,
)

SYSTEM_CALLIDS = frozenset({"NONE", "REALTIME", "MANAGER", "CLI"})
NOT_CALLS = frozenset(
    """AGENTLOGIN AGENTLOGOFF AGENTCALLBACKLOGIN AGENTCALLBACKLOGOFF ADDMEMBER REMOVEMEMBER PAUSE
    UNPAUSE PAUSEALL UNPAUSEALL PENALTY RINGINUSE QUEUESTART CONFIGRELOAD RINGNOANSWER
    RINGCANCELED OUTCALL DID INFO""".split()
)
# verb -> (outcome, index of the wait field from the left, or from the right when negative)
EXITS = {
    "ABANDON": (CallOutcome.ABANDONED, 2),
    "EXITWITHTIMEOUT": (CallOutcome.TIMEOUT, 2),
    "EXITEMPTY": (CallOutcome.EXIT_EMPTY, 2),
    # Pulled out by the AMI (e.g. into a callback system): Asterisk counts it with timeouts.
    "WITHDRAW": (CallOutcome.TIMEOUT, 2),
    "EXITWITHKEY": (CallOutcome.EXIT_KEY, 3),
}
COMPLETES = frozenset({"COMPLETECALLER", "COMPLETEAGENT"})
TRANSFERS = frozenset({"BLINDTRANSFER", "ATTENDEDTRANSFER", "TRANSFER"})
DROPS = frozenset({"AGENTDUMP", "SYSCOMPAT"})
CALLBACK_OUTCOMES = frozenset(
    {CallOutcome.ABANDONED, CallOutcome.TIMEOUT, CallOutcome.EXIT_KEY, CallOutcome.EXIT_EMPTY}
)
ANSWERED, TRANSFERRED, WAITING = CallOutcome.ANSWERED, CallOutcome.TRANSFERRED, CallOutcome.WAITING
MAX_TRACKED = 20_000  # stints held open at most; beyond, the oldest are given up as unknown
# What `verbs:` may say a custom verb means, besides a standard verb.
OUTBOUND_CALL, IGNORE = "outbound_call", "ignore"
# The verbs whose lines make or end a call (the others are NOT_CALLS): `verbs:` cannot change
# what these mean, only give other verbs their meaning.
MEASURED = frozenset({"ENTERQUEUE", "CONNECT", *COMPLETES, *TRANSFERS, *EXITS, *DROPS})
OUTBOUND_SKIPPED = "outbound calls (callbacks, not queue calls)"
STAFF_SKIPPED = "calls from our own extensions (staff testing a queue)"


class Record(NamedTuple):
    """One queue_log line or row, whatever form it was read from (a tuple: a million are made
    per million lines, so it must be cheap)."""

    at: float  # Unix epoch seconds (UTC)
    callid: str
    queue: str
    agent: str
    event: str
    data: list[str]


@dataclass(slots=True)
class Stint:
    callid: str
    queue: str
    entered: float
    caller: str | None
    answered: float | None = None
    wait: float | None = None
    shown: bool = False  # emitted as WAITING in an earlier poll
    final: bool = False  # already emitted as finished; its end line is swallowed
    agent: str | None = None  # the member who answered (CONNECT's agent field)

    @property
    def key(self) -> str:
        return f"{self.callid}@{self.queue}@{int(self.entered)}"


# A stint still open, as the cursor keeps it (`Calls.dump`): callid, queue, entered, caller,
# answered, wait, shown, final, and the member who answered; a cursor saved before the member
# was kept has the first eight.
OpenStint = (
    tuple[
        Text,
        Text,
        float,
        Text | None,
        float | None,
        float | None,
        Annotated[bool, Strict()],
        Annotated[bool, Strict()],
        Text | None,
    ]
    | tuple[
        Text,
        Text,
        float,
        Text | None,
        float | None,
        float | None,
        Annotated[bool, Strict()],
        Annotated[bool, Strict()],
    ]
)


class Calls:
    """The stints open between records, and the events each record finishes.

    A record whose time is outside the plausible `window` is rejected before it touches the
    stints: one line dated in the year 4000 would otherwise move `latest` there and give up
    every caller still in the queue."""

    def __init__(
        self,
        unknown_after: float,
        window: Window | None = None,
        verbs: dict[str, str] | None = None,
        staff: Callable[[str], bool] | None = None,
        *,
        long_numbers_outside: bool = False,
    ) -> None:
        self.unknown_after = unknown_after
        # Whether a caller id is one of our extensions (connectors.phone.parties): staff testing
        # the queue, whose stint is followed to its end but never measured.
        self.is_staff = staff or _nobody
        # `staff` is false of every number of 7 digits or more and every one after a "+"
        # (`Parties.long_numbers_outside`): the fused loop asks it only of the others.
        self.long_numbers_outside = long_numbers_outside
        self.window = window
        # Custom verb -> OUTBOUND_CALL, IGNORE or a standard verb (upper case both).
        self.verbs = {k.strip().upper(): v.strip() for k, v in (verbs or {}).items()}
        self.verbs = {
            k: v if v in (OUTBOUND_CALL, IGNORE) else v.upper() for k, v in self.verbs.items()
        }
        self.not_calls = NOT_CALLS - self.verbs.keys()  # a verb given a meaning is read
        # The window as epoch seconds (the fused loop of queue_log_lines compares them too).
        self.earliest, self.latest_plausible = window.epochs if window else (1.0, 1e11)
        self.open: dict[tuple[str, str], Stint] = {}
        self.names: dict[str, str] = {}  # queue and member names as one object each
        self.latest: float | None = None
        self.unknown_verbs: Counter[str] = Counter()
        self.ignored = 0  # agent, member and system lines read (not about a caller)
        self.ignored_verbs = 0  # lines of verbs `verbs:` says to ignore
        self.outbound = 0  # lines of verbs `verbs:` says are outbound calls
        self.staff = 0  # callers who are our own extensions (left out)

    # -- state in the cursor ---------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return {
            "latest": self.latest,
            "open": [
                [
                    s.callid,
                    s.queue,
                    s.entered,
                    s.caller,
                    s.answered,
                    s.wait,
                    s.shown,
                    s.final,
                    s.agent,
                ]
                for s in self.open.values()
            ],
        }

    def load(self, latest: float | None, stints: Iterable[OpenStint]) -> None:
        """The state `dump` wrote, as the cursor's check (`checked_cursor`) returns it."""
        self.latest = latest
        for item in stints:
            stint = Stint(*item)
            self.open[(stint.callid, stint.queue)] = stint

    # -- records ---------------------------------------------------------------------------

    def feed(self, record: Record) -> list[Event]:
        """The events `record` finishes; RowError when a call line lacks a usable field.

        Runs once per line of a log of millions: the branches go from the most common verb,
        and the common path is written out rather than spread over small helpers."""
        at, callid, queue, member, event, data = record
        verb = event.upper()
        if self.verbs and verb in self.verbs:
            verb = self.verbs[verb]
            if verb == IGNORE:
                self.ignored_verbs += 1
                return []
            if verb == OUTBOUND_CALL:
                self.outbound += 1
                number = data[0].strip() if data else ""
                return callback_made(f"{callid}@{int(at)}", number or None, _utc(at))
        if verb in self.not_calls or callid.upper() in SYSTEM_CALLIDS:
            self.ignored += 1
            return []
        if not self.earliest <= at <= self.latest_plausible:
            raise RowError(self._implausible(at))
        if self.latest is None or at > self.latest:
            self.latest = at
        key = (callid, queue)
        if verb == "ENTERQUEUE":
            events = self.give_up(key, at) if key in self.open else []  # entered again, no end
            caller = (data[1].strip() if len(data) > 1 else "") or None
            self.open[key] = self.entered(callid, queue, at, caller)
            return events
        if verb == "CONNECT":
            wait = _seconds(record, 0, "holdtime")
            stint = self._stint(record, wait)
            if stint.answered is None:
                stint.answered, stint.wait = at, wait
                stint.agent = answerer(member)
            if stint.shown and not stint.final:
                stint.final = True  # shown waiting: it must stop looking like it is on hold
                return [self.call_event(stint, ANSWERED, None, None)]
            return []
        if verb in COMPLETES or verb in TRANSFERS:
            if verb in COMPLETES:  # holdtime | calltime
                wait, talk = _seconds(record, 0, "holdtime"), _seconds(record, 1, "calltime")
            else:
                wait, talk = self._answered_times(record, verb)
            # Its ENTERQUEUE may be before what we read: then it entered wait + talk ago.
            found = self.open.pop(key, None)
            stint = found or Stint(callid, queue, at - (wait + talk), None)
            if stint.answered is None:  # no CONNECT read: answered when the wait ended
                stint.answered, stint.wait = stint.entered + wait, wait
            if stint.agent is None:
                stint.agent = answerer(member)
            if stint.final:
                return []
            outcome = ANSWERED if verb in COMPLETES else TRANSFERRED
            return [self.call_event(stint, outcome, at, talk)]  # answered: no callback to ask for
        if verb in EXITS:
            outcome, index = EXITS[verb]
            wait = _seconds(record, index, "waittime")
            stint = self._stint(record, wait)
            stint.wait = wait
            return self._end(key, stint, outcome, at, None)
        if verb in DROPS:
            stint = self._stint(record, 0.0)
            outcome = ANSWERED if stint.answered is not None else CallOutcome.UNKNOWN
            return self._end(key, stint, outcome, at, None)
        self.unknown_verbs[verb[:40]] += 1
        return []

    def entered(self, callid: str, queue: str, at: float, caller: str | None) -> Stint:
        """The stint of a caller who entered a queue. One of our own extensions is staff
        testing the queue: counted, followed to its end (so its lines are not taken for a call
        whose start was not read) and never measured, as a call already emitted is."""
        stint = Stint(callid, queue, at, caller)
        if caller is not None and self.is_staff(caller):
            self.staff += 1
            stint.final = stint.shown = True
        return stint

    def _implausible(self, at: float) -> str:
        if self.window is None or not -1e11 < at < 1e11:
            return "the time is out of range"
        return self.window.reason(datetime.fromtimestamp(at, UTC))

    def _answered_times(self, record: Record, verb: str) -> tuple[float, float]:
        if verb == "ATTENDEDTRANSFER":
            # method | method data (1 or 2 fields) | holdtime | calltime | origpos
            data = record.data
            while data and not data[-1].strip():
                data = data[:-1]
            if len(data) < 4:
                raise RowError(f"{verb} has {len(data)} data fields, expected at least 4")
            return _number(data[-3], verb, "holdtime"), _number(data[-2], verb, "calltime")
        first = 2 if verb in TRANSFERS else 0  # exten | context | holdtime | calltime
        return _seconds(record, first, "holdtime"), _seconds(record, first + 1, "calltime")

    def _stint(self, record: Record, elapsed: float) -> Stint:
        stint = self.open.get((record.callid, record.queue))
        if stint is None:  # its ENTERQUEUE is before what we read
            stint = Stint(record.callid, record.queue, record.at - elapsed, None)
            self.open[(record.callid, record.queue)] = stint
        return stint

    def _end(
        self,
        key: tuple[str, str],
        stint: Stint,
        outcome: CallOutcome,
        left: float,
        talk: float | None,
    ) -> list[Event]:
        del self.open[key]
        if stint.final:
            return []
        return self.finish(stint, outcome, left, talk)

    def finish(
        self, stint: Stint, outcome: CallOutcome, left: float | None, talk: float | None
    ) -> list[Event]:
        events: list[Event] = [self.call_event(stint, outcome, left, talk)]
        if outcome not in CALLBACK_OUTCOMES or left is None:
            return events
        return events + callback_request(stint.key, stint.caller, _utc(left), call=stint.key)

    def call_event(
        self, stint: Stint, outcome: CallOutcome, left: float | None, talk: float | None
    ) -> CallEvent:
        wait = stint.wait
        if outcome is WAITING or (outcome is CallOutcome.UNKNOWN and wait is None):
            wait = None
        answered = stint.answered
        agent = stint.agent if answered is not None else None
        fields = (
            f"{stint.callid}@{stint.queue}@{int(stint.entered)}",  # stint.key, without a call
            stint.queue,
            stint.entered,
            outcome,
            answered,
            left,
            None if wait is None else (wait if wait > 0.0 else 0.0),
            talk,
            stint.caller,
        )
        if outcome is CallOutcome.EXIT_EMPTY:
            # The queue let the caller out because nobody could take the call (leavewhenempty).
            return _from_epochs(*fields, False, agent, f"{stint.queue} (EXITEMPTY)")
        return finished_call(*fields, agent)

    def give_up(self, key: tuple[str, str], seen: float) -> list[Event]:
        """Finish a stint whose end was never read: answered if connected, else `unknown`,
        its wait the time it was last seen waiting (`seen`): a wait of at least that, which
        the measurements leave out of every wait figure and a report may show as such."""
        stint = self.open.pop(key, None)
        if stint is None or stint.final:
            return []
        if stint.answered is not None:
            return self.finish(stint, CallOutcome.ANSWERED, None, None)
        stint.wait = max(0.0, seen - stint.entered)
        return self.finish(stint, CallOutcome.UNKNOWN, None, None)

    # -- the end of a read -----------------------------------------------------------------

    def skipped(self) -> dict[str, int]:
        """The lines left out so far, per reason (for the poll's last batch), and reset."""
        counts = {
            "agent, member and system lines": self.ignored,
            "lines of verbs not measured": sum(self.unknown_verbs.values()),
            "lines of verbs set to ignore (verbs:)": self.ignored_verbs,
            OUTBOUND_SKIPPED: self.outbound,
            STAFF_SKIPPED: self.staff,
        }
        self.ignored = self.ignored_verbs = self.outbound = self.staff = 0
        self.unknown_verbs.clear()
        return {reason: n for reason, n in counts.items() if n}

    def expire(self, now: float | None) -> list[Event]:
        """Give up (as unknown) the stints with no end `unknown_after` after they entered, by
        the newest record read or `now`; also the oldest beyond MAX_TRACKED."""
        horizon = max(t for t in (now, self.latest, float("-inf")) if t is not None)
        events: list[Event] = []
        stale = [k for k, s in self.open.items() if s.entered + self.unknown_after <= horizon]
        excess = len(self.open) - len(stale) - MAX_TRACKED
        if excess > 0:
            given_up = set(stale)
            rest = sorted((s.entered, k) for k, s in self.open.items() if k not in given_up)
            stale += [k for _, k in rest[:excess]]
        for key in stale:
            # Last seen waiting: by a poll that showed it waiting (up to now), else only up to
            # the file's newest record (a dump that ends years ago says nothing of the years).
            shown = self.open[key].shown
            events.extend(self.give_up(key, horizon if shown else (self.latest or horizon)))
        return events

    def waiting(self) -> list[Event]:
        """The callers still in the queue, each emitted (as WAITING) once."""
        events: list[Event] = []
        for stint in self.open.values():
            if stint.answered is None and not stint.shown:
                stint.shown = True
                events.append(self.call_event(stint, WAITING, None, None))
        return events


def answerer(member: str) -> str | None:
    """Who answered, from a CONNECT or COMPLETE line's agent field: the queue member
    (`PJSIP/1001`, `Agent/1001`, or the member name the queue gives it); None for `NONE` or
    nothing. The field is written by the PBX (no outsider's text), as is: this runs for every
    answered call of an import."""
    return member if member and member != "NONE" else None


def _seconds(record: Record, index: int, name: str) -> float:
    data = record.data
    value = data[index] if index < len(data) else ""
    try:
        number = float(value)
    except ValueError:
        if not value.strip():
            raise RowError(f"{record.event} has no {name} (data{index + 1})") from None
        raise RowError(f"{record.event} {name} is not a number") from None
    if not 0 <= number < 10**8:
        raise RowError(f"{record.event} {name} is out of range")
    return number


def _number(value: str, verb: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise RowError(f"{verb} {name} is not a number") from None
    if not 0 <= number < 10**8:
        raise RowError(f"{verb} {name} is out of range")
    return number


def _nobody(caller: str) -> bool:
    return False


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


_from_epochs = CallEvent.from_epochs
