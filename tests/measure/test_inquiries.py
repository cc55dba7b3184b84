"""Inquiry pairing and measurement, rule by rule: what opens and closes an inquiry, first and
follow-up, replies dated before their question, response time, targets, breaches and due times,
business time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from monitor.config import BUILTIN_TARGETS, CalendarSettings
from monitor.measure.calendars import BusinessCalendar
from monitor.measure.inquiries import (
    MEASURED,
    derive,
    derive_values,
    is_breached_now,
    is_due_soon,
    pair,
)

T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)  # a Monday


@dataclass(frozen=True)
class Msg:
    external_id: str
    at: datetime
    side: str
    kind: str = "message"
    automatic: bool = False
    internal: bool = False
    channel: str = "email"
    customer: str | None = "ann@customer.example"
    subject: str | None = "Where is my order?"
    refers: str | None = None
    agent: str | None = None


def conversation(*script: str) -> list[Msg]:
    """`"c+0"` a customer message at minute 0; `"a+30"` an agent one at minute 30; suffixes:
    `!` automatic, `~` internal; `end+45` the conversation ended."""
    messages = []
    for index, step in enumerate(script):
        who, _, rest = step.partition("+")
        flags = rest.lstrip("0123456789")
        minutes = int(rest[: len(rest) - len(flags)])
        side = "customer" if who == "c" else "agent"
        messages.append(
            Msg(
                external_id=f"m{index}",
                at=T0 + timedelta(minutes=minutes),
                side=side,
                kind="ended" if who == "end" else "message",
                automatic="!" in flags,
                internal="~" in flags,
            )
        )
    return messages


def spans(*script: str) -> list[tuple[str, str, float | None]]:
    """(kind, status, response minutes) per inquiry of the scripted conversation."""
    result = []
    for measured in derive("conv", conversation(*script), BUILTIN_TARGETS, None):
        minutes = None if measured.response_seconds is None else measured.response_seconds / 60
        result.append((measured.kind, measured.status, minutes))
    return result


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param(("c+0", "a+30"), [("first", "answered", 30)], id="a reply closes the inquiry"),
        pytest.param(
            ("c+0", "c+10", "c+20", "a+30"),
            [("first", "answered", 30)],
            id="more customer messages do not move the start",
        ),
        pytest.param(("c+0",), [("first", "open", None)], id="no reply leaves it open"),
        pytest.param(
            ("a+0", "c+10", "a+40"),
            [("first", "answered", 30)],
            id="outreach closes nothing and opens nothing",
        ),
        pytest.param(
            ("c+0", "a+5", "c+60", "a+90"),
            [("first", "answered", 5), ("followup", "answered", 30)],
            id="a later question is a followup",
        ),
        pytest.param(
            ("c+0", "a+1!", "a+50"),
            [("first", "answered", 50)],
            id="our auto-reply does not close the inquiry",
        ),
        pytest.param(("c+0!", "a+5"), [], id="a customer auto-reply does not open an inquiry"),
        pytest.param(
            ("c+0", "c+5!", "a+20"),
            [("first", "answered", 20)],
            id="a customer auto-reply does not extend anything",
        ),
        pytest.param(("a+0~", "a+5~"), [], id="an internal thread is never an inquiry"),
        pytest.param(
            ("c+0", "a+3~", "a+9"),
            [("first", "answered", 9)],
            id="an internal note does not close the inquiry",
        ),
        pytest.param(
            ("c+0", "end+4"),
            [("first", "missed", None)],
            id="a chat that ends unanswered is missed",
        ),
        pytest.param(
            ("c+0", "a+1", "end+4"),
            [("first", "answered", 1)],
            id="ending after the reply changes nothing",
        ),
        pytest.param(
            ("c+0", "end+4", "c+10", "a+12"),
            [("first", "missed", None), ("followup", "answered", 2)],
            id="a visitor who comes back opens a new inquiry",
        ),
        pytest.param(("a+1", "a+2"), [], id="agent messages alone are no inquiry"),
    ],
)
def test_pairing_follows_the_measurement_rules(
    script: tuple[str, ...], expected: list[tuple[str, str, float | None]]
) -> None:
    assert spans(*script) == expected


def test_messages_are_paired_in_time_order_whatever_order_they_arrive_in() -> None:
    messages = conversation("c+0", "a+30", "c+40", "a+45")
    assert [s.status for s in pair(reversed(messages))] == ["answered", "answered"]
    assert [m.response_seconds for m in derive("c", reversed(messages), BUILTIN_TARGETS, None)] == [
        1800,
        300,
    ]


def measured(*messages: Msg) -> list[tuple[str, str, float | None, bool]]:
    """(kind, status, response minutes, clamped) per inquiry of these messages."""
    return [
        (
            m.kind,
            m.status,
            None if m.response_seconds is None else m.response_seconds / 60,
            m.clamped,
        )
        for m in derive("conv", messages, BUILTIN_TARGETS, None)
    ]


def at_minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def test_a_reply_dated_before_the_question_it_names_answers_it_at_zero_seconds() -> None:
    question = Msg("q", at_minute(10), "customer")
    reply = Msg("r", at_minute(7), "agent", refers="q")  # the agent's clock 3 minutes slow
    assert measured(question, reply) == [("first", "answered", 0, True)]
    # Without naming it, a reply before the question is outreach: the question stays open.
    assert measured(question, Msg("r", at_minute(7), "agent")) == [("first", "open", None, False)]


def test_a_reply_naming_a_later_message_of_an_open_inquiry_counts_from_that_message() -> None:
    """Two questions, the reply names the second but is dated between them: it was written
    after the second, so the inquiry (opened by the first) is answered 20 minutes in."""
    messages = [
        Msg("q1", at_minute(0), "customer"),
        Msg("q2", at_minute(20), "customer"),
        Msg("r", at_minute(15), "agent", refers="q2"),
    ]
    assert measured(*messages) == [("first", "answered", 20, True)]


def test_a_reply_later_than_what_it_names_is_measured_as_dated() -> None:
    messages = [Msg("q", at_minute(0), "customer"), Msg("r", at_minute(30), "agent", refers="q")]
    assert measured(*messages) == [("first", "answered", 30, False)]


def test_replies_naming_replies_keep_their_order_and_a_loop_of_references_ends() -> None:
    """Our second reply names our first, which names the follow-up question; both clocks are
    slow. A loop of references (only hostile mail writes one) is bounded, not endless."""
    chain = [
        Msg("q1", at_minute(0), "customer"),
        Msg("r1", at_minute(5), "agent", refers="q1"),
        Msg("q2", at_minute(60), "customer"),
        Msg("r2", at_minute(58), "agent", refers="q2"),
        Msg("r3", at_minute(57), "agent", refers="r2"),
    ]
    assert measured(*chain) == [("first", "answered", 5, False), ("followup", "answered", 0, True)]
    loop = [
        Msg("q", at_minute(10), "customer"),
        Msg("a", at_minute(1), "agent", refers="b q"),
        Msg("b", at_minute(2), "agent", refers="a"),
    ]
    assert measured(*loop) == [("first", "answered", 0, True)]


def test_an_inquiry_answered_after_the_target_is_breached() -> None:
    late = derive("c", conversation("c+0", f"a+{25 * 60}"), BUILTIN_TARGETS, None)[0]
    on_time = derive("c", conversation("c+0", f"a+{23 * 60}"), BUILTIN_TARGETS, None)[0]
    assert (late.breached, on_time.breached) == (True, False)
    assert late.due_at == T0 + timedelta(hours=24)


def test_an_open_inquiry_breaches_once_now_passes_its_due_time() -> None:
    (inquiry,) = derive("c", conversation("c+0"), BUILTIN_TARGETS, None)
    assert not inquiry.breached  # still open: decided at read time, against `now`
    assert not is_breached_now(inquiry.due_at, T0 + timedelta(hours=24))
    assert is_breached_now(inquiry.due_at, T0 + timedelta(hours=24, seconds=1))


def test_an_open_inquiry_is_due_soon_within_the_margin() -> None:
    (inquiry,) = derive("c", conversation("c+0"), BUILTIN_TARGETS, None)
    margin = timedelta(hours=2)
    assert not is_due_soon(inquiry.due_at, T0 + timedelta(hours=21), margin)
    assert is_due_soon(inquiry.due_at, T0 + timedelta(hours=22, minutes=30), margin)
    assert not is_due_soon(inquiry.due_at, T0 + timedelta(hours=25), margin)


OFFICE = BusinessCalendar.from_settings(
    CalendarSettings.model_validate(
        {
            "timezone": "Europe/London",
            "hours": {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        }
    )
)


def test_a_friday_evening_question_answered_monday_morning_is_quick_in_business_time() -> None:
    friday_evening = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    monday = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    messages = [Msg("q", friday_evening, "customer"), Msg("r", monday, "agent")]
    (inquiry,) = derive("c", messages, BUILTIN_TARGETS, OFFICE)
    assert inquiry.response_seconds == (monday - friday_evening).total_seconds()
    assert inquiry.business_seconds == 30 * 60


def test_on_the_business_clock_the_target_counts_only_open_hours() -> None:
    targets = BUILTIN_TARGETS.__class__(
        **{
            **BUILTIN_TARGETS.__dict__,
            "reply_clock": "business",
            "reply_within": timedelta(hours=4),
        }
    )
    friday_3pm = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    (inquiry,) = derive("c", [Msg("q", friday_3pm, "customer")], targets, OFFICE)
    # 2 h on Friday, then 2 h on Monday from 09:00.
    assert inquiry.due_at == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)


def test_the_customer_and_subject_of_the_opening_message_are_kept_for_the_digest() -> None:
    (inquiry,) = derive("c", conversation("c+0", "a+5"), BUILTIN_TARGETS, None)
    assert (inquiry.customer, inquiry.subject, inquiry.opened_by) == (
        "ann@customer.example",
        "Where is my order?",
        "m0",
    )


BUSINESS_TARGETS = BUILTIN_TARGETS.__class__(
    **{**BUILTIN_TARGETS.__dict__, "reply_clock": "business", "reply_within": timedelta(hours=4)}
)


@pytest.mark.parametrize(
    "script",
    [("c+0",), ("a+0",), ("c+0!",), ("c+0~",), ("end+0",), ("c+0", "a+5"), ("c+0", "end+9"), ()],
)
@pytest.mark.parametrize("clock", ["calendar", "business"])
def test_inquiry_values_are_the_fields_of_what_derive_measures(
    script: tuple[str, ...], clock: str
) -> None:
    # derive_values takes a conversation of one message without pairing objects (ingest's
    # common case): it must give exactly derive's inquiries, field by field, in MEASURED order.
    targets, calendar = (
        (BUILTIN_TARGETS, None) if clock == "calendar" else (BUSINESS_TARGETS, OFFICE)
    )
    messages = conversation(*script)
    measured = derive("conv", messages, targets, calendar)
    expected = [tuple(getattr(m, name) for name in MEASURED) for m in measured]
    assert derive_values("conv", messages, targets, calendar) == expected


# A step of a conversation: (customer?, hours after T0, automatic, internal, ended, names the
# message before). Equal times are common: a caller's calls land in the same minute.
_FLAG = st.sampled_from([False] * 6 + [True])
_STEPS = st.tuples(
    st.booleans(), st.integers(min_value=0, max_value=40), _FLAG, _FLAG, _FLAG, _FLAG
)


@given(steps=st.lists(_STEPS, max_size=8), plain=st.booleans(), business=st.booleans())
@example(  # answered at the very end of the 24-hour target: not breached
    steps=[(True, 0, False, False, False, False), (False, 24, False, False, False, False)],
    plain=True,
    business=False,
)
def test_inquiry_values_of_any_conversation_are_what_derive_measures(
    steps: list[tuple[bool, int, bool, bool, bool, bool]], plain: bool, business: bool
) -> None:
    # derive_values pairs conversations of plain messages (a caller's missed and answered
    # calls) without pairing objects: for any conversation, plain or not, on either clock, it
    # must give exactly derive's inquiries, in order, field by field.
    messages = [
        Msg(
            external_id=f"m{index}",
            at=T0 + timedelta(hours=minutes),
            side="customer" if customer else "agent",
            kind="ended" if ended and not plain else "message",
            automatic=automatic and not plain,
            internal=internal and not plain,
            refers=f"m{index - 1}" if names and index else None,
            agent=None if customer else f"agent{index}",
            customer=f"caller{index}",
        )
        for index, (customer, minutes, automatic, internal, ended, names) in enumerate(steps)
    ]
    assert_values_are_what_derive_measures(messages, business=business)


def assert_values_are_what_derive_measures(messages: list[Msg], *, business: bool) -> None:
    """derive_values of `messages` is derive's inquiries, in order, field by field."""
    targets, calendar = (BUSINESS_TARGETS, OFFICE) if business else (BUILTIN_TARGETS, None)
    measured = derive("conv", messages, targets, calendar)
    expected = [tuple(getattr(m, name) for name in MEASURED) for m in measured]
    assert derive_values("conv", messages, targets, calendar) == expected


# A step of an e-mail conversation: (customer?, minutes after T0, ids it names: indexes of
# the conversation's messages, possibly itself, later ones or ones it does not hold, automatic).
# Few distinct ids and times: equal times and repeated ids are where pairing is subtle.
_MAIL_STEPS = st.tuples(
    st.booleans(),
    st.integers(min_value=0, max_value=6),
    st.lists(st.integers(min_value=0, max_value=9), max_size=3),
    _FLAG,
)


@given(steps=st.lists(_MAIL_STEPS, max_size=8), same_ids=st.booleans(), business=st.booleans())
@example(  # a question and the reply naming it: e-mail's common conversation
    steps=[(True, 0, [], False), (False, 5, [0], False)], same_ids=False, business=False
)
@example(  # the reply dated before the question it names (clock skew): placed after it
    steps=[(True, 5, [], False), (False, 0, [0], False)], same_ids=False, business=False
)
@example(  # the reply at the very minute of the question it names, stored before it
    steps=[(False, 3, [1], False), (True, 3, [], False)], same_ids=False, business=False
)
@example(  # the reply of the question's very minute, naming it: after it, answered at 0 s
    steps=[(True, 3, [], False), (False, 3, [0], False)], same_ids=False, business=True
)
@example(  # an agent's message stored before a question of the same minute: outreach
    steps=[(False, 3, [], False), (True, 3, [], False)], same_ids=False, business=False
)
@example(  # a reply naming its own id, which the question also has
    steps=[(True, 0, [], False), (False, 0, [1], False)], same_ids=True, business=False
)
def test_inquiry_values_of_any_mail_conversation_are_what_derive_measures(
    steps: list[tuple[bool, int, list[int], bool]], same_ids: bool, business: bool
) -> None:
    # derive_values pairs a conversation whose replies name earlier messages without pairing
    # objects: whatever the replies name (earlier, later, the same minute, themselves, ids of
    # no message, an id two messages share), it must give exactly derive's inquiries.
    messages = [
        Msg(
            external_id=f"m{index % 3 if same_ids else index}",
            at=T0 + timedelta(minutes=minutes),
            side="customer" if customer else "agent",
            automatic=automatic,
            refers=" ".join(f"m{n}" for n in names) or None,
            agent=None if customer else f"agent{index}",
            customer=f"ann{index}",
        )
        for index, (customer, minutes, names, automatic) in enumerate(steps)
    ]
    assert_values_are_what_derive_measures(messages, business=business)
