"""Three `run` instances on one PostgreSQL database share six sources and a stalled one.

Real processes, real leases: no source is polled by two instances at once, every line is stored
once, and when an instance is killed while it holds a lease, that source is taken over within
the lease time. The instance to kill is the one polling `stall`, an IMAP source whose server
accepts connections and never says a word: its poll holds the lease (renewed) until the
IMAP timeout, so the kill is certain to find a lease held, not a moment between polls.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from monitor.store.database import make_engine
from monitor.store.tables import INQUIRIES, LEASES, MESSAGES, TALLIES
from tests.servers import PostgresServer, free_port
from tests.test_service import Service

SOURCES = [f"chat-{n}" for n in range(6)]
STALL = "stall"
STALL_TIMEOUT = timedelta(seconds=10)  # how long a poll of the silent IMAP server holds on
LEASE = timedelta(seconds=3)
TICK = timedelta(seconds=1)
WAIT_SECONDS = 120  # a loaded 2-core CI machine; normally a few seconds
POLL_LINE = re.compile(
    r"^(\S+ \S+) INFO monitor.service: poll (\S+): (\d+) new messages.* \((\d+\.\d+) s\)$"
)


def chat_line(source: str, n: int) -> str:
    at = datetime(2026, 11, 19, 9, 0, tzinfo=UTC) + timedelta(seconds=20 * n)
    role = "customer" if n % 2 == 0 else "agent"
    record = {"id": f"{source}-{n}", "conversation": f"c{n // 4}", "at": at.isoformat()}
    return json.dumps(record | {"author_role": role}) + "\n"


class Cluster:
    def __init__(self, folder: Path, database: str) -> None:
        self.folder = folder
        self.written = dict.fromkeys(SOURCES, 0)
        for source in SOURCES:
            self.grow(source, 40)
        # A server that accepts connections (the kernel does, into the backlog) and never
        # answers: an IMAP poll of it waits for the greeting until its timeout.
        self.silent = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.instances = [self._start(database, i) for i in range(3)]

    def grow(self, source: str, lines: int) -> None:
        with (self.folder / f"{source}.jsonl").open("a") as handle:
            first = self.written[source]
            handle.writelines(chat_line(source, n) for n in range(first, first + lines))
        self.written[source] += lines

    def _start(self, database: str, index: int) -> Service:
        config = {
            "database": database,
            "metrics": {"listen": f"127.0.0.1:{free_port()}"},
            "cluster": {"lease": f"{LEASE.seconds}s", "tick": f"{TICK.seconds}s"},
            "sources": [
                *(
                    {"name": s, "kind": "chat_jsonl", "path": f"{s}.jsonl", "every": "1s"}
                    for s in SOURCES
                ),
                {
                    "name": STALL,
                    "kind": "imap",
                    "host": "127.0.0.1",
                    "port": self.silent.getsockname()[1],
                    "security": "none",
                    "username": "support@example.com",
                    "password": "not-needed",
                    "timeout": f"{STALL_TIMEOUT.seconds}s",
                    "every": "1s",
                },
            ],
        }
        path = self.folder / f"instance-{index}.yaml"
        path.write_text(yaml.safe_dump(config))
        return Service(path, env={"TZ": "UTC"})

    def polls(self) -> list[tuple[int, str, datetime, datetime, int]]:
        """(instance, source, start, end, new messages) of every poll logged so far."""
        found = []
        for index, instance in enumerate(self.instances):
            for line in instance.log:
                if match := POLL_LINE.match(line.strip()):
                    end = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
                    start = end - timedelta(seconds=float(match[4]))
                    found.append((index, match[2], start, end, int(match[3])))
        return found

    def wait_for_polls(self, instances: list[int], each: int) -> None:
        """Read the logs until every source has `each` more polls by these instances."""
        target = {s: each + self._count(s, instances) for s in SOURCES}
        deadline = time.monotonic() + WAIT_SECONDS
        while any(self._count(s, instances) < target[s] for s in SOURCES):
            assert time.monotonic() < deadline, f"polls so far: {self.polls()}"
            for index in instances:  # whichever instance is talking; none may block the rest
                self.instances[index].read_available(timeout=0.2)

    def _count(self, source: str, instances: list[int]) -> int:
        return sum(1 for p in self.polls() if p[1] == source and p[0] in instances)


def holder(database: Any, source: str) -> int | None:
    """The pid of the instance holding a live lease on `source` now, if any."""
    with database.connect() as conn:
        row = conn.execute(
            select(LEASES.c.lease_owner, LEASES.c.lease_until).where(LEASES.c.source == source)
        ).first()
    if row is None or row.lease_owner is None or row.lease_until <= datetime.now(UTC):
        return None
    return int(row.lease_owner.rpartition(":")[2])


def leases_of(database: Any, pid: int, *, alive_at: datetime) -> list[str]:
    """The sources whose lease the instance `pid` held, still live at `alive_at`."""
    with database.connect() as conn:
        return list(
            conn.execute(
                select(LEASES.c.source).where(
                    LEASES.c.lease_owner.like(f"%:{pid}"), LEASES.c.lease_until > alive_at
                )
            ).scalars()
        )


@pytest.fixture
def cluster(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[Cluster]:
    group = Cluster(tmp_path, postgres_server.create_database("cluster"))
    try:
        yield group
    finally:
        for instance in group.instances:
            if instance.process.poll() is None:
                instance.process.kill()
                instance.process.wait()
        group.silent.close()


def test_three_instances_share_six_sources_without_overlap_or_loss(cluster: Cluster) -> None:
    database = make_engine(
        yaml.safe_load((cluster.folder / "instance-0.yaml").read_text())["database"]
    )
    cluster.wait_for_polls([0, 1, 2], each=2)
    for source in SOURCES:
        cluster.grow(source, 20)
    cluster.wait_for_polls([0, 1, 2], each=2)

    # Kill the instance polling `stall`, while it polls it: it holds that lease at the kill.
    pids = {instance.process.pid: index for index, instance in enumerate(cluster.instances)}
    victim_index, held, killed_at = None, [], datetime.now(UTC)
    deadline = time.monotonic() + WAIT_SECONDS
    while victim_index is None:
        assert time.monotonic() < deadline, "no instance took the stalled source"
        for instance in cluster.instances:
            instance.read_available(timeout=0.05)
        owner = holder(database, STALL)
        if owner not in pids:
            continue
        victim = cluster.instances[pids[owner]]
        victim.process.send_signal(signal.SIGSTOP)  # frozen, it can neither renew nor release
        if holder(database, STALL) != owner:  # it finished that poll just before: try again
            victim.process.send_signal(signal.SIGCONT)
            continue
        victim_index = pids[owner]
        victim.process.send_signal(signal.SIGKILL)
        killed_at = datetime.now(UTC)
        victim.process.wait()
        held = leases_of(database, owner, alive_at=killed_at)
    assert STALL in held, "the killed instance held no lease at the kill"
    survivors = [i for i in range(3) if i != victim_index]
    taken_over = None
    while taken_over is None:  # another instance claims it once the lease runs out
        assert time.monotonic() < deadline, "the stalled source was not taken over"
        for index in survivors:
            cluster.instances[index].read_available(timeout=0.05)
        if pids.get(holder(database, STALL)) in survivors:
            taken_over = datetime.now(UTC)
    assert taken_over - killed_at <= LEASE + TICK + timedelta(seconds=5)
    for source in SOURCES:
        cluster.grow(source, 20)
    cluster.wait_for_polls(survivors, each=3)
    for index in survivors:  # one may be stalled in `stall`: it stops after its timeout
        instance = cluster.instances[index]
        instance.process.send_signal(signal.SIGTERM)
        status = instance.process.wait(timeout=30 + STALL_TIMEOUT.seconds)
        instance.read_all()
        assert status == 0, "".join(instance.log[-20:])

    polls = cluster.polls()
    by_source: dict[str, list[tuple[int, datetime, datetime]]] = defaultdict(list)
    for index, source, start, end, _ in polls:
        by_source[source].append((index, start, end))
    for source, spans in by_source.items():  # one poller at a time per source
        spans.sort(key=lambda s: s[1])
        for (a, _, a_end), (b, b_start, _) in zip(spans, spans[1:], strict=False):
            assert a == b or b_start >= a_end - timedelta(milliseconds=2), (source, spans)
    assert len({index for index, *_ in polls}) >= 2, "the work was not shared"

    for source in set(held) - {STALL}:  # taken over within the lease too
        after = [
            p[3] for p in polls if p[1] == source and p[0] != victim_index and p[3] > killed_at
        ]
        assert after and min(after) <= killed_at + LEASE + TICK + timedelta(seconds=5)

    with database.connect() as conn:
        stored = dict(
            conn.execute(select(MESSAGES.c.source, func.count()).group_by(MESSAGES.c.source)).all()
        )
        inquiries = conn.execute(select(func.count()).select_from(INQUIRIES)).scalar_one()
        counted = conn.execute(
            select(func.sum(TALLIES.c.value)).where(TALLIES.c.metric == "support_inquiries_total")
        ).scalar_one()
    assert stored == cluster.written  # every line once: nothing lost, nothing doubled
    assert counted == inquiries
