"""Sharing the polling between instances: one lease row per source.

APScheduler 3.x cannot share a job store between processes (its FAQ; two schedulers on one store
run jobs twice), so it stays a local ticker and the database decides who polls:

- each instance ticks every source often (a few seconds) and tries to *claim* it: an UPDATE that
  succeeds only when the source is due (`next_run_at <= now`) and nobody holds a live lease.
  On PostgreSQL the row is picked with `FOR UPDATE SKIP LOCKED`, so concurrent claimers never
  wait on each other and exactly one wins;
- the winner polls outside that transaction, renewing `lease_until` while it works, then
  releases the lease and sets `next_run_at = end + every`;
- a crashed owner's lease simply expires and the next tick anywhere takes the source over.

On SQLite only one instance may run (`instance_lock`): SQLite's locking is per host and
SQLAlchemy compiles SKIP LOCKED away there, so the same code is correct but not shared.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, and_, or_, select, update

from monitor.config import Settings
from monitor.store.database import StoreError, insert_ignore, transaction
from monitor.store.schema import LEASES

LEASE = timedelta(seconds=60)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def sync(engine: Engine, settings: Settings, now: datetime) -> None:
    """Make sure every configured source has a lease row; new ones are due now."""
    rows = [{"source": s.name, "next_run_at": now} for s in settings.sources if s.enabled]
    if rows:
        with transaction(engine) as conn:
            conn.execute(insert_ignore(conn, LEASES, ["source"]), rows)


def claim(engine: Engine, source: str, owner: str, now: datetime, lease: timedelta = LEASE) -> bool:
    """Take `source` if it is due and free (or its lease expired). True if we hold it now."""
    # Our own live lease is free to us too: it is left over from a release that failed (the
    # database went away after the poll), since an instance polls each source one at a time;
    # without this the source would wait out the whole lease after the database came back.
    free = or_(
        LEASES.c.lease_until.is_(None), LEASES.c.lease_until < now, LEASES.c.lease_owner == owner
    )
    with transaction(engine) as conn:
        locked = conn.execute(
            select(LEASES.c.source)
            .where(LEASES.c.source == source, LEASES.c.next_run_at <= now, free)
            .with_for_update(skip_locked=True)
        ).first()
        if locked is None:
            return False
        taken = conn.execute(
            update(LEASES)
            .where(LEASES.c.source == source, LEASES.c.next_run_at <= now, free)
            .values(lease_owner=owner, lease_until=now + lease)
        )
        return bool(taken.rowcount)


def renew(engine: Engine, source: str, owner: str, now: datetime, lease: timedelta = LEASE) -> bool:
    """Extend our lease while polling; False if it was lost (expired and taken over)."""
    with transaction(engine) as conn:
        kept = conn.execute(
            update(LEASES)
            .where(LEASES.c.source == source, LEASES.c.lease_owner == owner)
            .values(lease_until=now + lease)
        )
        return bool(kept.rowcount)


def release(engine: Engine, source: str, owner: str, next_run_at: datetime) -> None:
    with transaction(engine) as conn:
        conn.execute(
            update(LEASES)
            .where(and_(LEASES.c.source == source, LEASES.c.lease_owner == owner))
            .values(lease_owner=None, lease_until=None, next_run_at=next_run_at)
        )


@contextmanager
def instance_lock(engine: Engine) -> Iterator[None]:
    """On SQLite, refuse a second `run` on the same database file; elsewhere, no-op.

    An OS lock (flock) on a file beside the database: held for the life of the process and
    released by the kernel however the process dies, so a crash never leaves a stale lock."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        yield
        return
    path = Path(f"{engine.url.database}.lock")
    handle: IO[str] = path.open("a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise StoreError(
                f"another support-monitor ({holder}) is running on {engine.url.database}; "
                "SQLite allows one instance: use PostgreSQL to run several"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(owner_id())
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock
