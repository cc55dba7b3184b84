"""The items behind the figures: each inquiry, call and left-out message, with its verdict.

`report --items` lists them, the `--by` figures are the metrics engine's summaries of the very
rows they are made from, and the digest's lists (the oldest open inquiries, the longest holds)
are chosen from them by `oldest_open` and `longest_holds`: a line of the digest is a line of
`report --items`. Pure: functions of stored rows, `now` and the targets.

**Verdicts.** An inquiry is `within` (answered no later than its target), `clamped` (answered
within, by a reply dated before its question: counted at 0 s), `late` (answered after the
target), `missed` (the chat ended unanswered), `open` or `open_past_target`. Within target
counts `within` and `clamped`; not within target counts `late`, `missed` and
`open_past_target`. A call is `within` (answered, held no longer than `hold_warn`), `late`
(answered after holding longer), `missed` (hung up, timed out, left: not answered, short
abandons included), `unknown` (never seen to end, no known wait) or `waiting` (in the queue
now); `late`, `missed` and `unknown` are the callers let down. A message that never paired is
`left_out`, with its reason: automatic (the header or subtype), internal, or nobody waiting
(an agent message with no inquiry open: outreach, or a further reply).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.config import ResolvedTargets
from monitor.measure.events import Channel
from monitor.measure.inquiries import is_breached_now
from monitor.measure.summaries import (
    ANSWERED_OUTCOMES,
    UNKNOWN,
    answered_within,
    is_offered,
    is_short_abandon,
    known_wait,
    waiting_seconds,
)

Row = Mapping[Any, Any]

WITHIN, CLAMPED, LATE, MISSED = "within", "clamped", "late", "missed"
OPEN, OPEN_PAST_TARGET, WAITING, LEFT_OUT = "open", "open_past_target", "waiting", "left_out"
INQUIRY_VERDICTS = (WITHIN, CLAMPED, LATE, MISSED, OPEN, OPEN_PAST_TARGET)
CALL_VERDICTS = (WITHIN, LATE, MISSED, UNKNOWN, WAITING)
VERDICTS = tuple(dict.fromkeys((*INQUIRY_VERDICTS, *CALL_VERDICTS, LEFT_OUT)))
NOBODY_WAITING = "nobody was waiting (outreach, or a further reply)"


@dataclass(frozen=True)
class InquiryItem:
    """One inquiry: opened in the period, or open now (an open one opened before the period
    counts only in "open now")."""

    source: str
    channel: str
    conversation: str
    kind: str  # first | followup
    status: str  # open | answered | missed
    customer: str | None
    subject: str | None
    opened_at: datetime
    closed_at: datetime | None  # the reply (a clamped one: the message it answers)
    reply: str | None  # the external id of the reply that answered it
    ended_at: datetime | None  # the chat ended unanswered
    response_seconds: float | None
    business_seconds: float | None  # None while open: the report counts them up to now
    due_at: datetime | None
    breached: bool
    clamped: bool
    verdict: str
    age_seconds: float  # how long the customer waited: to the answer or the end, or so far
    past_target: bool  # open now and past its target
    agent: str | None  # who answered (a team's name for them, else the source's)
    team: str | None  # the team it counts for
    in_period: bool
    open_now: bool


def inquiry_verdict(row: Row, now: datetime) -> str:
    if row["status"] == "answered":
        if row["breached"]:
            return LATE
        return CLAMPED if row["clamped"] else WITHIN
    if row["status"] == "missed":
        return MISSED
    return OPEN_PAST_TARGET if is_breached_now(row["due_at"], now) else OPEN


def inquiry_item(
    row: Row,
    now: datetime,
    *,
    agent: str | None = None,
    team: str | None = None,
    in_period: bool = True,
) -> InquiryItem:
    """The item of a stored inquiry row, as seen at `now`."""
    opened: datetime = row["opened_at"]
    end = row["closed_at"] or row["ended_at"] or now
    is_open = row["status"] == "open"
    return InquiryItem(
        source=row["source"],
        channel=row["channel"],
        conversation=row["conversation"],
        kind=row["kind"],
        status=row["status"],
        customer=row["customer"],
        subject=row["subject"],
        opened_at=opened,
        closed_at=row["closed_at"],
        reply=row.get("closed_by"),
        ended_at=row["ended_at"],
        response_seconds=row["response_seconds"],
        business_seconds=row["business_seconds"],
        due_at=row["due_at"],
        breached=bool(row["breached"]),
        clamped=bool(row["clamped"]),
        verdict=inquiry_verdict(row, now),
        age_seconds=max(0.0, (end - opened).total_seconds()),
        past_target=is_open and is_breached_now(row["due_at"], now),
        agent=agent,
        team=team,
        in_period=in_period,
        open_now=is_open,
    )


@dataclass(frozen=True)
class CallItem:
    """One call: entered in the period, or in the queue now."""

    source: str
    queue: str
    external_id: str
    caller: str | None
    entered_at: datetime
    answered_at: datetime | None
    left_at: datetime | None
    wait_seconds: float | None  # None: unknown; a waiting caller's is their wait so far
    talk_seconds: float | None
    outcome: str
    verdict: str
    over_warn: bool
    over_max: bool
    short_abandon: bool  # abandoned within `short_abandon`: out of the service level
    answered_within: bool  # within `answer_within`: counted in the service level
    offered: bool  # in the service level's denominator
    agent: str | None
    team: str | None
    in_period: bool
    waiting_now: bool


def call_verdict(row: Row, targets: ResolvedTargets) -> str:
    outcome = row["outcome"]
    if outcome == WAITING:
        return WAITING
    if outcome == UNKNOWN:
        return UNKNOWN
    if outcome not in ANSWERED_OUTCOMES:
        return MISSED
    wait = known_wait(row) or 0.0
    return LATE if wait > targets.hold_warn.total_seconds() else WITHIN


def call_item(
    row: Row,
    targets: ResolvedTargets,
    now: datetime,
    *,
    agent: str | None = None,
    team: str | None = None,
    in_period: bool = True,
) -> CallItem:
    """The item of a stored call row, with its source's targets, as seen at `now`."""
    waiting = row["outcome"] == WAITING
    wait = waiting_seconds(row, now) if waiting else known_wait(row)
    finished = not waiting and wait is not None
    flagged = bool(row.get("short_abandon"))
    return CallItem(
        source=row["source"],
        queue=row["queue"],
        external_id=row["external_id"],
        caller=row["caller"],
        entered_at=row["entered_at"],
        answered_at=row.get("answered_at"),
        left_at=row.get("left_at"),
        wait_seconds=wait,
        talk_seconds=row.get("talk_seconds"),
        outcome=row["outcome"],
        verdict=call_verdict(row, targets),
        over_warn=finished and (wait or 0.0) > targets.hold_warn.total_seconds(),
        over_max=finished and (wait or 0.0) > targets.hold_max.total_seconds(),
        short_abandon=is_short_abandon(row["outcome"], row["wait_seconds"], flagged, targets),
        answered_within=not waiting and answered_within(row, targets),
        offered=not waiting and is_offered(row, targets),
        agent=agent,
        team=team,
        in_period=in_period,
        waiting_now=waiting,
    )


@dataclass(frozen=True)
class LeftOutItem:
    """A message of the period that opened, extended and closed nothing, and why."""

    source: str
    channel: str
    conversation: str
    external_id: str
    at: datetime
    side: str
    subject: str | None
    agent: str | None
    team: str | None
    reason: str  # "automatic: Auto-Submitted: auto-replied", "internal: …", NOBODY_WAITING

    verdict = LEFT_OUT


def left_out_reason(row: Row, closing: bool) -> str | None:
    """Why a stored message never paired; None when it did (or may: a customer's message in an
    open inquiry extends it). `closing`: it is the reply that closed an inquiry."""
    if row["kind"] != "message":
        return None  # end markers and retention's markers are not messages people wrote
    why = row.get("left_out")
    if row["automatic"]:
        return f"automatic: {why or 'reason not recorded (stored by an earlier version)'}"
    if row["internal"]:
        return f"internal: {why or 'every participant on our side'}"
    if row["side"] == "agent" and not closing:
        return f"{NOBODY_WAITING}: {why}" if why else NOBODY_WAITING
    return None


# Inquiries that are callers waiting to be called back (a missed call, a message an answering
# service took): the lead acts on them by phone, so the digest lists them apart.
CALLBACK_CHANNELS = frozenset({Channel.VOICEMAIL.value, Channel.ANSWERING_SERVICE.value})


def is_callback(item: InquiryItem) -> bool:
    return item.channel in CALLBACK_CHANNELS


def oldest_open(items: Iterable[InquiryItem], limit: int) -> tuple[InquiryItem, ...]:
    """The `limit` inquiries open now that have waited longest, oldest first (the digest's
    list of oldest unanswered inquiries)."""
    found = sorted(
        (i for i in items if i.open_now), key=lambda i: (i.opened_at, i.source, i.conversation)
    )
    return tuple(found[:limit])


def longest_holds(items: Iterable[CallItem], limit: int) -> tuple[CallItem, ...]:
    """The `limit` finished calls of the period that waited longest, longest first (the
    digest's list of longest holds); calls of unknown wait are left out."""
    found = [i for i in items if i.in_period and not i.waiting_now and i.wait_seconds is not None]
    found.sort(key=lambda i: (-(i.wait_seconds or 0.0), i.entered_at, i.external_id))
    return tuple(found[:limit])
