"""Inquiry pairing: which customer messages wait for us, and when we answered.

Pure functions of (messages, calendar, targets): no database, no clock. For each conversation,
in time order:

- a human customer message opens an inquiry when none is open; more customer messages while it
  is open do not move its start (we measure from the oldest unanswered message);
- the next human agent message closes it; an agent message with nothing open (outreach) closes
  nothing;
- automatic messages (auto-replies, bounces, bots, triggers) and internal ones (every
  participant on our side) never open, extend or close anything;
- the conversation ending (a chat closed) with an inquiry still open makes that inquiry *missed*;
- the first inquiry of a conversation is `first`, later ones `followup` (also after a marker
  that retention left where it purged the conversation's earlier inquiries).

**Clock skew.** A reply that names what it answers (`refers`: an e-mail's In-Reply-To or
References, a Slack thread's parent) was written after that message, whatever its sender's
clock says. Mail we send is timed by its `Date:`, which an agent's wrong clock can put minutes
before the question it answers (which is timed by its arrival); sorted by time alone, the
answer would come first, close nothing, and leave the question open to breach. So an agent
message is placed no earlier than the messages it names (and they no earlier than what they
name): the reply still closes that inquiry, its response is measured from the moment of the
message it answers (0 s when that message opened the inquiry) and the inquiry is `clamped`,
counted in `support_responses_clamped_total`. Stored times are never moved: the clamp is
made here, every time the conversation is measured, so a rebuild gives the same result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, Protocol

from monitor.config import ResolvedTargets
from monitor.measure.events import MessageKind, Side


class Clock(Protocol):
    """What pairing needs of a business calendar (monitor.measure.calendars.BusinessCalendar)."""

    def business_seconds(self, start: datetime, end: datetime) -> float: ...

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime | None: ...


class PairableMessage(Protocol):
    @property
    def external_id(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def side(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def automatic(self) -> bool: ...
    @property
    def internal(self) -> bool: ...
    @property
    def channel(self) -> str: ...
    @property
    def customer(self) -> str | None: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def refers(self) -> str | None: ...  # the external ids it answers, separated by spaces
    @property
    def agent(self) -> str | None: ...  # who wrote it (an agent-side message), when known


@dataclass(frozen=True, slots=True)
class Span:
    """One inquiry as pairing finds it, before it is measured."""

    opened_by: PairableMessage
    kind: str  # first | followup
    closed_at: datetime | None = None
    ended_at: datetime | None = None
    # The reply's own time was before the message it answers: `closed_at` is that message's.
    clamped: bool = False
    closed_by: PairableMessage | None = None  # the human agent message that answered it

    @property
    def status(self) -> str:
        if self.closed_at is not None:
            return "answered"
        return "missed" if self.ended_at is not None else "open"


def pair(messages: Iterable[PairableMessage]) -> list[Span]:
    """The inquiries of one conversation. `messages` in stored order; sorted here by time (a
    reply no earlier than what it answers), stably, so messages with the same timestamp keep
    the order the source gave them."""
    spans: list[Span] = []
    opened: PairableMessage | None = None
    earlier = False  # the conversation had inquiries before what is stored (purged)
    for at, message in in_order(messages):
        if message.automatic or message.internal:
            # Retention's marker is automatic: normal messages pay nothing for the check.
            earlier = earlier or message.kind == MessageKind.EARLIER
            continue
        if message.kind == MessageKind.ENDED:
            if opened is not None:
                spans.append(_span(opened, spans, earlier, ended_at=at))
                opened = None
        elif message.side == Side.CUSTOMER:
            if opened is None:
                opened = message
        elif opened is not None:
            clamped = at > message.at
            spans.append(
                _span(opened, spans, earlier, closed_at=at, clamped=clamped, closed_by=message)
            )
            opened = None
    if opened is not None:
        spans.append(_span(opened, spans, earlier))
    return spans


def _span(opened: PairableMessage, spans: list[Span], earlier: bool, **end: Any) -> Span:
    return Span(opened_by=opened, kind="followup" if spans or earlier else "first", **end)


def in_order(messages: Iterable[PairableMessage]) -> list[tuple[datetime, PairableMessage]]:
    """The messages with the time each counts at, in that order: their own time, but an agent
    message no earlier than the messages of the conversation it names (`refers`). Among equal
    times a message placed by what it names comes after what it names."""
    listed = sorted(messages, key=attrgetter("at"))
    if not any(m.refers and m.side == Side.AGENT for m in listed):  # most conversations
        return [(m.at, m) for m in listed]
    # (when it counts, how many named messages lead to that time): relaxed a few times over,
    # oldest first, so a chain of replies settles in one pass and a loop of references (only
    # hostile mail has one) costs a bounded number of passes.
    placed = [(m.at, 0) for m in listed]
    where = {m.external_id: i for i, m in reversed(list(enumerate(listed)))}
    named_by = [
        (i, [where[r] for r in (m.refers or "").split() if r in where and where[r] != i])
        for i, m in enumerate(listed)
        if m.refers and m.side == Side.AGENT
    ]
    for _ in range(_PLACING_PASSES):
        moved = False
        for i, named in named_by:
            best = placed[i]
            for j in named:
                if (placed[j][0], placed[j][1] + 1) > best:
                    best = (placed[j][0], placed[j][1] + 1)
            if best != placed[i]:
                placed[i], moved = best, True
        if not moved:
            break
    order = sorted(range(len(listed)), key=placed.__getitem__)  # stable: stored order on ties
    return [(placed[i][0], listed[i]) for i in order]


_PLACING_PASSES = 8


@dataclass(frozen=True, slots=True)
class Measured:
    """An inquiry with its response time, due time and breach, ready to be stored."""

    conversation: str
    channel: str
    kind: str
    status: str
    opened_at: datetime
    opened_by: str
    closed_at: datetime | None
    ended_at: datetime | None
    response_seconds: float | None
    business_seconds: float | None
    due_at: datetime | None
    breached: bool
    clamped: bool
    customer: str | None
    subject: str | None
    # The reply that answered it (its external id) and who wrote it, when the source says: the
    # inquiry counts for that agent and their team in reports (monitor.measure.teams).
    closed_by: str | None = None
    agent: str | None = None


def due_at(
    opened_at: datetime, targets: ResolvedTargets, calendar: Clock | None
) -> datetime | None:
    """When an inquiry opened at `opened_at` breaches the reply target if still unanswered.

    On the business clock the target counts only open hours; None when the calendar never opens
    again (an inquiry that can never breach)."""
    if targets.reply_clock == "business" and calendar is not None:
        return calendar.add_business_seconds(opened_at, targets.reply_within.total_seconds())
    return opened_at + targets.reply_within


def measure(
    conversation: str,
    span: Span,
    targets: ResolvedTargets,
    calendar: Clock | None,
) -> Measured:
    """Response time in calendar seconds (and business seconds with a calendar), due time and
    breach of one span. A reply dated before the message it answers (clock skew) counts from
    that message (0 s when it opened the inquiry), flagged `clamped`."""
    opened = span.opened_by
    response = business = None
    clamped = span.clamped
    if span.closed_at is not None:
        raw = (span.closed_at - opened.at).total_seconds()
        clamped = clamped or raw < 0
        response = max(0.0, raw)
        if calendar is not None:
            business = calendar.business_seconds(opened.at, max(span.closed_at, opened.at))
    due = due_at(opened.at, targets, calendar)
    finished = span.closed_at or span.ended_at
    return Measured(
        conversation=conversation,
        channel=opened.channel,
        kind=span.kind,
        status=span.status,
        opened_at=opened.at,
        opened_by=opened.external_id,
        closed_at=span.closed_at,
        ended_at=span.ended_at,
        response_seconds=response,
        business_seconds=business,
        due_at=due,
        breached=finished is not None and due is not None and finished > due,
        clamped=clamped,
        customer=opened.customer,
        subject=opened.subject,
        closed_by=None if span.closed_by is None else span.closed_by.external_id,
        agent=None if span.closed_by is None else span.closed_by.agent,
    )


def derive(
    conversation: str,
    messages: Iterable[PairableMessage],
    targets: ResolvedTargets,
    calendar: Clock | None,
) -> list[Measured]:
    """Pair and measure one conversation."""
    return [measure(conversation, span, targets, calendar) for span in pair(messages)]


MEASURED = tuple(f.name for f in fields(Measured))
_measured_values = attrgetter(*MEASURED)  # a Measured's fields, in MEASURED order


def derive_values(
    conversation: str,
    messages: Sequence[PairableMessage],
    targets: ResolvedTargets,
    calendar: Clock | None,
) -> list[tuple[Any, ...]]:
    """derive(), each inquiry as the tuple of its fields in MEASURED order (what ingest stores).

    A conversation of one message is the common case at ingest (every missed call's callback
    request is one, so is most new mail): its inquiry, if that message opens one, is an open
    `first` one due at `due_at`, made here without the pairing and measuring objects, which
    cost more than storing it. So does a conversation of plain messages (`_plain_values`), as
    a caller's missed calls and the answered calls that got them through are, and most
    e-mail: a question and the reply naming it (`_answered_question`). Tests hold them all
    equal to derive()."""
    if len(messages) != 1:
        if len(messages) == 2:
            answered = _answered_question(conversation, messages, targets, calendar)
            if answered is not None:
                return answered
        plain = _plain_values(conversation, messages, targets, calendar)
        if plain is not None:
            return plain
        return [_measured_values(m) for m in derive(conversation, messages, targets, calendar)]
    message = messages[0]
    if (
        message.automatic
        or message.internal
        or message.kind == MessageKind.ENDED
        or message.side != Side.CUSTOMER
    ):
        return []  # pair() opens nothing with it
    at = message.at
    due = due_at(at, targets, calendar)
    # conversation, channel, kind, status, opened_at, opened_by, closed_at, ended_at,
    # response_seconds, business_seconds, due_at, breached, clamped, customer, subject,
    # closed_by, agent
    return [
        (
            conversation,
            message.channel,
            "first",
            "open",
            at,
            message.external_id,
            None,
            None,
            None,
            None,
            due,
            False,
            False,
            message.customer,
            message.subject,
            None,
            None,
        )
    ]


def _answered_question(
    conversation: str,
    messages: Sequence[PairableMessage],
    targets: ResolvedTargets,
    calendar: Clock | None,
) -> list[tuple[Any, ...]] | None:
    """_plain_values of e-mail's most common conversation, a customer's question and the reply
    after it (naming it or not): its one answered inquiry, without sorting or pairing. None for
    any other two messages: not plain, or not a question then a reply in time order (a reply
    stored before a question of the same time comes first too)."""
    question, reply = messages
    if reply.at < question.at:  # sorted by time, stably: equal times keep the stored order
        question, reply = reply, question
    if (
        question.side != Side.CUSTOMER
        or reply.side == Side.CUSTOMER
        or question.kind != MessageKind.MESSAGE
        or reply.kind != MessageKind.MESSAGE
        or question.automatic
        or question.internal
        or reply.automatic
        or reply.internal
    ):
        return None
    # A reply naming the question is never placed before it: it is at or after it already.
    return [_answered(conversation, "first", question, reply, targets, calendar)]


def _answered(
    conversation: str,
    kind: str,
    opened: PairableMessage,
    closing: PairableMessage,
    targets: ResolvedTargets,
    calendar: Clock | None,
) -> tuple[Any, ...]:
    """The values of an inquiry `opened` by a customer message and answered by `closing` (at
    or after it), as derive_values gives them."""
    start, closed = opened.at, closing.at
    due = due_at(start, targets, calendar)
    return (
        conversation,
        opened.channel,
        kind,
        "answered",
        start,
        opened.external_id,
        closed,
        None,
        (closed - start).total_seconds(),
        None if calendar is None else calendar.business_seconds(start, closed),
        due,
        due is not None and closed > due,
        False,
        opened.customer,
        opened.subject,
        closing.external_id,
        closing.agent,
    )


def _plain_values(
    conversation: str,
    messages: Sequence[PairableMessage],
    targets: ResolvedTargets,
    calendar: Clock | None,
) -> list[tuple[Any, ...]] | None:
    """derive_values of plain messages, which pair by their time and side alone: pair() and
    measure() as they go for such messages (in time order, stably; the first customer message
    opens, the next agent message closes, never before what it closes), without their
    objects. None when a message is not plain: a marker, automatic or internal, or a reply
    that in_order places later than its own time (it names a message of the same time or
    later: clock skew). A reply naming earlier messages, e-mail's common case, is plain."""
    values: list[tuple[Any, ...]] = []
    opened: PairableMessage | None = None
    listed = sorted(messages, key=_at)
    first: dict[str, int] | None = None  # made when a reply names messages (in_order's `where`)
    for index, message in enumerate(listed):
        if message.kind != MessageKind.MESSAGE or message.automatic or message.internal:
            return None
        if message.side == Side.CUSTOMER:
            if opened is None:
                opened = message
            continue
        if message.refers:
            if first is None:
                first = {m.external_id: i for i, m in reversed(list(enumerate(listed)))}
            if not _placed_as_dated(index, listed, first):
                return None
        if opened is None:
            continue  # outreach: closes nothing
        # (message.at >= opened.at: sorted by time)
        kind = "followup" if values else "first"
        values.append(_answered(conversation, kind, opened, message, targets, calendar))
        opened = None
    if opened is not None:
        values.append(
            (
                conversation,
                opened.channel,
                "followup" if values else "first",
                "open",
                opened.at,
                opened.external_id,
                None,
                None,
                None,
                None,
                due_at(opened.at, targets, calendar),
                False,
                False,
                opened.customer,
                opened.subject,
                None,
                None,
            )
        )
    return values


_at = attrgetter("at")


def _placed_as_dated(index: int, listed: Sequence[PairableMessage], first: dict[str, int]) -> bool:
    """Whether in_order leaves the reply `listed[index]` (an agent message naming others) at
    its own time, when every message before it in time order is at its own: each message it
    names (the first of that id in time order, as in_order resolves a name) is strictly
    earlier. A named message at the same time or later places the reply after it; the reply
    naming itself, or an id the conversation does not hold, names nothing."""
    reply = listed[index]
    at = reply.at
    for named in (reply.refers or "").split():
        where = first.get(named)
        if where is not None and where != index and listed[where].at >= at:
            return False
    return True


def verdict_of(status: str, breached: bool) -> str | None:
    """An inquiry's verdict as its stored row tells it: `within` when answered within the
    target, `late` when answered late or missed, None while open (an open one becomes `late`
    when its due time passes: monitor.store.verdicts)."""
    if status == "answered":
        return "late" if breached else "within"
    return "late" if status == "missed" else None


def is_breached_now(due: datetime | None, now: datetime) -> bool:
    """An open inquiry is breached once `now` has passed its due time."""
    return due is not None and now > due


def is_due_soon(due: datetime | None, now: datetime, margin: timedelta) -> bool:
    """Open, not yet breached, and will breach within `margin`."""
    return due is not None and now <= due <= now + margin
