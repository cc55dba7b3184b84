"""The tables as SQLAlchemy Core, which is all any query uses of them: written by
`python -m monitor.store.schema_writer` from the SQLModel declarations in monitor.store.tables
(the one place the schema is declared and explained). Do not edit: change tables.py and run
that command; tests/store/test_schema.py fails until this file is what it writes.

Every command imports this module rather than tables.py: building the SQLModel classes imports
SQLAlchemy's ORM and pydantic's model building, about a tenth of a second of each command's
start-up.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    false,
    literal_column,
    text,
)

from monitor.store.instants import Instant

SCHEMA_VERSION = 10
METADATA = MetaData(naming_convention={"ix": "ix_%(column_0_label)s"})


MESSAGES = Table(
    "message",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("source", String, nullable=False),
    Column("external_id", String, nullable=False),
    Column("conversation", String, nullable=False),
    Column("at", Instant, nullable=False),
    Column("side", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("automatic", Boolean, nullable=False),
    Column("internal", Boolean, nullable=False),
    Column("channel", String, nullable=False),
    Column("customer", String),
    Column("subject", String),
    Column("refers", String),
    Column("agent", String),
    Column("left_out", String),
    UniqueConstraint("source", "external_id"),
    Index("ix_message_conversation", "conversation", "source", "side"),
)


THREAD_LINKS = Table(
    "thread_link",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("source", String, nullable=False),
    Column("key", String, nullable=False),
    Column("conversation", String, nullable=False),
    Column("first_at", Instant),
    Column("last_at", Instant),
    UniqueConstraint("source", "key", "conversation"),
    Index("ix_thread_link_conversation", "source", "conversation"),
)


CALLS = Table(
    "call",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("source", String, nullable=False),
    Column("external_id", String, nullable=False),
    Column("queue", String, nullable=False),
    Column("entered_at", Instant, nullable=False),
    Column("answered_at", Instant),
    Column("left_at", Instant),
    Column("wait_seconds", Float),
    Column("talk_seconds", Float),
    Column("outcome", String, nullable=False),
    Column("caller", String),
    Column("short_abandon", Boolean, nullable=False, server_default=false()),
    Column("caller_key", String),
    Column("agent", String),
    Column("ended_by", String),
    UniqueConstraint("source", "external_id"),
    Index("ix_call_entered", "source", "entered_at"),
    Index("ix_call_got_through", "caller_key", sqlite_where=text("caller_key IS NOT NULL")),
    Index("ix_call_waiting", "outcome", "source", sqlite_where=text("outcome = 'waiting'")),
)


QUEUE_NAMES = Table(
    "queue_name",
    METADATA,
    Column("source", String, primary_key=True),
    Column("name", String, primary_key=True),
)


INQUIRIES = Table(
    "inquiry",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("source", String, nullable=False),
    Column("conversation", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("status", String, nullable=False),
    Column("opened_at", Instant, nullable=False),
    Column("opened_by", String, nullable=False),
    Column("closed_at", Instant),
    Column("ended_at", Instant),
    Column("response_seconds", Float),
    Column("business_seconds", Float),
    Column("due_at", Instant),
    Column("breached", Boolean, nullable=False, default=False),
    Column("clamped", Boolean, nullable=False, default=False),
    Column("customer", String),
    Column("subject", String),
    Column("closed_by", String),
    Column("agent", String),
    Column("verdict", String),
    UniqueConstraint("source", "conversation", "opened_by"),
    Index(
        "ix_inquiry_open", "source", "channel", "opened_at", sqlite_where=text("status = 'open'")
    ),
    Index(
        "ix_inquiry_open_due", "source", "channel", "due_at", sqlite_where=text("status = 'open'")
    ),
    Index("ix_inquiry_opened", "source", "opened_at"),
    Index(
        "ix_inquiry_unsettled",
        "status",
        "due_at",
        sqlite_where=text("status = 'open' AND verdict IS NULL"),
    ),
)


TALLIES = Table(
    "tally",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("metric", String, nullable=False),
    Column("source", String, nullable=False),
    Column("labels", String, nullable=False),
    Column("le", String, nullable=False),
    Column("value", Float, nullable=False),
    UniqueConstraint("metric", "source", "labels", "le"),
)


PURGED_TALLIES = Table(
    "purged_tally",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("metric", String, nullable=False),
    Column("source", String, nullable=False),
    Column("labels", String, nullable=False),
    Column("le", String, nullable=False),
    Column("value", Float, nullable=False),
    UniqueConstraint("metric", "source", "labels", "le"),
)


STATES = Table(
    "source_state",
    METADATA,
    Column("source", String, primary_key=True),
    Column("cursor", String),
    Column("last_attempt_at", Instant),
    Column("last_success_at", Instant),
    Column("read_from", Instant),
    Column("last_error", String),
    Column("failing_since", Instant),
    Column("last_error_at", Instant),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("poll_errors_total", Integer, nullable=False, default=0),
    Column("records_rejected_total", Integer, nullable=False, default=0),
)


META = Table(
    "meta",
    METADATA,
    Column("key", String, primary_key=True),
    Column("value", String, nullable=False),
)


DELIVERIES = Table(
    "delivery",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("key", String, nullable=False),
    Column("purpose", String, nullable=False),
    Column("notifier", String, nullable=False),
    Column("status", String, nullable=False),
    Column("claimed_by", String, nullable=False),
    Column("claimed_at", Instant, nullable=False),
    Column("payload", String),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Instant),
    Column("last_error", String),
    Column("sent_at", Instant),
    UniqueConstraint("key"),
    Index("ix_delivery_status", "status", "next_attempt_at"),
)


ATTEMPTS = Table(
    "delivery_attempt",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("delivery_id", Integer, ForeignKey("delivery.id"), nullable=False),
    Column("at", Instant, nullable=False),
    Column("error", String),
    Column("permanent", Boolean, nullable=False, default=False),
    Index("ix_delivery_attempt_delivery_id", "delivery_id"),
)


ALERT_STATES = Table(
    "alert_state",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("rule", String, nullable=False),
    Column("subject", String, nullable=False),
    Column("source", String),
    Column("severity", String, nullable=False),
    Column("state", String, nullable=False),
    Column("value", Float),
    Column("threshold", Float),
    Column("started_at", Instant),
    Column("resolved_at", Instant),
    Column("last_notified_at", Instant),
    Column("evaluated_at", Instant, nullable=False),
    UniqueConstraint("rule", "subject"),
    Index("ix_alert_firing", "rule", sqlite_where=text("state = 'firing'")),
)


LEASES = Table(
    "source_lease",
    METADATA,
    Column("source", String, primary_key=True),
    Column("next_run_at", Instant, nullable=False),
    Column("lease_owner", String),
    Column("lease_until", Instant),
)


WAITING_CALL: Any = CALLS.c.outcome == literal_column("'waiting'")
GOT_THROUGH_CALL: Any = literal_column("caller_key IS NOT NULL")
UNSETTLED_INQUIRY: Any = literal_column("status = 'open' AND verdict IS NULL")
OPEN_INQUIRY: Any = literal_column("status = 'open'")
FIRING_ALERT: Any = literal_column("state = 'firing'")
