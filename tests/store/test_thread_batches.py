"""Threading a whole batch at once (monitor.store.threads) places every e-mail where threading
them one poll at a time does: the links each message asks for, noted as it is placed in the
batch (or again after a merge), lead later messages to the same conversations, and each hint
keeps the same span, whatever the references, hints and merges."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from monitor.config_file import settings_from_mapping
from monitor.measure.events import HINT_PREFIX, MessageEvent, Side, Thread
from monitor.store.batches import measuring, store_batch
from monitor.store.database import make_engine, prepare
from monitor.store.tables import MESSAGES, THREAD_LINKS
from tests.mailboxes import AGENT, AGENTS, CUSTOMER

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

# One e-mail: (agent's?, minutes after T0, the earlier or unknown ids it references, hint).
_MAIL = st.tuples(
    st.booleans(),
    st.integers(min_value=0, max_value=20 * 24 * 60),
    st.lists(st.integers(min_value=0, max_value=14), max_size=3, unique=True),
    st.sampled_from([None, "~a", "~b"]),
)


def mails_of(script: list[tuple[bool, int, list[int], str | None]]) -> list[MessageEvent]:
    """The e-mails as a mail connector makes them: a message's conversation is the first id
    it references (else its own); one that references nothing may be placed by its hint. An
    id past the script's end stands for a message never read."""
    events = []
    # In the order of their times, as a mailbox is read (threading by hint is single-linkage
    # in time: which conversations a message bridges can depend on what came before it).
    script = sorted(script, key=lambda mail: mail[1])
    for number, (agent, minutes, references, hint) in enumerate(script):
        own = f"<m{number}@example.test>"
        ids = tuple(f"<m{n}@example.test>" for n in references if n != number)
        events.append(
            MessageEvent(
                external_id=own,
                conversation=ids[0] if ids else own,
                at=T0 + timedelta(minutes=minutes),
                side=Side.AGENT if agent else Side.CUSTOMER,
                customer=None if agent else CUSTOMER,
                subject="Broken zip",
                thread=Thread((own, *ids), hint=hint, by_hint=not ids),
                refers=ids[:1],
                agent=AGENT if agent else None,
            )
        )
    return events


def store_all(folder: str, name: str, batches: list[list[MessageEvent]]) -> dict[str, Any]:
    """What threading left in the store after `batches`, each stored in its own transaction:
    the messages grouped by conversation, and each hint's span in each conversation
    (conversation names aside: which of two merged names survives may depend on what was
    stored first; a conversation is named by its messages)."""
    site = settings_from_mapping(
        {
            "agents": AGENTS,
            "sources": [{"name": "mail", "kind": "mbox", "path": "inbox.mbox"}],
        },
        Path(folder),
    )
    engine = make_engine(f"sqlite:///{folder}/{name}.db")
    prepare(engine)
    ctx = measuring(site, site.sources[0])
    for events in batches:
        with engine.begin() as conn:
            store_batch(conn, ctx, events)
    with engine.connect() as conn:
        members: dict[str, set[str]] = {}
        for m in conn.execute(select(MESSAGES)):
            members.setdefault(m.conversation, set()).add(m.external_id)
        hints = sorted(
            (r.key, sorted(members.get(r.conversation, {r.conversation})), r.first_at, r.last_at)
            for r in conn.execute(select(THREAD_LINKS))
            if r.key.startswith(HINT_PREFIX)
        )
    engine.dispose()
    return {"conversations": sorted(sorted(ids) for ids in members.values()), "hints": hints}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.generate],
)
@given(script=st.lists(_MAIL, min_size=1, max_size=12), cut=st.integers(min_value=0))
def test_a_batch_threaded_at_once_is_placed_as_its_messages_one_by_one(
    script: list[tuple[bool, int, list[int], str | None]], cut: int
) -> None:
    mails = mails_of(script)
    middle = cut % (len(mails) + 1)
    with tempfile.TemporaryDirectory() as folder:
        at_once = store_all(folder, "at_once", [mails])
        one_by_one = store_all(folder, "one_by_one", [[m] for m in mails])
        in_two = store_all(folder, "in_two", [mails[:middle], mails[middle:]])
    assert at_once == one_by_one
    assert in_two == one_by_one
