"""The flat queue_log's hot loop: lines of text straight into `Calls`, the common ones fused.

An import reads millions of lines, and for each the general path makes a `Record`
(`parse_text`) and hands it to `Calls.feed`, which looks at the verb again. Most lines of a
busy log are one of a few verbs, written exactly as Asterisk writes them (upper case, no
padding): ringing and agent lines that are skipped, and each call's ENTERQUEUE, CONNECT and
COMPLETECALLER/COMPLETEAGENT. `feed_texts` handles those in one step, with the same checks and
the same effect on `Calls` as `parse_text` + `Calls.feed`; every other line (other verbs, any
padding or lower case, a field that does not parse) takes that general path, which also gives
the located reason of a malformed line. A test holds both paths equal on mixed lines. A source's
`verbs:` takes the verbs it names out of the fused table (a skipped verb given a meaning is read)
and adds those it maps to a fused verb.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from functools import cache

from connectors.base import Records
from connectors.csv_rows import RowError
from connectors.phone.queue_log_calls import (
    ANSWERED,
    COMPLETES,
    NOT_CALLS,
    SYSTEM_CALLIDS,
    Calls,
    Record,
    Stint,
    answerer,
)
from monitor.measure.events import Event

# What bytes.strip() strips: a line of only these is blank (str.strip() would strip more).
_BLANK = " \t\n\r\x0b\x0c"
_new_record = tuple.__new__  # Record(...) without a Python call: _new_record(Record, (...))

_SKIP, _ENTER, _CONNECT, _COMPLETE = range(4)
# Verbs exactly as Asterisk writes them -> what the fused loop does with the line.
_FUSED = {
    **dict.fromkeys(NOT_CALLS, _SKIP),
    "ENTERQUEUE": _ENTER,
    "CONNECT": _CONNECT,
    **dict.fromkeys(COMPLETES, _COMPLETE),
}


def fused_verbs(verbs: Mapping[str, str]) -> dict[str, int]:
    """The fused table for a source's `verbs:` (custom verb -> meaning, upper case)."""
    return _fused_verbs(frozenset(verbs.items()))


@cache
def _fused_verbs(verbs: frozenset[tuple[str, str]]) -> dict[str, int]:
    table = {verb: kind for verb, kind in _FUSED.items() if verb not in dict(verbs)}
    table.update({verb: _FUSED[meaning] for verb, meaning in verbs if meaning in _FUSED})
    return table


def parse_text(text: str, not_calls: Collection[str] = NOT_CALLS) -> Record | None:
    """One flat-file line, decoded and free of NUL bytes; None for a blank line or one that is
    not about a call (a verb in `not_calls`); RowError (the reason) when malformed."""
    fields = text.split("|")
    if len(fields) < 5:
        if not text.strip(_BLANK):
            return None  # a blank line (it has no "|": looked at only here)
        raise RowError(f"expected at least 5 |-separated fields, got {len(fields)}")
    try:
        at = float(fields[0])
    except ValueError:
        raise RowError("the epoch (field 1) is not a number") from None
    if not 0 < at < 10**11:
        raise RowError("the epoch (field 1) is out of range")
    callid, event = fields[1].strip(), fields[4].strip()
    if not callid or not event:
        raise RowError("missing callid" if not callid else "missing event")
    if event in not_calls:
        return None  # a third of a busy log (RINGNOANSWER, PAUSE...): skip it cheaply
    queue = fields[2].strip() or "NONE"
    return _new_record(Record, (at, callid, queue, fields[3].strip(), event, fields[5:]))


def feed_texts(
    calls: Calls,
    texts: list[str],
    location: Callable[[int], str],
    records: Records,
) -> None:
    """`parse_text` and `calls.feed` for each of `texts` (decoded lines, no NUL bytes): the
    events go to `records`, a malformed or implausible line is rejected at `location(index)`.

    Written out in one function on purpose: a call, a tuple or a second look at the verb per
    line is a tenth of an import's time. A fused line changes `calls` only once it has passed
    every check (its time and the times it implies plausible among them), so a line that fails
    one is simply given to the general path, `records.take`."""
    table = fused_verbs(calls.verbs) if calls.verbs else _FUSED
    open_, call, fused, system = calls.open, calls.call_event, table.get, SYSTEM_CALLIDS
    add = records.events.append
    earliest, latest_plausible = calls.earliest, calls.latest_plausible

    ignored = 0  # agent, member and system lines: counted once, at the end
    taken = 0  # lines given to the general path, which counts them in `records` itself

    def general(index: int, text: str) -> None:
        nonlocal taken
        taken += 1
        records.take(location(index), feed_text, calls, text)

    for index, text in enumerate(texts):
        fields = text.split("|")
        if len(fields) < 5 or (kind := fused(fields[4])) is None:
            general(index, text)
            continue
        try:
            at = float(fields[0])
        except ValueError:
            general(index, text)
            continue
        callid = fields[1].strip()
        if not earliest <= at <= latest_plausible or not callid:
            general(index, text)
            continue
        # A system callid (NONE, REALTIME...) starts with a letter: a callid starting with a
        # digit (Asterisk's uniqueid, nearly every line) needs no upper-cased copy to tell.
        if kind == _SKIP or (callid[0] > "9" and callid.upper() in system):
            ignored += 1
            continue
        queue = fields[2].strip() or "NONE"
        if kind == _ENTER:
            latest = calls.latest
            if latest is None or at > latest:
                calls.latest = at
            key = (callid, queue)
            if key in open_:  # entered again with no end
                records.add(calls.give_up(key, at))
            caller = (fields[6].strip() if len(fields) > 6 else "") or None
            open_[key] = calls.entered(callid, queue, at, caller)
            continue
        # CONNECT (holdtime) or COMPLETECALLER/COMPLETEAGENT (holdtime | calltime).
        try:
            wait = float(fields[5])
            talk = float(fields[6]) if kind == _COMPLETE else 0.0
        except (ValueError, IndexError):
            wait = talk = -1.0
        if not (0.0 <= wait < 100_000_000.0 and 0.0 <= talk < 100_000_000.0):
            general(index, text)  # the general path says which field is wrong
            continue
        key = (callid, queue)
        stint = open_.get(key)
        # Without its ENTERQUEUE read the call entered `wait` (+ `talk`) before this line, and a
        # call completed without a CONNECT read was answered `wait` after it entered: the times
        # a line implies must be plausible too, or the general path rejects it with the reason.
        if stint is None:
            if at - (wait if kind == _CONNECT else wait + talk) < earliest:
                general(index, text)
                continue
        elif (
            kind == _COMPLETE and stint.answered is None and stint.entered + wait > latest_plausible
        ):
            general(index, text)
            continue
        latest = calls.latest
        if latest is None or at > latest:
            calls.latest = at
        if kind == _CONNECT:
            if stint is None:  # its ENTERQUEUE is before what we read
                stint = open_[key] = Stint(callid, queue, at - wait, None)
            if stint.answered is None:
                stint.answered, stint.wait = at, wait
                stint.agent = answerer(fields[3].strip())
            if stint.shown and not stint.final:
                stint.final = True  # shown waiting: it must stop looking like it is on hold
                add(call(stint, ANSWERED, None, None))
            continue
        stint = open_.pop(key, None) or Stint(callid, queue, at - (wait + talk), None)
        if stint.answered is None:  # no CONNECT read: answered when the wait ended
            stint.answered, stint.wait = stint.entered + wait, wait
        if stint.agent is None:
            stint.agent = answerer(fields[3].strip())
        if not stint.final:
            add(call(stint, ANSWERED, at, talk))
    calls.ignored += ignored
    records.read += len(texts) - taken - ignored  # the lines fed here, as `take` counts them


def feed_text(calls: Calls, text: str) -> list[Event]:
    """The events one decoded line makes (`parse_text` then `calls.feed`); an agent, member or
    system line is counted in `calls.ignored`."""
    record = parse_text(text, calls.not_calls)
    if record is None:
        if text.strip(_BLANK):
            calls.ignored += 1
        return []
    return calls.feed(record)
