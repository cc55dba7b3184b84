"""Normalized events: what every connector produces and the store keeps.

A connector turns whatever a source speaks (IMAP headers, queue_log lines, chat JSON) into these
plain, database-free values. Everything downstream (pairing, summaries, metrics, digest, alerts)
only ever sees these shapes, so a new connector needs nothing but a way to produce them.

Every datetime here is timezone-aware UTC; `require_utc` enforces it at construction so a naive
or local value never reaches the store. A call keeps its times as whole microseconds since the
Unix epoch (exact, and cheap to store), read back as aware UTC datetimes.

Every string is storable: the constructors replace what a database refuses (lone surrogates,
which a JSON `\ud800` escape or a UTF-7 word yields; NUL, which PostgreSQL refuses) with U+FFFD,
cut names and subjects to `MAX_TEXT` and make keys (ids, conversations, thread keys) longer than
`MAX_KEY` short and still distinct, since index entries have a size limit. So no value an
outsider writes can make a batch fail in the store.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar, cast


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
    # Stored by retention (monitor.store.retention) in place of a conversation's purged beginning:
    # it never pairs, but the inquiries after it are follow-ups, as they were before the purge.
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

    A missed call or an answering-service message (customer side) and a later outbound call,
    logged callback or answered call from the same number (agent side) use this key, in any
    phone source, so the callback closes the inquiry even when it was made from another system.
    It also makes a caller who rang three times one conversation: one inquiry per caller
    waiting for a callback, opened at the first unreturned call."""
    if not number:
        return None
    if number.isdigit():  # most logs write digits alone, or after a "+": no filtering needed
        digits = number
    elif number[0] == "+" and number[1:].isdigit():
        digits = number[1:]
    else:
        digits = "".join(filter(str.isdigit, number))
    if len(digits) < _CALLBACK_DIGITS or digits in _NO_NUMBERS or not digits.strip("0"):
        return None
    return CALLBACK_PREFIX + digits[-_CALLBACK_DIGITS:]


# How phone systems write a caller who withheld the number (case and punctuation ignored): the
# words of RFC 3323 privacy as Asterisk's PJSIP writes them ("Anonymous" <anonymous@...>), what
# carriers and CPaaS send (Restricted, Unavailable, Private, Withheld, Unknown, Blocked).
WITHHELD_WORDS = frozenset(
    "anonymous restricted unavailable private withheld unknown blocked".split()
)
# Digits that are no subscriber: Twilio spells the words above on a keypad (+266696687 is
# ANONYMOUS, +7378742833 RESTRICTED, +86282452253 UNAVAILABLE, +2562533 BLOCKED, +8656696
# UNKNOWN); an all-zero number is FreeSWITCH's default caller id (0000000000) or a log's "0".
_NO_NUMBERS = frozenset({"266696687", "7378742833", "86282452253", "2562533", "8656696"})


def is_withheld(number: str | None) -> bool:
    """True when the caller withheld the number (or the system had none to write): a caller
    from outside who cannot be called back, never an extension of ours."""
    if not number:
        return True
    folded = "".join(ch for ch in number.casefold() if ch.isalnum())
    if not folded:
        return True
    if folded.isdigit():
        return folded in _NO_NUMBERS or not folded.strip("0")
    return folded in WITHHELD_WORDS or any(folded.startswith(w) for w in WITHHELD_WORDS)


# Ids, conversations, queues and thread keys are index keys: PostgreSQL refuses an index entry
# over about 2,700 bytes, and 255 characters are at most 1,020 bytes of UTF-8.
MAX_KEY = 255
MAX_TEXT = 255  # a customer's name or address, a subject: shown, never searched
_SHORTEST_LIMIT = min(MAX_KEY, MAX_TEXT)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str, limit: int = MAX_TEXT) -> str:
    """`value` with lone surrogates and NUL replaced by U+FFFD, cut to `limit` characters."""
    if value.isascii() and "\x00" not in value and len(value) <= limit:
        return value  # nearly every value, checked in C
    value = _UNSTORABLE.sub("\ufffd", value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def storable_as_is(texts: Sequence[str]) -> bool:
    """Whether `storable` and `storable_key` would keep every one of `texts` as it is: ASCII
    without NUL, none over the shorter of their limits. What the events made without their
    constructors' checks (`email_event`, `finished_call`, a callback's message) ask first; one
    pass in C over the texts joined."""
    joined = "".join(texts)
    return (
        joined.isascii()
        and "\x00" not in joined
        # (none is longer than all together)
        and (len(joined) <= _SHORTEST_LIMIT or max(map(len, texts)) <= _SHORTEST_LIMIT)
    )


def storable_key(value: str) -> str:
    """`value` as a storable key: as `storable`, but a longer key keeps its start and ends in a
    digest of the whole, so two long keys that share a start stay two keys."""
    if value.isascii() and "\x00" not in value and len(value) <= MAX_KEY:
        return value
    value = _UNSTORABLE.sub("\ufffd", value)
    if len(value) <= MAX_KEY:
        return value
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]
    return f"{value[: MAX_KEY - 34]}~{digest}"


# Who answered, as a source names them: the identifiers it gives for one person (a display name,
# an id, an address), joined by this separator (the ASCII unit separator, which no name holds:
# `responder` takes it out of each part). Teams match any of them (monitor.measure.teams); the
# first is what people read.
RESPONDER_SEPARATOR = "\x1f"
_RESPONDER_PART = 100  # characters of one identifier


def responder(*names: str | None) -> str | None:
    """The responder of an agent-side message or an answered call from the identifiers its
    source gives for that person, most readable first (`responder("Ann Smith", "U0123ABCD",
    "ann@example.com")`); empty and repeated ones are dropped; None when none is left. Stored
    with the message or call, shown in reports, never a metric label."""
    parts: list[str] = []
    for name in names:
        if name is None:
            continue
        text = " ".join(name.replace(RESPONDER_SEPARATOR, " ").split())[:_RESPONDER_PART]
        if text and text.casefold() not in (p.casefold() for p in parts):
            parts.append(text)
    while parts and len(RESPONDER_SEPARATOR.join(parts)) > MAX_TEXT:
        parts.pop()  # whole identifiers, so a cut one never matches a team by accident
    return storable(RESPONDER_SEPARATOR.join(parts)) if parts else None


def responder_names(value: str | None) -> tuple[str, ...]:
    """The identifiers of a stored responder (`responder`), most readable first."""
    return tuple(value.split(RESPONDER_SEPARATOR)) if value else ()


def require_utc(value: datetime, what: str) -> datetime:
    """Return `value` in UTC; raise ValueError if it is naive (its zone would be a guess)."""
    if value.tzinfo is UTC:
        return value  # the common case, and a hot path: a million calls are a million checks
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


# Marks a `Thread.hint` among an e-mail's thread keys (connectors build it, ingest
# reads it), so a hint can never be taken for a Message-ID.
HINT_PREFIX = "~"


@dataclass(frozen=True, slots=True)
class Thread:
    """How an e-mail finds its conversation at ingest, where earlier messages are known.

    Connectors see one message at a time and never the database, so an e-mail does not name its
    conversation outright; it says what links it to others and ingest (monitor.store.threads) keeps
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

    def __post_init__(self) -> None:
        keys = tuple(map(storable_key, self.keys))
        if keys != self.keys or type(self.keys) is not tuple:  # (each new key is unequal)
            object.__setattr__(self, "keys", keys)
        if self.hint is not None:
            object.__setattr__(self, "hint", storable_key(self.hint))


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
    # External ids (in this source) of what the message is about: for a reply, the messages it
    # names as the ones it answers (In-Reply-To, a Slack thread's parent), so that a sender's
    # clock running behind cannot put the answer before its question (monitor.measure.inquiries);
    # for a missed call's callback request, the call (a short abandon asks for no callback).
    refers: tuple[str, ...] = ()
    # Who wrote an agent-side message, when the source says (`responder`): reports credit the
    # inquiry it answers to them and their team. Never a metric label.
    agent: str | None = None
    # Why an automatic (or internal) message never pairs, in a few words naming the header or
    # subtype that made it so (`Auto-Submitted: auto-replied`, `subtype: bot_message`): what
    # `report --items` says of the messages it leaves out. Vocabulary and short tokens only.
    left_out: str | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is not UTC:
            object.__setattr__(self, "at", require_utc(self.at, "MessageEvent.at"))
        # Each value is set again only when it changed (rarely: the checks are for hostile input).
        for name in ("external_id", "conversation"):
            value = getattr(self, name)
            if storable_key(value) is not value:
                object.__setattr__(self, name, storable_key(value))
        if self.refers:  # external ids: made storable as theirs are, so that they still match
            object.__setattr__(self, "refers", tuple(map(storable_key, self.refers)))
        for name in ("customer", "subject", "agent", "left_out"):
            value = getattr(self, name)
            if value is not None and storable(value) is not value:
                object.__setattr__(self, name, storable(value))
        if not self.external_id:
            raise ValueError("MessageEvent.external_id is empty")
        if not self.conversation:
            raise ValueError("MessageEvent.conversation is empty")


_Made = TypeVar("_Made")
_new = object.__new__


def slot_maker(cls: type[_Made], names: Sequence[str] | None = None) -> Callable[..., _Made]:
    """A function making an instance of frozen dataclass `cls` from the values of its fields
    (or of `names`, which must name them all) in that order, each set through its slot as its
    __init__ sets them, but without its checks: for values already checked (or known to pass
    them). The calls are written out in a function generated once (as `dataclasses` generates
    __init__): for a message's 14 slots a fifth less than calling each slot's setter through
    `map` in C, whose set-up was paid per slot, and far less than __init__'s checks."""
    own = [f.name for f in fields(cast(Any, cls))]
    chosen = own if names is None else list(names)
    if sorted(chosen) != sorted(own):
        raise ValueError(f"{cls.__name__}: {chosen} are not its fields")
    setters = {f"_set_{name}": getattr(cls, name).__set__ for name in chosen}
    body = "".join(f"    _set_{name}(made, {name})\n" for name in chosen)
    source = f"def make({', '.join(chosen)}):\n    made = _new(_cls)\n{body}    return made\n"
    namespace: dict[str, Any] = {"_new": _new, "_cls": cls, **setters}
    exec(source, namespace)  # (written of the class's own field names only)
    made: Callable[..., _Made] = namespace["make"]
    return made


_make_message = slot_maker(MessageEvent)
_make_thread = slot_maker(Thread)


def email_event(
    *,
    external_id: str,
    conversation: str,
    at: datetime,
    side: Side,
    automatic: bool,
    internal: bool,
    customer: str | None,
    subject: str | None,
    thread: tuple[tuple[str, ...], str | None, bool, timedelta],
    refers: tuple[str, ...],
    agent: str | None,
    left_out: str | None,
) -> MessageEvent:
    """`MessageEvent(..., thread=Thread(*thread), ...)` of an e-mail (kind MESSAGE, the
    source's channel), made for less: when the time is UTC, both ids are there and every text
    is already storable (ASCII without NUL, none over the limits), which is all the
    constructors would check and change, the fields are set directly; otherwise the
    constructors make it. The same event either way (a test holds the two equal); an IMAP
    first sync makes 20,000 of them, and the constructors' calls per field were a fifth of
    the cost of each."""
    keys, hint = thread[0], thread[1]
    # (None as "": an empty text is as storable as an absent one)
    texts = (
        external_id, conversation, *keys, *refers,
        hint or "", customer or "", subject or "", agent or "", left_out or "",
    )  # fmt: skip
    as_is = (
        at.tzinfo is UTC
        and bool(external_id)
        and bool(conversation)
        and type(keys) is tuple
        and type(refers) is tuple
        and storable_as_is(texts)
    )
    made_thread = _make_thread(*thread) if as_is else Thread(*thread)
    values = (
        external_id, conversation, at, side, MessageKind.MESSAGE, automatic, internal,
        None, customer, subject, made_thread, refers, agent, left_out,
    )  # fmt: skip
    return _message(values, as_is)


def _message(values: tuple[Any, ...], as_is: bool) -> MessageEvent:
    """The MessageEvent of `values` (its fields in order): set directly when `as_is` (the
    caller found nothing its checks would change), else through its constructor."""
    return _make_message(*values) if as_is else MessageEvent(*values)


# Instants of calls are kept as whole microseconds since the Unix epoch (UTC): exact for any
# datetime, what SQLite stores (monitor.store.instants), and a queue_log's epoch seconds become one
# without a datetime object in between (three per call, a million calls per import).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def micros(value: datetime, what: str = "time") -> int:
    """An aware datetime as whole microseconds since the Unix epoch (exact); ValueError naming
    `what` if it is naive."""
    return (require_utc(value, what) - EPOCH) // MICROSECOND


def from_micros(value: int) -> datetime:
    """The aware UTC datetime `value` microseconds after the Unix epoch."""
    return EPOCH + timedelta(microseconds=value)


class _CallFields(NamedTuple):
    # In the order of the call table's columns after `source`: the store's row is
    # (source,) + event, made in C (an import stores a million calls).
    external_id: str
    queue: str
    entered_us: int
    answered_us: int | None
    left_us: int | None
    wait_seconds: float | None  # None: unknown (a waiting call)
    talk_seconds: float | None
    outcome: CallOutcome
    caller: str | None  # the caller's number: digest and callbacks only, never a label
    # The source itself says the caller hung up too soon to count (Aircall's short_abandoned):
    # a short abandon whatever `short_abandon` is set to
    # (monitor.measure.summaries.is_short_abandon).
    short_abandon: bool
    # Who answered (`responder`): the queue member, the answering channel, a call log's agent
    # column. Reports only, never a label.
    agent: str | None
    # Where the phone system ended an `exit_empty` call no person took (3CX `EndCall 899`, a
    # dialplan's hang-up, an IVR option), as the record names it (`destination`): reports and
    # the digest only, never a label.
    ended_by: str | None


class CallEvent(_CallFields):
    """One caller's stay in one phone queue, as far as it is known now.

    A caller still in the queue has outcome WAITING and no `left_at`; the connector emits the
    same `external_id` again with the final outcome once the call leaves the queue, and the store
    replaces the waiting row with it. A finished call never changes again.

    Made from aware datetimes (`CallEvent(id, queue, entered_at, outcome, ...)`; a wait not
    given is derived from the times) or from epoch seconds (`CallEvent.from_epochs`). The times
    are held as `*_us`, whole microseconds since the Unix epoch, and read as aware UTC datetimes
    by `entered_at`, `answered_at` and `left_at`. A tuple, as a million are made per import.
    """

    __slots__ = ()

    def __new__(
        cls,
        external_id: str,
        queue: str,
        entered_at: datetime,
        outcome: CallOutcome,
        answered_at: datetime | None = None,
        left_at: datetime | None = None,
        wait_seconds: float | None = None,
        talk_seconds: float | None = None,
        caller: str | None = None,
        short_abandon: bool = False,
        agent: str | None = None,
        ended_by: str | None = None,
    ) -> CallEvent:
        return _made(
            cls,
            external_id,
            queue,
            micros(entered_at, "entered_at"),
            outcome,
            None if answered_at is None else micros(answered_at, "answered_at"),
            None if left_at is None else micros(left_at, "left_at"),
            wait_seconds,
            talk_seconds,
            caller,
            short_abandon,
            agent,
            ended_by,
        )

    @classmethod
    def from_epochs(
        cls,
        external_id: str,
        queue: str,
        entered: float,
        outcome: CallOutcome,
        answered: float | None = None,
        left: float | None = None,
        wait_seconds: float | None = None,
        talk_seconds: float | None = None,
        caller: str | None = None,
        short_abandon: bool = False,
        agent: str | None = None,
        ended_by: str | None = None,
    ) -> CallEvent:
        """A call whose times are Unix epoch seconds (UTC), as phone logs write them: no
        datetime is made (the queue_log import's hot path)."""
        return _made(
            cls,
            external_id,
            queue,
            round(entered * 1_000_000),
            outcome,
            None if answered is None else round(answered * 1_000_000),
            None if left is None else round(left * 1_000_000),
            wait_seconds,
            talk_seconds,
            caller,
            short_abandon,
            agent,
            ended_by,
        )

    @property
    def entered_at(self) -> datetime:
        return from_micros(self.entered_us)

    @property
    def answered_at(self) -> datetime | None:
        return None if self.answered_us is None else from_micros(self.answered_us)

    @property
    def left_at(self) -> datetime | None:
        return None if self.left_us is None else from_micros(self.left_us)

    def current_wait(self, now: datetime) -> timedelta:
        """How long a waiting caller has been in the queue at `now` (never negative)."""
        return max(timedelta(0), now - self.entered_at)

    def __repr__(self) -> str:  # the times as datetimes: what a failing test should show
        return (
            f"CallEvent({self.external_id!r}, {self.queue!r}, {self.entered_at!r}, "
            f"{self.outcome!r}, answered_at={self.answered_at!r}, left_at={self.left_at!r}, "
            f"wait_seconds={self.wait_seconds!r}, talk_seconds={self.talk_seconds!r}, "
            f"caller={self.caller!r}, short_abandon={self.short_abandon!r}, "
            f"agent={self.agent!r}, ended_by={self.ended_by!r})"
        )


_new_tuple = tuple.__new__


def finished_call(
    external_id: str,
    queue: str,
    entered: float,
    outcome: CallOutcome,
    answered: float | None,
    left: float | None,
    wait_seconds: float | None,
    talk_seconds: float | None,
    caller: str | None,
    agent: str | None,
) -> CallEvent:
    """`CallEvent.from_epochs(external_id, queue, entered, outcome, answered, left,
    wait_seconds, talk_seconds, caller, False, agent)`, made for less: when the wait is known,
    the call is not waiting and every text is already storable (ASCII without NUL, none over
    its limit), which is all `_made` would check and change, the tuple is made directly;
    otherwise `from_epochs` makes it. The same event either way (a test holds the two equal);
    a queue_log import makes a million, and the calls and checks in between were a third of
    the cost of each."""
    # `storable_as_is`, written out: through the function this took 0.6 µs more a call (+70%),
    # and an import makes a million calls.
    if (
        wait_seconds is not None
        and outcome is not CallOutcome.WAITING
        and len(external_id) <= MAX_KEY
        and len(queue) <= MAX_KEY
        and (caller is None or len(caller) <= MAX_TEXT)
        and (agent is None or len(agent) <= MAX_TEXT)
    ):
        joined = f"{external_id}{queue}{caller or ''}{agent or ''}"
        if joined.isascii() and "\x00" not in joined:
            values = (
                external_id, queue, round(entered * 1_000_000),
                None if answered is None else round(answered * 1_000_000),
                None if left is None else round(left * 1_000_000),
                wait_seconds, talk_seconds, outcome, caller, False, agent, None,
            )  # fmt: skip
            event: CallEvent = _new_tuple(CallEvent, values)
            return event
    return CallEvent.from_epochs(
        external_id, queue, entered, outcome, answered, left, wait_seconds, talk_seconds,
        caller, False, agent,
    )  # fmt: skip


# A destination where the system ended a call is written by the PBX's dialplan, which whoever
# configured it (or a caller id fed through it) controls: kept to this many characters, and to
# the characters destination names are written with; anything else becomes `?`. So it prints
# safely in a terminal, a CSV cell or a mail, and a report's list of them stays readable.
MAX_DESTINATION = 48
_UNSAFE_DESTINATION = re.compile(r"[^\w ,./:()#*+-]")


def destination(value: str) -> str:
    """A destination's name as stored and shown: `?` for each character that is not a word
    character or one of ` ,./:()#*+-`, cut to `MAX_DESTINATION`; `?` for none."""
    shown = _UNSAFE_DESTINATION.sub("?", " ".join(value.split()))
    return shown[:MAX_DESTINATION] or "?"


def _made(
    cls: type[CallEvent],
    external_id: str,
    queue: str,
    entered: int,
    outcome: CallOutcome,
    answered: int | None,
    left: int | None,
    wait_seconds: float | None,
    talk_seconds: float | None,
    caller: str | None,
    short_abandon: bool,
    agent: str | None,
    ended_by: str | None,
) -> CallEvent:
    if outcome is CallOutcome.WAITING and left is not None:
        raise ValueError("a waiting call has no left_at")
    # Written out (as `storable` does): this runs for every call of a million-line import.
    if len(external_id) > MAX_KEY or not external_id.isascii() or "\x00" in external_id:
        external_id = storable_key(external_id)
    if len(queue) > MAX_KEY or not queue.isascii() or "\x00" in queue:
        queue = storable(queue, MAX_KEY)
    if caller is not None and (len(caller) > MAX_TEXT or not caller.isascii() or "\x00" in caller):
        caller = storable(caller)
    if agent is not None and (len(agent) > MAX_TEXT or not agent.isascii() or "\x00" in agent):
        agent = storable(agent)
    if ended_by is not None:  # a few calls of a day: no need for speed
        ended_by = destination(ended_by)
    if wait_seconds is None and outcome is not CallOutcome.WAITING:
        end = answered if answered is not None else left
        if end is not None:
            wait_seconds = max(0.0, (end - entered) / 1_000_000)
    event: CallEvent = _new_tuple(
        cls,
        (
            external_id,
            queue,
            entered,
            answered,
            left,
            wait_seconds,
            talk_seconds,
            outcome,
            caller,
            short_abandon,
            agent,
            ended_by,
        ),
    )
    return event


Event = MessageEvent | CallEvent


def callback_request(key: str, caller: str | None, at: datetime, *, call: str) -> list[Event]:
    """A missed call that needs a callback: a customer-side message on channel `voicemail` in
    the caller's `tel:` conversation, which an outbound call or a logged callback to that
    number, or the caller getting through later, in any phone source closes. `call` is the
    external id of the missed call it stands for (a short abandon asks for no callback, which is
    decided when the inquiries are derived, with the targets of the day). Nothing when the
    number cannot be called back (anonymous, an extension)."""
    missed = _by_number(f"missed:{key}", caller, at, Side.CUSTOMER, Channel.VOICEMAIL, (call,))
    return [*missed]


def callback_made(
    key: str, number: str | None, at: datetime, agent: str | None = None
) -> list[Event]:
    """An outbound call to `number`: an agent-side message on channel `phone` in that number's
    `tel:` conversation, which closes its open callback inquiry in any phone source (answered
    or not: trying to call back is the response); `agent` is who called, when the log says.
    Nothing when the number cannot be a customer's (an extension)."""
    return [*_by_number(f"out:{key}", number, at, Side.AGENT, Channel.PHONE, agent=agent)]


def answering_message(
    key: str,
    taken: datetime,
    *,
    caller: str | None,
    callback_number: str | None,
    urgency: str | None = None,
    returned: datetime | None = None,
) -> list[Event]:
    """A message an answering service took for us (a row of its log, a notification it
    e-mailed): a customer-side inquiry on channel `answering_service` in the `tel:`
    conversation of the number to call back (the callback number, else the caller's), which an
    outbound call or a logged callback to that number, or the caller getting through, in any
    phone source closes. `returned` is when the service says the call was returned: an
    agent-side callback in the same conversation. A number too short to call back keeps the
    message in a conversation of its own, which only its `returned` can close. `key` is the
    message's id in its source (the `msg:` and `callback:` ids are made from it)."""
    number = callback_number or caller
    if not number:
        raise ValueError("an answering-service message needs a number to call back")
    conversation = callback_conversation(number) or f"answering:{key}"
    events: list[Event] = [
        MessageEvent(
            external_id=f"msg:{key}",
            conversation=conversation,
            at=taken,
            side=Side.CUSTOMER,
            channel=Channel.ANSWERING_SERVICE,
            customer=caller or number,
            subject=f"urgency: {urgency[:40]}" if urgency else None,
        )
    ]
    if returned is not None:
        events.append(
            MessageEvent(
                external_id=f"callback:{key}",
                conversation=conversation,
                at=returned,
                side=Side.AGENT,
                channel=Channel.PHONE,
                customer=number,
            )
        )
    return events


GOT_THROUGH_PREFIX = "through:"
GOT_THROUGH = frozenset({CallOutcome.ANSWERED, CallOutcome.TRANSFERRED})


def got_through(call: CallEvent) -> str | None:
    """The callback conversation an answered inbound call answers: its caller got through.

    Like a callback, the answer closes the number's open callback inquiry in any phone source
    (a site that only logs its queues, a queue_log, has no outbound calls, and its missed
    callers who ring again and are answered were helped all the same). The store keeps this key
    with the call (`call.caller_key`) and measures the answer as an agent-side message at the
    moment the call was answered; None for other outcomes and numbers that cannot be called."""
    if call.outcome not in GOT_THROUGH or call.caller is None:
        return None
    return callback_conversation(call.caller)


def answer_time(answered: datetime | None, entered: datetime, wait: float | None) -> datetime:
    """When a call was answered: its answer time, else when its wait ended (a log that gives
    the wait, not the time), else when it entered."""
    if answered is not None:
        return answered
    return entered + timedelta(seconds=wait or 0.0)


def _by_number(
    external_id: str,
    number: str | None,
    at: datetime,
    side: Side,
    channel: Channel,
    refers: tuple[str, ...] = (),
    agent: str | None = None,
) -> list[MessageEvent]:
    conversation = callback_conversation(number)
    if conversation is None:
        return []
    assert number is not None  # it has a conversation
    # Made as the constructor would when nothing needs to change (as `email_event`): a queue_log
    # import asks for a callback for every fourth call, and __post_init__ was most of its cost.
    as_is = (
        at.tzinfo is UTC
        and type(refers) is tuple
        and storable_as_is((external_id, number, agent or "", *refers))
    )
    values = (
        external_id, conversation, at, side, MessageKind.MESSAGE, False, False, channel,
        number, None, None, refers, agent, None,
    )  # fmt: skip
    return [_message(values, as_is)]
