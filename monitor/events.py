"""Normalized events: what every connector produces and the store keeps.

A connector turns whatever a source speaks (IMAP headers, queue_log lines, chat JSON) into these
plain, database-free values. Everything downstream (pairing, summaries, metrics, digest, alerts)
only ever sees these shapes, so a new connector needs nothing but a way to produce them.

Every datetime here is timezone-aware UTC; `require_utc` enforces it at construction so a naive
or local value never reaches the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any


class Channel(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    ANSWERING_SERVICE = "answering_service"
    VOICEMAIL = "voicemail"
    CHAT = "chat"


class Stage(StrEnum):
    AWARENESS = "awareness"
    CONSIDERATION = "consideration"
    DECISION = "decision"
    EXPERIENCE = "experience"
    ADVOCACY = "advocacy"


class Side(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"


class MessageKind(StrEnum):
    MESSAGE = "message"
    # A marker that the conversation ended (a chat closed, the visitor left). It never opens or
    # closes an inquiry; an inquiry still open when its conversation ends is *missed*.
    ENDED = "ended"
    # Stored by retention (monitor.retention) in place of a conversation's purged beginning: it
    # never pairs, but the inquiries after it are follow-ups, as they were before the purge.
    EARLIER = "earlier"


class CallOutcome(StrEnum):
    WAITING = "waiting"  # still in the queue: not an outcome yet, replaced when the call ends
    ANSWERED = "answered"
    ABANDONED = "abandoned"
    TIMEOUT = "timeout"
    EXIT_KEY = "exit_key"
    EXIT_EMPTY = "exit_empty"
    TRANSFERRED = "transferred"
    UNKNOWN = "unknown"


CALLBACK_PREFIX = "tel:"
# Numbers are written "+44 20 7946 0958", "020 7946 0958", "442079460958" in different
# systems; the last nine digits identify a subscriber in every national plan we have met
# without knowing the caller's country. Fewer digits (extensions, "anonymous") match nothing.
_CALLBACK_DIGITS = 9


def callback_conversation(number: str | None) -> str | None:
    """The conversation key shared by every phone-side event about one caller's number.

    A missed call or an answering-service message (customer side) and a later outbound call or
    logged callback to the same number (agent side) use this key, in any phone source, so the
    callback closes the inquiry even when it was made from another system (SPEC §2)."""
    digits = "".join(filter(str.isdigit, number or ""))
    if len(digits) < _CALLBACK_DIGITS:
        return None
    return CALLBACK_PREFIX + digits[-_CALLBACK_DIGITS:]


def require_utc(value: datetime, what: str) -> datetime:
    """Return `value` in UTC; raise ValueError if it is naive (its zone would be a guess)."""
    if value.tzinfo is UTC:
        return value  # the common case, and a hot path: a million calls are a million checks
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Thread:
    """How an e-mail finds its conversation at ingest, where earlier messages are known.

    Connectors see one message at a time and never the database, so an e-mail does not name its
    conversation outright; it says what links it to others and ingest (monitor.threads) keeps
    the links:

    - `keys`: its own Message-ID, every id it references (In-Reply-To, References) and a
      provider's thread id (Gmail `X-GM-THRID`). Messages sharing any key are one
      conversation, whatever order they arrive in (the union of all links).
    - `hint`: the customer's address plus the normalised subject (hashed). A message with no
      references (`by_hint`) joins a conversation holding a message with the same hint within
      `window` of it; every message's hint is remembered, so a later thread-less message can
      find a referenced thread too.

    The event's `conversation` is the name a new conversation gets when nothing links it (it
    is linked like a key); ingest replaces it with the conversation the links lead to.
    """

    keys: tuple[str, ...]
    hint: str | None = None
    by_hint: bool = False
    window: timedelta = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """One e-mail or chat message (or a chat's end marker) of a conversation."""

    external_id: str  # unique within the source: Message-ID, chat message id, file:line
    conversation: str  # stable per thread / chat / answering-service message
    at: datetime
    side: Side
    kind: MessageKind = MessageKind.MESSAGE
    automatic: bool = False  # auto-reply, bounce, bot, trigger: stored, never pairs
    internal: bool = False  # every participant is on our side: never an inquiry
    channel: Channel | None = None  # None: the source's channel
    customer: str | None = (
        None  # who is waiting (address, name): shown in the digest, never a label
    )
    subject: str | None = None
    thread: Thread | None = None  # e-mail: ingest resolves `conversation` from these links

    def __post_init__(self) -> None:
        if self.at.tzinfo is not UTC:
            object.__setattr__(self, "at", require_utc(self.at, "MessageEvent.at"))
        if not self.external_id:
            raise ValueError("MessageEvent.external_id is empty")
        if not self.conversation:
            raise ValueError("MessageEvent.conversation is empty")


@dataclass(frozen=True, slots=True, init=False)
class CallEvent:
    """One caller's stay in one phone queue, as far as it is known now.

    A caller still in the queue has outcome WAITING and no `left_at`; the connector emits the
    same `external_id` again with the final outcome once the call leaves the queue, and the store
    replaces the waiting row with it. A finished call never changes again.
    """

    external_id: str
    queue: str
    entered_at: datetime
    outcome: CallOutcome
    answered_at: datetime | None = None
    left_at: datetime | None = None
    wait_seconds: float | None = None  # None: derived from the timestamps
    talk_seconds: float | None = None
    caller: str | None = None  # the caller's number: digest and callbacks only, never a label

    def __init__(
        self,
        external_id: str,
        queue: str,
        entered_at: datetime,
        outcome: CallOutcome,
        answered_at: datetime | None = None,
        left_at: datetime | None = None,
        wait_seconds: float | None = None,
        talk_seconds: float | None = None,
        caller: str | None = None,
    ) -> None:
        # The dataclass's own __init__ of a frozen class sets each field through
        # object.__setattr__ and then runs __post_init__: this one checks the same first and
        # sets the slots directly, in a third of the time. It runs for every call ingested.
        if entered_at.tzinfo is not UTC:
            entered_at = require_utc(entered_at, "entered_at")
        if answered_at is not None and answered_at.tzinfo is not UTC:
            answered_at = require_utc(answered_at, "answered_at")
        if left_at is not None and left_at.tzinfo is not UTC:
            left_at = require_utc(left_at, "left_at")
        if outcome is CallOutcome.WAITING and left_at is not None:
            raise ValueError("a waiting call has no left_at")
        if wait_seconds is None and outcome is not CallOutcome.WAITING:
            end = answered_at or left_at
            if end is not None:
                wait_seconds = max(0.0, (end - entered_at).total_seconds())
        _set_external_id(self, external_id)
        _set_queue(self, queue)
        _set_entered_at(self, entered_at)
        _set_outcome(self, outcome)
        _set_answered_at(self, answered_at)
        _set_left_at(self, left_at)
        _set_wait_seconds(self, wait_seconds)
        _set_talk_seconds(self, talk_seconds)
        _set_caller(self, caller)

    def current_wait(self, now: datetime) -> timedelta:
        """How long a waiting caller has been in the queue at `now` (never negative)."""
        return max(timedelta(0), now - self.entered_at)


def _slot_setter(name: str) -> Callable[[CallEvent, Any], None]:
    """The setter of a CallEvent slot (a frozen class refuses setattr), for its __init__."""
    setter: Callable[[CallEvent, Any], None] = vars(CallEvent)[name].__set__
    return setter


_set_external_id = _slot_setter("external_id")
_set_queue = _slot_setter("queue")
_set_entered_at = _slot_setter("entered_at")
_set_outcome = _slot_setter("outcome")
_set_answered_at = _slot_setter("answered_at")
_set_left_at = _slot_setter("left_at")
_set_wait_seconds = _slot_setter("wait_seconds")
_set_talk_seconds = _slot_setter("talk_seconds")
_set_caller = _slot_setter("caller")

Event = MessageEvent | CallEvent


def callback_request(key: str, caller: str | None, at: datetime) -> list[Event]:
    """A missed call that needs a callback (SPEC §2): a customer-side message on channel
    `voicemail` in the caller's `tel:` conversation, which an outbound call or a logged callback
    to that number in any phone source closes. Nothing when the number cannot be called back
    (anonymous, an extension)."""
    return _by_number(f"missed:{key}", caller, at, Side.CUSTOMER, Channel.VOICEMAIL)


def callback_made(key: str, number: str | None, at: datetime) -> list[Event]:
    """An outbound call to `number` (SPEC §2): an agent-side message on channel `phone` in that
    number's `tel:` conversation, which closes its open callback inquiry in any phone source
    (answered or not: trying to call back is the response). Nothing when the number cannot be a
    customer's (an extension)."""
    return _by_number(f"out:{key}", number, at, Side.AGENT, Channel.PHONE)


def _by_number(
    external_id: str, number: str | None, at: datetime, side: Side, channel: Channel
) -> list[Event]:
    conversation = callback_conversation(number)
    if conversation is None:
        return []
    message = MessageEvent(
        external_id=external_id,
        conversation=conversation,
        at=at,
        side=side,
        channel=channel,
        customer=number,
    )
    return [message]
