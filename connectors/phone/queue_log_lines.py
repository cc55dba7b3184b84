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
from datetime import UTC, datetime
from functools import cache

from connectors.base import Records
from connectors.csv_rows import RowError
from connectors.phone.queue_log_calls import (
    ANSWERED,
    COMPLETES,
    EXITS,
    NOT_CALLS,
    SYSTEM_CALLIDS,
    TRANSFERRED,
    Calls,
    Record,
    Stint,
)
from monitor.measure.events import (
    MAX_KEY,
    MAX_TEXT,
    CallEvent,
    CallOutcome,
    Channel,
    Event,
    MessageEvent,
    MessageKind,
    Side,
    callback_conversation,
    callback_request,
    finished_call,
    slot_maker,
)

# A callback request's MessageEvent made from its values, as callback_request makes it, without
# its constructor's checks (the fused loop has made each value storable).
_request = slot_maker(MessageEvent)

# What bytes.strip() strips: a line of only these is blank (str.strip() would strip more).
_BLANK = " \t\n\r\x0b\x0c"
_new_record = tuple.__new__  # Record(...) without a Python call: _new_record(Record, (...))

EXIT_EMPTY = CallOutcome.EXIT_EMPTY
CUSTOMER, MESSAGE, VOICEMAIL = Side.CUSTOMER, MessageKind.MESSAGE, Channel.VOICEMAIL
_NAMES = 1000  # queue and member names kept as one object each (`feed_texts`), at most
# The longest call id whose callback request's id ("missed:" + it) is still a storable key.
_CALL_ID_LIMIT = MAX_KEY - len("missed:")
_SKIP, _ENTER, _CONNECT, _COMPLETE, _TRANSFER, _ATTENDED, _EXIT = range(7)
# The verbs that end a stay unanswered, from _EXIT on: (outcome, index of the wait field).
_EXIT_RULES = [(outcome, 5 + index) for outcome, index in EXITS.values()]
# Verbs exactly as Asterisk writes them -> what the fused loop does with the line.
_FUSED = {
    **dict.fromkeys(NOT_CALLS, _SKIP),
    "ENTERQUEUE": _ENTER,
    "CONNECT": _CONNECT,
    **dict.fromkeys(COMPLETES, _COMPLETE),
    "BLINDTRANSFER": _TRANSFER,
    "TRANSFER": _TRANSFER,
    "ATTENDEDTRANSFER": _ATTENDED,
    **{verb: _EXIT + number for number, verb in enumerate(EXITS)},
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
    one is simply given to the general path, `records.take`, which says why. The events made
    here carry only times checked so (the line's, and those of stints whose lines passed), so
    they need no second look at the window."""
    table = fused_verbs(calls.verbs) if calls.verbs else _FUSED
    open_, fused, system = calls.open, table.get, SYSTEM_CALLIDS
    call, finish, is_staff = calls.call_event, calls.finish, calls.is_staff
    long_outside = calls.long_numbers_outside
    add, events = records.events.append, records.events
    made, moment, new_call = finished_call, datetime.fromtimestamp, tuple.__new__
    earliest, latest_plausible = calls.earliest, calls.latest_plausible

    ignored = 0  # agent, member and system lines: counted once, at the end
    taken = 0  # lines given to the general path, which counts them in `records` itself

    # One object per queue and member name in the calls made here (the first of each, up to
    # _NAMES): pickled once per batch instead of once per call on the way to the storing
    # process, which then unpickles one string instead of one per call.
    names = calls.names

    def named(name: str) -> str:
        if len(names) < _NAMES:
            names[name] = name
        return name

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
        key = (callid, queue)
        if kind == _ENTER:
            latest = calls.latest
            if latest is None or at > latest:
                calls.latest = at
            if key in open_:  # entered again with no end
                records.add(calls.give_up(key, at))
            caller = (fields[6].strip() if len(fields) > 6 else "") or None
            new = open_[key] = Stint(callid, queue, at, caller)
            if (  # as `Calls.entered`; a long number is nobody's extension by default
                caller is not None
                and not (
                    long_outside and (caller[0] == "+" or (len(caller) > 6 and caller.isdecimal()))
                )
                and is_staff(caller)
            ):
                calls.staff += 1
                new.final = new.shown = True
            continue
        stint = open_.get(key)
        if kind >= _EXIT:  # ABANDON, EXITWITHTIMEOUT, EXITEMPTY, WITHDRAW, EXITWITHKEY
            outcome, field = _EXIT_RULES[kind - _EXIT]
            try:
                wait = float(fields[field])
            except (ValueError, IndexError):
                wait = -1.0
            # Without its ENTERQUEUE read, the call entered `wait` before this line. A stint
            # the general path opened (a lower-case `connect` whose wait reaches before the
            # earliest time) or a cursor kept may hold times the window refuses: the general
            # path then rejects the line whose call would carry them.
            if not 0.0 <= wait < 100_000_000.0 or (
                at - wait < earliest
                if stint is None
                else stint.entered < earliest
                or (
                    stint.answered is not None
                    and not earliest <= stint.answered <= latest_plausible
                )
            ):
                general(index, text)  # the general path says what is wrong
                continue
            latest = calls.latest
            if latest is None or at > latest:
                calls.latest = at
            if stint is None:  # its ENTERQUEUE is before what we read
                stint = Stint(callid, queue, at - wait, None)
            else:
                del open_[key]
            stint.wait = wait
            if stint.final:
                continue
            if outcome is EXIT_EMPTY:  # a few a day: its `ended_by` is made by the general way
                events += finish(stint, outcome, at, None)
                continue
            # What `calls.finish` makes of it (the call, and its callback request), written out:
            # when every text is storable as it is (ASCII without NUL, none over its limit, the
            # request's "missed:" id included), both are made here as `finished_call` and
            # `callback_request` would make them, without their calls and second checks.
            answered, began, caller = stint.answered, stint.entered, stint.caller
            agent = stint.agent if answered is not None else None
            call_id = f"{callid}@{queue}@{int(began)}"
            queue = names.get(queue) or named(queue)
            if agent is not None:
                agent = names.get(agent) or named(agent)
            texts_of = f"{call_id}{queue}{caller or ''}{agent or ''}"
            if not (
                len(call_id) <= _CALL_ID_LIMIT
                and len(queue) <= MAX_KEY
                and (caller is None or len(caller) <= MAX_TEXT)
                and (agent is None or len(agent) <= MAX_TEXT)
                and texts_of.isascii()
                and "\x00" not in texts_of
            ):
                wait = wait if wait > 0.0 else 0.0
                add(made(call_id, queue, began, outcome, answered, at, wait, None, caller, agent))
                if caller is not None:
                    events += callback_request(call_id, caller, moment(at, UTC), call=call_id)
                continue
            add(
                new_call(
                    CallEvent,
                    (
                        call_id, queue, round(began * 1_000_000),
                        None if answered is None else round(answered * 1_000_000),
                        round(at * 1_000_000), wait if wait > 0.0 else 0.0, None, outcome,
                        caller, False, agent, None,
                    ),
                )
            )  # fmt: skip
            if caller is not None and (conversation := callback_conversation(caller)):
                add(
                    _request(
                        f"missed:{call_id}", conversation, moment(at, UTC), CUSTOMER,
                        MESSAGE, False, False, VOICEMAIL, caller, None, None, (call_id,),
                        None, None,
                    )
                )  # fmt: skip
            continue
        # CONNECT (holdtime), COMPLETECALLER/COMPLETEAGENT (holdtime | calltime), a transfer
        # (exten | context | holdtime | calltime; ATTENDEDTRANSFER's counted from the right).
        try:
            if kind == _COMPLETE:
                wait, talk = float(fields[5]), float(fields[6])
            elif kind == _CONNECT:
                wait, talk = float(fields[5]), 0.0
            elif kind == _TRANSFER:
                wait, talk = float(fields[7]), float(fields[8])
            else:
                end = len(fields)
                while end > 5 and not fields[end - 1].strip():
                    end -= 1
                if end < 9:  # fewer than 4 data fields
                    raise IndexError
                wait, talk = float(fields[end - 3]), float(fields[end - 2])
        except (ValueError, IndexError):
            wait = talk = -1.0
        if not (0.0 <= wait < 100_000_000.0 and 0.0 <= talk < 100_000_000.0):
            general(index, text)  # the general path says which field is wrong
            continue
        # Without its ENTERQUEUE read the call entered `wait` (+ `talk`) before this line, and a
        # call that ends without a CONNECT read was answered `wait` after it entered: the times
        # a line implies must be plausible too, or the general path rejects it with the reason;
        # so must the times a stint holds (as above) when this line makes its call.
        if stint is None:
            if at - (wait if kind == _CONNECT else wait + talk) < earliest:
                general(index, text)
                continue
        elif (kind != _CONNECT or (stint.shown and not stint.final)) and (
            stint.entered < earliest
            or (
                not earliest <= stint.answered <= latest_plausible
                if stint.answered is not None
                else kind != _CONNECT and stint.entered + wait > latest_plausible
            )
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
                member = fields[3].strip()  # as `answerer`
                stint.agent = member if member and member != "NONE" else None
            if stint.shown and not stint.final:
                stint.final = True  # shown waiting: it must stop looking like it is on hold
                add(call(stint, ANSWERED, None, None))
            continue
        if stint is None:
            stint = Stint(callid, queue, at - (wait + talk), None)
        else:
            del open_[key]
        if stint.answered is None:  # no CONNECT read: answered when the wait ended
            stint.answered, stint.wait = stint.entered + wait, wait
        if stint.agent is None:
            member = fields[3].strip()  # as `answerer`
            stint.agent = member if member and member != "NONE" else None
        if not stint.final:  # what `calls.call_event` makes of it, written out
            began, waited, caller, agent = stint.entered, stint.wait, stint.caller, stint.agent
            call_id = f"{callid}@{queue}@{int(began)}"
            queue = names.get(queue) or named(queue)
            if agent is not None:
                agent = names.get(agent) or named(agent)
            outcome = ANSWERED if kind == _COMPLETE else TRANSFERRED
            texts_of = f"{call_id}{queue}{caller or ''}{agent or ''}"
            if (  # as `finished_call` makes it, without its call (see the exits above)
                waited is not None
                and len(call_id) <= MAX_KEY
                and len(queue) <= MAX_KEY
                and (caller is None or len(caller) <= MAX_TEXT)
                and (agent is None or len(agent) <= MAX_TEXT)
                and texts_of.isascii()
                and "\x00" not in texts_of
            ):
                add(
                    new_call(
                        CallEvent,
                        (
                            call_id, queue, round(began * 1_000_000),
                            round(stint.answered * 1_000_000), round(at * 1_000_000),
                            waited if waited > 0.0 else 0.0, talk, outcome, caller, False,
                            agent, None,
                        ),
                    )
                )  # fmt: skip
                continue
            add(
                made(
                    call_id,
                    queue,
                    began,
                    outcome,
                    stint.answered,
                    at,
                    None if waited is None else (waited if waited > 0.0 else 0.0),
                    talk,
                    caller,
                    agent,
                )
            )
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
