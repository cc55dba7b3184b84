"""Repeat callers: what batches store for a caller's callback conversation equals the inquiries
of every call from the number, paired from scratch.

A batch derives a new conversation from the messages at hand and rebuilds a stored one from the
store (its missed calls, and the answered calls from its number that got the caller through),
with a quicker pairing for such plain messages: whatever the calls, their numbers and the
order the batches are stored in, the inquiries must be those a recount of all calls gives.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from monitor.config import ResolvedTargets
from monitor.config_file import settings_from_mapping
from monitor.measure.events import (
    GOT_THROUGH_PREFIX,
    CallEvent,
    CallOutcome,
    Event,
    callback_conversation,
    callback_request,
)
from monitor.measure.inquiries import derive
from monitor.store.batches import Measuring, StoredMessage, measuring, store_batch
from monitor.store.batches import prepare as prepare_batch
from monitor.store.database import make_engine, prepare
from monitor.store.tables import CALLS, INQUIRIES, MESSAGES, QUEUE_NAMES, TALLIES

T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
NUMBERS = ("+44 20 7946 0001", "020 7946 0002", "442079460003")


# A call: (number, minutes after the one before, answered?, wait in seconds, a new batch here?)
_CALL = st.tuples(
    st.sampled_from(range(len(NUMBERS))),
    st.integers(min_value=0, max_value=90),
    st.booleans(),
    st.integers(min_value=0, max_value=600),
    st.booleans(),
)


def calls_of(script: list[tuple[int, int, bool, int, bool]]) -> list[list[CallEvent]]:
    """The calls in batches, in time order."""
    outcomes = {True: CallOutcome.ANSWERED, False: CallOutcome.ABANDONED}
    return any_calls_of([(n, gap, outcomes[answered], w, s) for n, gap, answered, w, s in script])


def events_of(calls: list[CallEvent]) -> list[Event]:
    """A batch as a queue_log source gives it: each call, and a callback request for each
    unanswered one."""
    events: list[Event] = []
    for call in calls:
        events.append(call)
        if call.outcome is CallOutcome.ABANDONED:
            left = call.left_at
            assert left is not None
            events.extend(
                callback_request(call.external_id, call.caller, left, call=call.external_id)
            )
    return events


def queue_site(
    folder: str, name: str, targets: dict[str, str], **source: object
) -> tuple[Engine, Measuring]:
    """A new SQLite store in `folder` and what storing a queue_log source's batches needs
    (`source`: more of the source's settings)."""
    queue = {"name": "queue", "kind": "asterisk_queue_log", "path": "q.log", **source}
    site = settings_from_mapping({"targets": targets, "sources": [queue]}, Path(folder))
    engine = make_engine(f"sqlite:///{folder}/{name}.db")
    prepare(engine)
    return engine, measuring(site, site.sources[0])


def plain(external_id: str, at: datetime, side: str) -> StoredMessage:
    """A call as the message pairing reads: a missed call's request, an answer's callback."""
    return StoredMessage(
        external_id, "", at, side, "message", False, False, "voicemail", None, None, None
    )


def expected(calls: list[CallEvent], targets: ResolvedTargets) -> set[tuple[object, ...]]:
    """The inquiries of every callback conversation: its missed calls opening, every answered
    call from the number closing, paired from scratch."""
    by_conversation: dict[str, list[StoredMessage]] = {}
    for call in sorted(calls, key=lambda c: c.entered_at):
        conversation = callback_conversation(call.caller)
        assert conversation is not None
        messages = by_conversation.setdefault(conversation, [])
        if call.outcome is CallOutcome.ANSWERED:
            answered = call.answered_at
            assert answered is not None
            messages.append(
                plain(f"{GOT_THROUGH_PREFIX}queue/{call.external_id}", answered, "agent")
            )
        else:
            assert call.left_at is not None
            messages.append(plain(f"missed:{call.external_id}", call.left_at, "customer"))
    found: set[tuple[object, ...]] = set()
    for conversation, messages in by_conversation.items():
        if any(m.side == "customer" for m in messages):
            for i in derive(conversation, messages, targets, None):
                found.add((conversation, i.opened_by, i.kind, i.status, i.closed_at, i.closed_by))
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(_CALL, min_size=1, max_size=14), order=st.randoms(use_true_random=False))
def test_a_repeat_callers_inquiries_are_those_of_every_call_whatever_the_batches(
    script: list[tuple[int, int, bool, int, bool]], order: object
) -> None:
    batches = calls_of(script)
    shuffled = list(batches)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as folder:
        engine, ctx = queue_site(folder, "store", {})
        for calls in shuffled:
            with engine.begin() as conn:
                store_batch(conn, ctx, events_of(calls))
        with engine.connect() as conn:
            stored = {
                (r.conversation, r.opened_by, r.kind, r.status, r.closed_at, r.closed_by)
                for r in conn.execute(select(INQUIRIES))
            }
        engine.dispose()
    assert stored == expected([c for calls in batches for c in calls], ctx.targets)


# A call for the prepared path: (number or withheld, minutes after the one before, outcome,
# wait in seconds, a new batch here?)
_OUTCOMES = (
    CallOutcome.ANSWERED,
    CallOutcome.TRANSFERRED,
    CallOutcome.ABANDONED,
    CallOutcome.TIMEOUT,
)
_ANY_CALL = st.tuples(
    st.sampled_from([*range(len(NUMBERS)), None]),
    st.integers(min_value=0, max_value=90),
    st.sampled_from(_OUTCOMES),
    st.integers(min_value=0, max_value=30) | st.integers(min_value=0, max_value=600),
    st.booleans(),
)


def any_calls_of(
    script: list[tuple[int | None, int, CallOutcome, int, bool]],
) -> list[list[CallEvent]]:
    """The calls in batches, in time order: answered, transferred, abandoned (some of them
    short abandons) or timed out, from three numbers or a withheld one."""
    batches: list[list[CallEvent]] = [[]]
    at = T0
    for index, (number, minutes, outcome, wait, split) in enumerate(script):
        at += timedelta(minutes=minutes)
        if split and batches[-1]:
            batches.append([])
        # No two calls' moments are equal (a microsecond apart at least): pairing keeps equal
        # times in the order stored, which batches stored out of order change.
        end = at + timedelta(seconds=wait, microseconds=index)
        answered = outcome in (CallOutcome.ANSWERED, CallOutcome.TRANSFERRED)
        batches[-1].append(
            CallEvent(
                f"call{index}",
                "support",
                at,
                outcome,
                answered_at=end if answered else None,
                left_at=end + timedelta(minutes=3) if answered else end,
                wait_seconds=float(wait),
                talk_seconds=180.0 if answered else None,
                caller=None if number is None else NUMBERS[number],
            )
        )
    return batches


def missed_events_of(calls: list[CallEvent]) -> list[Event]:
    """A batch as a queue_log source gives it: each call, and a callback request for each
    one no person took."""
    events: list[Event] = []
    for call in calls:
        events.append(call)
        if call.outcome in (CallOutcome.ABANDONED, CallOutcome.TIMEOUT):
            left = call.left_at
            assert left is not None
            events.extend(
                callback_request(call.external_id, call.caller, left, call=call.external_id)
            )
    return events


def store_all(
    folder: str, name: str, batches: list[list[Event]], prepared: bool, **source: object
) -> Any:
    """Every table's rows (ids aside) after storing `batches` one by one, each as it is read
    inline (the general path) or as prepared in a reading process (`prepare`)."""
    engine, ctx = queue_site(folder, name, {"short_abandon": "20s"}, **source)
    for events in batches:
        with engine.begin() as conn:
            if prepared:
                rest, ready = prepare_batch(ctx, events)
                store_batch(conn, ctx, rest, ready)
            else:
                store_batch(conn, ctx, events)
    with engine.connect() as conn:
        tables = {
            t.name: sorted((tuple(r)[1:] for r in conn.execute(select(t))), key=repr)
            for t in (CALLS, MESSAGES, INQUIRIES, TALLIES, QUEUE_NAMES)
        }
    engine.dispose()
    return tables


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=st.lists(_ANY_CALL, min_size=1, max_size=16),
    order=st.randoms(use_true_random=False),
    shuffle=st.booleans(),
)
def test_a_batch_prepared_in_the_reading_process_stores_what_the_general_path_stores(
    script: list[tuple[int | None, int, CallOutcome, int, bool]], order: object, shuffle: bool
) -> None:
    """The callback requests as rows made by the reader, new callers' inquiries made there, and
    repeat callers' pairing going on from their stored inquiries when their new calls come
    after all they stored (else measured again from the store): the same rows and tallies as
    storing the events themselves, whatever the calls, batches and their order."""
    batches = [missed_events_of(calls) for calls in any_calls_of(script)]
    if shuffle:
        order.shuffle(batches)  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as folder:
        general = store_all(folder, "general", batches, prepared=False)
        prepared = store_all(folder, "prepared", batches, prepared=True)
    assert prepared == general


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=st.lists(_ANY_CALL, min_size=1, max_size=12),
    queues=st.lists(st.sampled_from(("support", "sales", "billing")), min_size=12, max_size=12),
    twice=st.booleans(),
    again=st.booleans(),
)
def test_calls_prepared_with_their_keys_and_tallies_store_what_the_general_path_stores(
    script: list[tuple[int | None, int, CallOutcome, int, bool]],
    queues: list[str],
    twice: bool,
    again: bool,
) -> None:
    """The callers' keys and the calls' tallies `prepare` makes in the reading process are
    what storing the calls makes of them, and are not taken where they would differ: queues
    beyond `max_queues` counted as `other`, a call twice in a batch, a batch read again."""
    calls = [
        [call._replace(queue=queues[int(call.external_id[4:])]) for call in batch]
        for batch in any_calls_of(script)
    ]
    if twice:
        calls[0].append(calls[0][0])
    batches = [missed_events_of(batch) for batch in calls]
    if again:
        batches.append(batches[0])
    with tempfile.TemporaryDirectory() as folder:
        general = store_all(folder, "general", batches, prepared=False, max_queues=1)
        prepared = store_all(folder, "prepared", batches, prepared=True, max_queues=1)
    assert prepared == general


def test_a_repeat_callers_call_stored_after_a_later_one_is_measured_again_from_the_store() -> None:
    """A missed call read after the answered call that came minutes later (the log's lines out
    of order): the answer closes the callback request it follows, as a recount pairs them,
    though the request is the newest row."""
    missed, answered = any_calls_of(
        [(0, 0, CallOutcome.ABANDONED, 120, False), (0, 5, CallOutcome.ANSWERED, 30, True)]
    )
    batches = [missed_events_of(answered), missed_events_of(missed)]
    with tempfile.TemporaryDirectory() as folder:
        general = store_all(folder, "general", batches, prepared=False)
        prepared = store_all(folder, "prepared", batches, prepared=True)
    assert prepared == general
    assert [r[4] for r in prepared["inquiry"]] == ["answered"]
