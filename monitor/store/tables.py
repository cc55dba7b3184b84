"""The tables. Every datetime column is an `Instant`: aware UTC in Python, microseconds on SQLite.

- `Message` and `Call` are what connectors produced, keyed by (source, external_id), so storing
  the same event twice is a no-op.
- `ThreadLink` maps what links e-mails into threads (Message-IDs, referenced ids, Gmail thread
  ids, subject+customer hints) to the conversation that holds them, so a message arriving in a
  later poll, or after a restart, finds its thread (monitor.store.threads).
- `Inquiry` is derived from the messages of one conversation and is rebuilt whenever that
  conversation gets a new message. `due_at` (when an open inquiry breaches) is computed once at
  ingest, so "open and breached now" is an indexed comparison at scrape time, not a calendar walk.
- `Tally` holds the monotonic counters and histogram buckets of `/metrics`, updated in the same
  transaction as the rows they count, so a scrape reads a few rows whatever the history's size.
- `PurgedTally` keeps what rows deleted by retention had counted, for recounts.
- `SourceState` holds each source's cursor (saved with the rows it covers) and its health
  (monitor.store.health says what it means).
- `Meta` holds the schema version and the bucket layout the tallies were built with.
- `Delivery` is an outgoing message (a digest for a day, an alert notification) claimed by a
  unique key *before* it is sent, so two instances or a retry never send it twice;
  `DeliveryAttempt` keeps every attempt and its error.
- `AlertState` is each (rule, subject)'s last evaluated state, so notifications go out on
  transitions, not on every evaluation.

This module declares the schema; the code uses its SQLAlchemy Core copy, monitor/store/schema.py,
written from these classes by `python -m monitor.store.schema_writer`: run it after a change here
(tests/store/test_schema.py fails until then).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Column, Index, Table, UniqueConstraint, false, literal_column, text
from sqlmodel import Field, SQLModel

from monitor.store.instants import Instant

# 2: ix_call_waiting (partial) replaces ix_call_outcome; 3: times on SQLite are integers (Instant);
# 4: message.refers (what a reply answers, the call of a callback request), call.short_abandon,
# call.caller_key (an answered caller's callback conversation) and ix_call_got_through;
# 5: who answered (message.agent, call.agent, inquiry.agent, inquiry.closed_by) and why a
# message never pairs (message.left_out)
# 6: inquiry.verdict (within/late, once given) and ix_inquiry_unsettled
# 7: source_state.read_from (when the last successful poll began) and failing_since
# 8: the open backlog by index and aggregate: ix_inquiry_open and ix_inquiry_open_due (open
# inquiries only) replace ix_inquiry_status, ix_alert_firing, and the open-inquiry tallies
# 9: call.ended_by (where the phone system ended a call no person took)
# 10: one index of messages by conversation, ix_message_conversation (conversation, source,
# side), replaces ix_message_conversation (source, conversation) and ix_message_callbacks
SCHEMA_VERSION = 10

# Calls still in the queue are a handful beside the history, and only the waiting gauges, figures
# and alerts look calls up by outcome, always for these: so the index holds them alone and
# storing a finished call costs it nothing (an index on every call's outcome cost a tenth of a
# million-line import). Queries say it as this very SQL (`WAITING_CALL`), not with a bound
# parameter, so PostgreSQL can match the index whatever plan it caches.
_WAITING_SQL = "outcome = 'waiting'"
# Only answered calls carry a caller key: the index holds them alone.
_GOT_THROUGH_SQL = "caller_key IS NOT NULL"
# Open inquiries whose `late` verdict is not given yet: each scrape settles those whose due time
# has passed (monitor.store.verdicts), found by their due time among these few.
_UNSETTLED_SQL = "status = 'open' AND verdict IS NULL"
# Open inquiries: a backlog (unreturned callbacks, stale e-mail) can be tens of thousands beside
# the history's hundreds of thousands answered. Indexes on these alone let a report read the
# oldest few and the not-yet-due few without reading the rest (monitor.store.backlog), and
# cost an answered inquiry nothing at ingest.
_OPEN_SQL = "status = 'open'"
# Alerts firing now: a rule's "is anything firing" is one seek, however many subjects fire.
_FIRING_SQL = "state = 'firing'"


class Message(SQLModel, table=True):
    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        # One index for every look-up by conversation: a source's messages of some
        # conversations, the callers' side or our side of a `tel:` conversation in every phone
        # source, whether a conversation is stored at all. (Two indexes, one led by the source,
        # cost each stored message, most of them callback requests, one more index entry.)
        Index("ix_message_conversation", "conversation", "source", "side"),
    )
    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    conversation: str
    at: datetime = Field(sa_type=Instant)
    side: str
    kind: str
    automatic: bool
    internal: bool
    channel: str
    customer: str | None = None
    subject: str | None = None
    # External ids of what the message refers to, separated by spaces (ids never hold one):
    # the messages a reply answers, or the missed call a callback request stands for.
    refers: str | None = None
    # Who wrote an agent-side message, when the source says (monitor.measure.events.responder).
    agent: str | None = None
    # Why an automatic or internal message never pairs: the header or subtype, in a few words.
    left_out: str | None = None


class ThreadLink(SQLModel, table=True):
    __tablename__ = "thread_link"
    __table_args__ = (
        UniqueConstraint("source", "key", "conversation"),
        Index("ix_thread_link_conversation", "source", "conversation"),
    )
    id: int | None = Field(default=None, primary_key=True)
    source: str
    # "<message-id>", "gm:<thread id>", or "~<hash of customer and subject>" (a hint). An id key
    # belongs to one conversation; a hint to one per span of time.
    key: str
    conversation: str
    # A hint: the span of its messages in this conversation
    first_at: datetime | None = Field(default=None, sa_type=Instant)
    last_at: datetime | None = Field(default=None, sa_type=Instant)


# The partial indexes below say their WHERE for SQLite only: `postgresql_where` here would load
# SQLAlchemy's PostgreSQL dialect (and asyncpg's asyncio) into every process, ~50 ms of each
# command's start-up on SQLite. monitor.store.database gives PostgreSQL the same WHERE.
class Call(SQLModel, table=True):
    __tablename__ = "call"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index(
            "ix_call_waiting",
            "outcome",  # two equal columns: SQLite's planner prefers it without statistics
            "source",
            sqlite_where=text(_WAITING_SQL),
        ),
        Index("ix_call_entered", "source", "entered_at"),
        Index(
            "ix_call_got_through",
            "caller_key",
            sqlite_where=text(_GOT_THROUGH_SQL),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    source: str
    external_id: str
    queue: str
    entered_at: datetime = Field(sa_type=Instant)
    answered_at: datetime | None = Field(default=None, sa_type=Instant)
    left_at: datetime | None = Field(default=None, sa_type=Instant)
    wait_seconds: float | None = None
    talk_seconds: float | None = None
    outcome: str
    caller: str | None = None
    # The source itself called it a short abandon. A server default, as the v4 upgrade adds it,
    # so a call stored without it (every source but a few presets) is not one.
    short_abandon: bool = Field(
        default=False,
        sa_column=Column("short_abandon", Boolean, nullable=False, server_default=false()),
    )
    # An answered call's caller: the callback conversation of the number (`tel:<last nine
    # digits>`), so that a callback request of that number, in any source, finds the caller
    # got through. None for other calls, which the index (ix_call_got_through) leaves out.
    caller_key: str | None = None
    # Who answered: a queue member, the answering channel, a call log's agent column.
    agent: str | None = None
    # Where the phone system ended an `exit_empty` call (bounded, printable: never a label).
    ended_by: str | None = None


class QueueName(SQLModel, table=True):
    """A queue name a phone source without a `queues:` list exports as its own label: the
    first `max_queues` it met (monitor.store.queue_labels). Every other name is stored as
    `other`."""

    __tablename__ = "queue_name"
    source: str = Field(primary_key=True)
    name: str = Field(primary_key=True)


class Inquiry(SQLModel, table=True):
    __tablename__ = "inquiry"
    __table_args__ = (
        UniqueConstraint("source", "conversation", "opened_by"),
        Index("ix_inquiry_opened", "source", "opened_at"),
        # The oldest open first, per source and channel; and the open ones by due time (the
        # few not yet due, the next to breach). Both hold open inquiries only.
        Index("ix_inquiry_open", "source", "channel", "opened_at", sqlite_where=text(_OPEN_SQL)),
        Index("ix_inquiry_open_due", "source", "channel", "due_at", sqlite_where=text(_OPEN_SQL)),
        Index(
            "ix_inquiry_unsettled",
            "status",  # an equal column first: SQLite's planner prefers it without statistics
            "due_at",
            sqlite_where=text(_UNSETTLED_SQL),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    source: str
    conversation: str
    channel: str
    kind: str  # first | followup
    status: str  # open | answered | missed
    opened_at: datetime = Field(sa_type=Instant)
    opened_by: str  # external_id of the customer message that opened it
    closed_at: datetime | None = Field(default=None, sa_type=Instant)  # the human agent reply
    # The conversation ended unanswered (missed).
    ended_at: datetime | None = Field(default=None, sa_type=Instant)
    response_seconds: float | None = None
    business_seconds: float | None = None
    # When it breaches the reply target (None: never, no hours).
    due_at: datetime | None = Field(default=None, sa_type=Instant)
    breached: bool = False  # answered (or missed) after due_at
    clamped: bool = False  # the reply was dated before the question (clock skew): counted as 0 s
    customer: str | None = None
    subject: str | None = None
    # The human agent message that answered it (its external id) and who wrote it.
    closed_by: str | None = None
    agent: str | None = None
    # Its verdict in support_response_verdicts_total, once given: `within` or `late` when it
    # closed, `late` when a scrape found it still open after its due time
    # (monitor.store.verdicts); None while undecided. A verdict given is never taken back (a
    # counter never goes down): a rebuild keeps it, even when a reply dated before the due time
    # is read afterwards or the targets change.
    verdict: str | None = None


class Tally(SQLModel, table=True):
    __tablename__ = "tally"
    __table_args__ = (UniqueConstraint("metric", "source", "labels", "le"),)
    id: int | None = Field(default=None, primary_key=True)
    metric: str
    source: str
    labels: str  # canonical "k=v,k=v" of the labels that come from the data (channel, queue, ...)
    le: str  # histogram bucket bound ("300", "+Inf"), "_sum" for the sum, "" for a counter
    value: float


class PurgedTally(SQLModel, table=True):
    """What rows deleted by retention (monitor.store.retention) had added to the tallies, so that a
    recount of the store plus these still equals the tallies: counters never go down."""

    __tablename__ = "purged_tally"
    __table_args__ = (UniqueConstraint("metric", "source", "labels", "le"),)
    id: int | None = Field(default=None, primary_key=True)
    metric: str
    source: str
    labels: str
    le: str  # the bucket bound of the layout in force when the rows were deleted
    value: float


class SourceState(SQLModel, table=True):
    __tablename__ = "source_state"
    source: str = Field(primary_key=True)
    cursor: str | None = None  # JSON
    last_attempt_at: datetime | None = Field(default=None, sa_type=Instant)
    last_success_at: datetime | None = Field(default=None, sa_type=Instant)
    # When the last successful poll began: everything the source held then is stored, so a
    # period that ended before it is complete (the digest waits for it; monitor.store.health).
    read_from: datetime | None = Field(default=None, sa_type=Instant)
    last_error: str | None = None
    # When the current run of failed polls began (the first of them); None while it succeeds.
    failing_since: datetime | None = Field(default=None, sa_type=Instant)
    last_error_at: datetime | None = Field(default=None, sa_type=Instant)
    consecutive_failures: int = 0
    poll_errors_total: int = 0
    records_rejected_total: int = 0


class Meta(SQLModel, table=True):
    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


class Delivery(SQLModel, table=True):
    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("key"),
        Index("ix_delivery_status", "status", "next_attempt_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # Unique per message and recipient channel, e.g. "digest:2026-11-21" or (a group of alert
    # notices, monitor.publish.alerts.groups)
    # "alert:hold_max:firing:2026-11-21T10:04:00Z:<hash>:notify[0]".
    key: str
    purpose: str  # digest | alert
    notifier: str  # email | webhook
    status: str  # pending | sent | failed (permanent error or retries exhausted)
    claimed_by: str  # the instance that claimed it (host:pid)
    claimed_at: datetime = Field(sa_type=Instant)
    payload: str | None = None  # JSON of what to send, so a retry sends the same thing
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=Instant)
    last_error: str | None = None
    sent_at: datetime | None = Field(default=None, sa_type=Instant)


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempt"
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="delivery.id", index=True)
    at: datetime = Field(sa_type=Instant)
    error: str | None = None  # None: this attempt delivered
    permanent: bool = False


class AlertState(SQLModel, table=True):
    __tablename__ = "alert_state"
    __table_args__ = (
        UniqueConstraint("rule", "subject"),
        Index("ix_alert_firing", "rule", sqlite_where=text(_FIRING_SQL)),
    )
    id: int | None = Field(default=None, primary_key=True)
    rule: str  # e.g. hold_max, reply_overdue, source_stale
    subject: str  # what fires: "source/queue/call id", "source/conversation", "source"
    source: str | None = None
    severity: str  # warning | critical
    state: str  # ok | firing
    value: float | None = None
    threshold: float | None = None
    # When the current (or last) firing began.
    started_at: datetime | None = Field(default=None, sa_type=Instant)
    resolved_at: datetime | None = Field(default=None, sa_type=Instant)
    last_notified_at: datetime | None = Field(default=None, sa_type=Instant)
    # When the row was last written: a transition, or a change of severity or threshold. A
    # state that keeps firing as it was is not rewritten, so `value` is as of then too.
    evaluated_at: datetime = Field(sa_type=Instant)


class SourceLease(SQLModel, table=True):
    """Who polls a source now and when it is next due, shared by every instance."""

    __tablename__ = "source_lease"
    source: str = Field(primary_key=True)
    next_run_at: datetime = Field(sa_type=Instant)
    lease_owner: str | None = None
    lease_until: datetime | None = Field(default=None, sa_type=Instant)


def _table(model: type[SQLModel]) -> Table:
    # SQLModel sets __table__ at class creation; typed here once instead of at every use.
    return model.__table__  # type: ignore[attr-defined, no-any-return]


MESSAGES = _table(Message)
THREAD_LINKS = _table(ThreadLink)
CALLS = _table(Call)
QUEUE_NAMES = _table(QueueName)
WAITING_CALL: Any = CALLS.c.outcome == literal_column(
    "'waiting'"
)  # the condition of ix_call_waiting
# The condition of ix_call_got_through, in its very SQL (as WAITING_CALL, for the planners).
GOT_THROUGH_CALL: Any = literal_column("caller_key IS NOT NULL")
INQUIRIES = _table(Inquiry)
# The condition of ix_inquiry_unsettled, in its very SQL.
UNSETTLED_INQUIRY: Any = literal_column(_UNSETTLED_SQL)
# The conditions of ix_inquiry_open / ix_inquiry_open_due and ix_alert_firing, in their very SQL
# (a bound 'open' would not match a partial index in SQLite's planner).
OPEN_INQUIRY: Any = literal_column(_OPEN_SQL)
FIRING_ALERT: Any = literal_column(_FIRING_SQL)
TALLIES = _table(Tally)
PURGED_TALLIES = _table(PurgedTally)
STATES = _table(SourceState)
META = _table(Meta)
DELIVERIES = _table(Delivery)
ATTEMPTS = _table(DeliveryAttempt)
ALERT_STATES = _table(AlertState)
LEASES = _table(SourceLease)
