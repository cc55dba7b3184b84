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

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

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
from monitor.store.batches import StoredMessage, measuring, store_batch
from monitor.store.database import make_engine, prepare
from monitor.store.tables import INQUIRIES

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
    batches: list[list[CallEvent]] = [[]]
    at = T0
    for index, (number, minutes, answered, wait, split) in enumerate(script):
        at += timedelta(minutes=minutes)
        if split and batches[-1]:
            batches.append([])
        # No two calls' moments are equal (a microsecond apart at least): pairing keeps equal
        # times in the order stored, which batches stored out of order change.
        end = at + timedelta(seconds=wait, microseconds=index)
        batches[-1].append(
            CallEvent(
                f"call{index}",
                "support",
                at,
                CallOutcome.ANSWERED if answered else CallOutcome.ABANDONED,
                answered_at=end if answered else None,
                left_at=end + timedelta(minutes=3) if answered else end,
                wait_seconds=float(wait),
                talk_seconds=180.0 if answered else None,
                caller=NUMBERS[number],
            )
        )
    return batches


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
        site = settings_from_mapping(
            {"sources": [{"name": "queue", "kind": "asterisk_queue_log", "path": "q.log"}]},
            Path(folder),
        )
        engine = make_engine(f"sqlite:///{folder}/store.db")
        prepare(engine)
        ctx = measuring(site, site.sources[0])
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
