"""The shortcuts that make calls and callback messages for less give what the constructors give.

`finished_call` sets a call's fields directly when nothing needs making storable, and a callback
request or an outbound call (`callback_request`, `callback_made`) skips `MessageEvent`'s checks
in the same case; on any input (generated here: ASCII and not, NUL bytes, lone surrogates, texts
over the limits, naive and zoned times) each must equal what the constructors make, type and all,
or fail as they fail.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.measure.events import (
    CallEvent,
    CallOutcome,
    Channel,
    MessageEvent,
    Side,
    callback_conversation,
    callback_made,
    callback_request,
    finished_call,
)

PROPERTY = settings(max_examples=300, deadline=None)
# Texts as a phone log may hold them: plain, hostile, and just over or under a limit.
TEXTS = st.one_of(
    st.sampled_from(["1763715608.1", "sales", "PJSIP/202", "+4477008034246", "02079460001"]),
    st.sampled_from(["", " ", "é", "\x00", "\ud800", "a\x00b", "x" * 254, "x" * 255, "x" * 256]),
    st.text(max_size=300),
)
NUMBERS = st.one_of(
    st.sampled_from(["+4477008034246", "02079460001", "0044 20 7946 0958", "anonymous", "1001"]),
    st.sampled_from(["0207946000\x00", "02079460001é", "+44" + "1" * 300, "0" * 12]),
    st.text(alphabet="+0123456789 \x00é", max_size=20),
)
EPOCHS = st.floats(min_value=1.0, max_value=1e10, allow_nan=False)
WAITS = st.none() | st.floats(min_value=-1.0, max_value=1e8, allow_nan=False)


@PROPERTY
@given(
    texts=st.tuples(TEXTS, TEXTS, st.none() | TEXTS, st.none() | TEXTS),
    outcome=st.sampled_from(CallOutcome),
    times=st.tuples(EPOCHS, st.none() | EPOCHS, st.none() | EPOCHS),
    waits=st.tuples(WAITS, WAITS),
)
def test_a_call_made_directly_equals_the_one_from_epochs_makes(
    texts: tuple[str, str, str | None, str | None],
    outcome: CallOutcome,
    times: tuple[float, float | None, float | None],
    waits: tuple[float | None, float | None],
) -> None:
    external_id, queue, caller, agent = texts
    entered, answered, left = times
    wait, talk = waits
    arguments = (external_id, queue, entered, outcome, answered, left, wait, talk, caller)
    try:
        expected: Any = CallEvent.from_epochs(*arguments, False, agent)
    except ValueError as exc:  # a waiting call that left: refused alike
        expected = str(exc)
    try:
        made: Any = finished_call(*arguments, agent)
    except ValueError as exc:
        made = str(exc)
    assert made == expected
    assert type(made) is type(expected)
    if isinstance(made, CallEvent):
        assert list(map(type, made)) == list(map(type, expected))


TIMES = st.sampled_from(
    [
        datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
        datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=1))),
        datetime(2026, 11, 20, 9, 0, tzinfo=UTC).replace(tzinfo=None),  # naive: refused
    ]
)


def _by_constructor(**fields: Any) -> list[MessageEvent] | str:
    """What `MessageEvent(...)` makes of the message a phone number stands for, if it has one."""
    conversation = callback_conversation(fields["customer"])
    if conversation is None:
        return []
    try:
        return [MessageEvent(conversation=conversation, **fields)]
    except ValueError as exc:
        return str(exc)


def _made(make: Any, *args: Any, **kwargs: Any) -> list[Any] | str:
    try:
        return list(make(*args, **kwargs))
    except ValueError as exc:
        return str(exc)


@PROPERTY
@given(key=TEXTS, number=st.none() | NUMBERS, at=TIMES, call=TEXTS)
def test_a_callback_request_made_directly_equals_the_one_the_constructor_makes(
    key: str, number: str | None, at: datetime, call: str
) -> None:
    expected = _by_constructor(
        external_id=f"missed:{key}",
        at=at,
        side=Side.CUSTOMER,
        channel=Channel.VOICEMAIL,
        customer=number,
        refers=(call,),
    )
    made = _made(callback_request, key, number, at, call=call)
    assert made == expected
    assert list(map(type, made)) == list(map(type, expected))


@PROPERTY
@given(key=TEXTS, number=st.none() | NUMBERS, at=TIMES, agent=st.none() | TEXTS)
def test_an_outbound_call_made_directly_equals_the_one_the_constructor_makes(
    key: str, number: str | None, at: datetime, agent: str | None
) -> None:
    expected = _by_constructor(
        external_id=f"out:{key}",
        at=at,
        side=Side.AGENT,
        channel=Channel.PHONE,
        customer=number,
        agent=agent,
    )
    assert _made(callback_made, key, number, at, agent) == expected
