"""Three `run` instances on one PostgreSQL database share six sources (SPEC §9).

Real processes, real leases: no source is polled by two instances at once, every line is stored
once, and when an instance is killed its sources are taken over within the lease time.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from servers import PostgresServer, free_port
from sqlalchemy import func, select
from test_service import Service

from monitor.models import INQUIRIES, LEASES, MESSAGES, TALLIES
from monitor.store import make_engine

SOURCES = [f"chat-{n}" for n in range(6)]
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
                {"name": s, "kind": "chat_jsonl", "path": f"{s}.jsonl", "every": "1s"}
                for s in SOURCES
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


def test_three_instances_share_six_sources_without_overlap_or_loss(cluster: Cluster) -> None:
    database = make_engine(
        yaml.safe_load((cluster.folder / "instance-0.yaml").read_text())["database"]
    )
    cluster.wait_for_polls([0, 1, 2], each=2)
    for source in SOURCES:
        cluster.grow(source, 20)
    cluster.wait_for_polls([0, 1, 2], each=2)

    victim = cluster.instances[0]
    with database.connect() as conn:
        held = (
            conn.execute(
                select(LEASES.c.source).where(LEASES.c.lease_owner.like(f"%:{victim.process.pid}"))
            )
            .scalars()
            .all()
        )
    killed_at = datetime.now(UTC)
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()
    for source in SOURCES:
        cluster.grow(source, 20)
    cluster.wait_for_polls([1, 2], each=3)
    for instance in cluster.instances[1:]:
        instance.process.send_signal(signal.SIGTERM)
        status = instance.process.wait(timeout=30)
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

    for source in held:  # taken over within the lease (plus a tick and a loaded machine)
        after = [p[3] for p in polls if p[1] == source and p[0] != 0 and p[3] > killed_at]
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
