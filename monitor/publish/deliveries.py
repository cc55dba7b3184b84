"""Claim before you act: outgoing digests and alert notifications, at most once each.

A delivery is a `Delivery` row with a unique key, inserted (ON CONFLICT DO NOTHING) *before*
anything is sent: whoever inserts it owns it, so two instances or a re-run never send the same
digest or notification twice. Sending then happens in attempts:

1. an attempt is taken by moving `next_attempt_at` forward by a lease with a conditional UPDATE,
   so only one instance at a time tries a given delivery (a crashed attempt is retried once the
   lease expires);
2. the message is sent outside any transaction (an SMTP server can take seconds);
3. the outcome is recorded: `sent`, or the error in a `DeliveryAttempt` row and either a retry
   with exponential backoff (transient errors) or `failed` (a permanent error, or retries spent).

A crash between 2 and 3 can re-send once after the lease: at-least-once for that narrow window,
which beats losing an alert. The re-send is the stored message with its Message-ID
(monitor.publish.mailer.message_id_for), so mail clients merge it with the first. Every
attempt's error is stored and visible (`check`, metrics).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from monitor.errors import OperationError
from monitor.store.database import insert_ignore, transaction
from monitor.store.leases import owner_id
from monitor.store.schema import ATTEMPTS, DELIVERIES

PENDING, SENT, FAILED = "pending", "sent", "failed"
# Longer than any single send (SMTP and webhook timeouts are 30 s by default).
ATTEMPT_LEASE = timedelta(minutes=2)
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(minutes=30)
MAX_ATTEMPTS = 8


class DeliveryError(OperationError):
    """Sending failed. `permanent` errors (a 4xx webhook answer, a rejected recipient, bad
    credentials) are not retried; transient ones (connection refused, 5xx, timeouts) are."""


@dataclass(frozen=True)
class Pending:
    id: int
    key: str
    purpose: str
    notifier: str
    payload: dict[str, Any]
    attempts: int


def claim(
    conn: Connection,
    *,
    key: str,
    purpose: str,
    notifier: str,
    payload: Mapping[str, Any],
    now: datetime,
) -> bool:
    """Claim `key` for sending; False when it was already claimed (by anyone, ever)."""
    row = {
        "key": key,
        "purpose": purpose,
        "notifier": notifier,
        "status": PENDING,
        "claimed_by": owner_id(),
        "claimed_at": now,
        "payload": json.dumps(dict(payload), sort_keys=True, default=str),
        "attempts": 0,
        "next_attempt_at": now,
    }
    # RETURNING, not rowcount: PostgreSQL drivers report -1 for INSERT … ON CONFLICT.
    inserted = conn.execute(
        insert_ignore(conn, DELIVERIES, ["key"]).returning(DELIVERIES.c.id), row
    ).first()
    return inserted is not None


def take_due(
    engine: Engine, now: datetime, purpose: str | None = None, lease: timedelta = ATTEMPT_LEASE
) -> list[Pending]:
    """Pending deliveries whose next attempt is due, each leased to this caller for `lease`
    (longer than one send can take)."""
    taken: list[Pending] = []
    with transaction(engine) as conn:
        query = select(DELIVERIES).where(
            DELIVERIES.c.status == PENDING, DELIVERIES.c.next_attempt_at <= now
        )
        if purpose is not None:
            query = query.where(DELIVERIES.c.purpose == purpose)
        candidates = conn.execute(query.order_by(DELIVERIES.c.id)).mappings().all()
    for row in candidates:
        with transaction(engine) as conn:
            leased = conn.execute(
                update(DELIVERIES)
                .where(
                    DELIVERIES.c.id == row["id"],
                    DELIVERIES.c.status == PENDING,
                    DELIVERIES.c.next_attempt_at == row["next_attempt_at"],
                )
                .values(next_attempt_at=now + lease)
            )
        if leased.rowcount:  # another instance may have taken it between select and update
            taken.append(
                Pending(
                    id=row["id"],
                    key=row["key"],
                    purpose=row["purpose"],
                    notifier=row["notifier"],
                    payload=json.loads(row["payload"] or "{}"),
                    attempts=row["attempts"],
                )
            )
    return taken


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … capped at 30 min, after the `attempts`-th failure."""
    delay: timedelta = FIRST_RETRY * (2 ** max(attempts - 1, 0))
    return min(delay, MAX_RETRY)


def record(engine: Engine, delivery: Pending, error: DeliveryError | None, now: datetime) -> str:
    """Store the outcome of one attempt; return the delivery's new status."""
    attempts = delivery.attempts + 1
    values: dict[str, Any] = {"attempts": attempts}
    if error is None:
        values.update(status=SENT, sent_at=now, next_attempt_at=None)
    elif error.permanent or attempts >= MAX_ATTEMPTS:
        values.update(status=FAILED, last_error=str(error), next_attempt_at=None)
    else:
        values.update(last_error=str(error), next_attempt_at=now + backoff(attempts))
    with transaction(engine) as conn:
        conn.execute(update(DELIVERIES).where(DELIVERIES.c.id == delivery.id).values(**values))
        conn.execute(
            ATTEMPTS.insert(),
            [
                {
                    "delivery_id": delivery.id,
                    "at": now,
                    "error": None if error is None else str(error),
                    "permanent": bool(error and error.permanent),
                }
            ],
        )
    return str(values.get("status", PENDING))


def deliver_due(
    engine: Engine,
    now: datetime,
    send: Callable[[Pending], None],
    purpose: str | None = None,
    on_error: Callable[[Pending, DeliveryError, str], None] | None = None,
    lease: timedelta = ATTEMPT_LEASE,
) -> dict[str, int]:
    """Attempt every due delivery with `send` (which raises DeliveryError); count outcomes.
    `on_error(delivery, error, new_status)` hears of each failed attempt (to show or log it)."""
    counts = {PENDING: 0, SENT: 0, FAILED: 0}
    for delivery in take_due(engine, now, purpose, lease):
        try:
            send(delivery)
            error = None
        except DeliveryError as exc:
            error = exc
        status = record(engine, delivery, error, now)
        counts[status] += 1
        if error is not None and on_error is not None:
            on_error(delivery, error, status)
    return counts


def failures(conn: Connection) -> dict[tuple[str, str], int]:
    """Failed deliveries by (purpose, notifier), for `check` and the exporter."""
    query = (
        select(DELIVERIES.c.purpose, DELIVERIES.c.notifier, func.count())
        .where(DELIVERIES.c.status == FAILED)
        .group_by(DELIVERIES.c.purpose, DELIVERIES.c.notifier)
    )
    return {(p, n): int(c) for p, n, c in conn.execute(query)}


def latest_failure(conn: Connection) -> tuple[str, str | None] | None:
    """(key, error) of the most recent delivery that failed for good, or None."""
    row = conn.execute(
        select(DELIVERIES.c.key, DELIVERIES.c.last_error)
        .where(DELIVERIES.c.status == FAILED)
        .order_by(DELIVERIES.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])
