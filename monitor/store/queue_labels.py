"""The `queue` of a stored call: a bounded label, never a value the log can multiply.

Queue names come from the phone system's log, which an outsider can influence (a queue named
after a caller's number or address, a log with thousands of names). Each name becomes a label
on several metrics, so the names are bounded where calls are stored, and everything that
reads calls (tallies, the exporter, report, digest, alerts) sees the same label:

- a source with `queues:` exports exactly those (renamed when it maps them);
- otherwise the first `max_queues` names the source meets keep their name (the `queue_name`
  table remembers them, across restarts and instances);
- every other name, and any name that looks like an e-mail address or a phone number, is
  `other`. It is logged once per source and reason; a name that looks personal is not logged.

Calls stored before labels were bounded are relabelled once (`relabel_stored`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, func, select, update

from monitor.config import PhoneSettings, Settings, SourceSettings
from monitor.measure.events import CallEvent
from monitor.store.database import insert_ignore
from monitor.store.schema import CALLS, QUEUE_NAMES

logger = logging.getLogger(__name__)

OTHER = "other"
MAX_NAME = 100
_ADDRESS = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
# Seven digits or more, maybe split by the separators phone numbers are written with.
_NUMBER = re.compile(r"\d(?:[\s().\-/]*\d){6,}")
_told: set[tuple[str, str]] = set()  # (source, reason) already logged by this process


def usable(name: str) -> bool:
    """A name that can be a label as it is: "," and "=" would break the stored label text
    ("queue=a,outcome=b") and could forge another label; control characters break lines."""
    return 0 < len(name) <= MAX_NAME and "," not in name and "=" not in name and name.isprintable()


def looks_personal(name: str) -> bool:
    """True for a name holding an e-mail address or a phone number."""
    return bool(_ADDRESS.search(name) or _NUMBER.search(name))


def _tell_once(source: str, reason: str, message: str, *args: object) -> None:
    if (source, reason) not in _told:
        _told.add((source, reason))
        logger.warning(message, *args)


class QueueLabels:
    """The label of each queue name of one source (its admitted names loaded once)."""

    def __init__(self, source: SourceSettings) -> None:
        self.source = source.name
        self.listed = listed(source)
        self.limit = source.max_queues if isinstance(source, PhoneSettings) else 50
        self.admitted: set[str] | None = None
        self.labels: dict[str, str] = {}  # name -> label, for this object's life (one poll)

    def label(self, conn: Connection, name: str) -> str:
        found = self.labels.get(name)
        if found is None:
            found = self.labels[name] = self._decide(conn, name)
        return found

    def _decide(self, conn: Connection, name: str) -> str:
        if self.listed is not None:
            # A listed name gets its label; a name that is a label already passes (asterisk_cdr
            # maps a call's context to its label itself, with the same setting).
            label = self.listed.get(name) or (name if name in self.listed.values() else None)
            if label is None:
                _tell_once(
                    self.source,
                    "unlisted",
                    "%s: calls of queues not listed in `queues` are counted as %r",
                    self.source,
                    OTHER,
                )
                return OTHER
            return label
        if name == OTHER:
            return OTHER
        if not usable(name):
            _tell_once(
                self.source,
                "unusable",
                "%s: a queue name that is empty, longer than %d characters or holds control "
                "characters, commas or equals signs is counted as %r",
                self.source,
                MAX_NAME,
                OTHER,
            )
            return OTHER
        if looks_personal(name):
            _tell_once(
                self.source,
                "personal",
                "%s: a queue name that looks like an e-mail address or a phone number is "
                "counted as %r (it is never a label)",
                self.source,
                OTHER,
            )
            return OTHER
        if self.admitted is None:
            query = select(QUEUE_NAMES.c.name).where(QUEUE_NAMES.c.source == self.source)
            self.admitted = set(conn.execute(query).scalars())
        if name in self.admitted:
            return name
        if len(self.admitted) < self.limit:
            conn.execute(insert_ignore(conn, QUEUE_NAMES), [{"source": self.source, "name": name}])
            self.admitted.add(name)
            return name
        _tell_once(
            self.source,
            "limit",
            "%s: more than max_queues (%d) queue names; %r and later new names are counted as "
            "%r (list the queues to export in `queues`)",
            self.source,
            self.limit,
            name,
            OTHER,
        )
        return OTHER

    def apply(self, conn: Connection, calls: Sequence[CallEvent]) -> list[CallEvent]:
        """`calls` with their queues as labels (the same objects where nothing changes)."""
        # Each name once (a batch has thousands of calls in a few queues), in the order met.
        labels = {name: self.label(conn, name) for name in dict.fromkeys(c.queue for c in calls)}
        if all(label == name for name, label in labels.items()):
            return list(calls)
        return [
            call if labels[call.queue] == call.queue else call._replace(queue=labels[call.queue])
            for call in calls
        ]


def listed(source: SourceSettings) -> dict[str, str] | None:
    """A phone source's `queues:` as name -> label; None when it lists none."""
    queues = source.queues if isinstance(source, PhoneSettings) else None
    if not queues:
        return None
    return dict(queues) if isinstance(queues, dict) else {name: name for name in queues}


def exported(conn: Connection, settings: Settings) -> dict[str, set[str]]:
    """Per phone source, the labels its calls may carry now (for the exporter, which folds any
    other stored label, from before labels were bounded, into `other`)."""
    admitted: dict[str, set[str]] = {}
    for source, name in conn.execute(select(QUEUE_NAMES.c.source, QUEUE_NAMES.c.name)):
        admitted.setdefault(source, set()).add(name)
    labels = {}
    for source in settings.sources:
        if not isinstance(source, PhoneSettings):
            continue
        names = listed(source)
        allowed = set(names.values()) if names else admitted.get(source.name, set())
        labels[source.name] = allowed | {OTHER}
    return labels


def relabel_stored(conn: Connection, settings: Settings) -> int:
    """Give the calls stored before labels were bounded their labels (once, at start-up, before
    the tallies are recounted); the names met first are admitted first. Returns the number of
    names that became `other`."""
    folded = 0
    for source in settings.sources:
        if not isinstance(source, PhoneSettings):
            continue
        labels = QueueLabels(source)
        first = func.min(CALLS.c.entered_at)
        names: Iterable[tuple[str, object]] = conn.execute(
            select(CALLS.c.queue, first)
            .where(CALLS.c.source == source.name)
            .group_by(CALLS.c.queue)
            .order_by(first, CALLS.c.queue)
        ).all()
        for name, _ in names:
            label = labels.label(conn, name)
            if label != name:
                folded += 1
                conn.execute(
                    update(CALLS)
                    .where(CALLS.c.source == source.name, CALLS.c.queue == name)
                    .values(queue=label)
                )
    return folded
