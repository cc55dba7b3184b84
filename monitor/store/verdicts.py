"""When an open inquiry's verdict becomes `late`: at the first scrape after its due time.

`support_response_verdicts_total{verdict}` counts every inquiry once, when its verdict is
known: answered in time, `within`; answered late or missed, `late`; and still open when its
due time passes, `late` at that moment, not later when someone finally answers. The first two
come with the rows ingest stores (`inquiry.verdict`, counted in monitor.store.tallies). The
third happens with time, not with a poll: no row changes when a due time passes. So each scrape
settles it before reading the counters: the open inquiries past their due time without a
verdict (a partial index, `ix_inquiry_unsettled`, holds only those) get `late` and are
counted, in one transaction. A verdict given is kept when the inquiry is rebuilt
(monitor.store.batches), so a reply read afterwards, even one dated before the due time (sent
in time, read after it), cannot take it back, nor can changed targets: a Prometheus counter
that went down would read as a restart, and its whole count as a burst of new events.

The counter therefore equals a recount of the stored rows, like every tally, and needs no
clock but the scrape's: instances sharing a database agree, and a restart changes nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime

from sqlalchemy import Engine, select, update

from monitor.store.database import StoreError, transaction
from monitor.store.schema import INQUIRIES, UNSETTLED_INQUIRY
from monitor.store.tallies import LATE, VERDICTS, Key, apply, labels_text

logger = logging.getLogger(__name__)

_DUE = INQUIRIES.c.due_at
_ANY = select(INQUIRIES.c.id).where(UNSETTLED_INQUIRY, _DUE.isnot(None)).limit(1)


def settle(engine: Engine, now: datetime) -> int:
    """Give the `late` verdict to the open inquiries whose due time is before `now` and that
    have none yet; how many. A database busy beyond its timeout leaves them to the next scrape
    (logged): the counters read meanwhile are those of a moment ago, never lower."""
    try:
        with transaction(engine) as conn:  # a read: most scrapes find nothing to settle
            if conn.execute(_ANY.where(_DUE < now)).first() is None:
                return 0
        with transaction(engine) as conn:
            found = conn.execute(
                update(INQUIRIES)
                .where(UNSETTLED_INQUIRY, _DUE < now)
                .values(verdict=LATE)
                .returning(INQUIRIES.c.source, INQUIRIES.c.channel)
            ).all()
            delta: Counter[Key] = Counter()
            for source, channel in found:
                delta[(VERDICTS, source, labels_text(channel=channel, verdict=LATE), "")] += 1
            apply(conn, delta)
    except StoreError as exc:
        logger.warning("late verdicts not settled this scrape: %s", exc)
        return 0
    return len(found)
