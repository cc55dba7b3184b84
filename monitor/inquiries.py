"""Inquiry pairing (SPEC §2): which customer messages wait for us, and when we answered.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, Protocol

from monitor.config import ResolvedTargets
from monitor.events import MessageKind, Side


class Clock(Protocol):
    """What pairing needs of a business calendar (monitor.calendars.BusinessCalendar)."""

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


@dataclass(frozen=True, slots=True)
class Span:
    """One inquiry as pairing finds it, before it is measured."""

    opened_by: PairableMessage
    kind: str  # first | followup
    closed_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def status(self) -> str:
        if self.closed_at is not None:
            return "answered"
        return "missed" if self.ended_at is not None else "open"


def pair(messages: Iterable[PairableMessage]) -> list[Span]:
    """The inquiries of one conversation. `messages` in stored order; sorted here by time,
    stably, so messages with the same timestamp keep the order the source gave them."""
    spans: list[Span] = []
    opened: PairableMessage | None = None
    earlier = False  # the conversation had inquiries before what is stored (purged)
    for message in sorted(messages, key=lambda m: m.at):
        if message.automatic or message.internal:
            # Retention's marker is automatic: normal messages pay nothing for the check.
            earlier = earlier or message.kind == MessageKind.EARLIER
            continue
        if message.kind == MessageKind.ENDED:
            if opened is not None:
                spans.append(_span(opened, spans, earlier, ended_at=message.at))
                opened = None
        elif message.side == Side.CUSTOMER:
            if opened is None:
                opened = message
        elif opened is not None:
            spans.append(_span(opened, spans, earlier, closed_at=message.at))
            opened = None
    if opened is not None:
        spans.append(_span(opened, spans, earlier))
    return spans


def _span(opened: PairableMessage, spans: list[Span], earlier: bool, **end: datetime) -> Span:
    return Span(opened_by=opened, kind="followup" if spans or earlier else "first", **end)


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
    breach of one span. A reply dated before its question (clock skew) counts as 0 s, flagged."""
    opened = span.opened_by
    response = business = None
    clamped = False
    if span.closed_at is not None:
        raw = (span.closed_at - opened.at).total_seconds()
        clamped = raw < 0
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
    cost more than storing it. A test holds this equal to derive()."""
    if len(messages) != 1:
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
    # response_seconds, business_seconds, due_at, breached, clamped, customer, subject
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
        )
    ]


def is_breached_now(due: datetime | None, now: datetime) -> bool:
    """An open inquiry is breached once `now` has passed its due time."""
    return due is not None and now > due


def is_due_soon(due: datetime | None, now: datetime, margin: timedelta) -> bool:
    """Open, not yet breached, and will breach within `margin`."""
    return due is not None and now <= due <= now + margin
