"""The rows of a year of a busy site's history: the data of bench/_history.py.

The site: a website chat (600,000 inquiries a year, 08:00-22:00 every day, 6% missed), a phone
queue_log (277,000 calls on weekdays 08:00-18:00 over three queues; 32% leave unanswered and,
from a number that can be called back, ask for a callback nobody logs: some 83,000 callback
inquiries left open, a caller who rang again unanswered adding to their own) and a support
mailbox (40,000 e-mail inquiries, 1,500 of them stale, open for days to months). So the store
holds some 1.4 million messages, 720,000 inquiries (85,000 open, nearly all past their target)
and 277,000 calls, a handful of callers waiting now.

It is built in bulk (the tables' own inserts, day by day in time order as ingest would have
stored them, not by polling: that would take an hour), then the real code recounts the tallies
(`monitor.store.tallies.recount`) and evaluates the alert rules once
(`monitor.publish.alerts.run.run_once`, as `run` does every minute: their states are rows the
exporter reads). Inquiry rows are written as ingest writes them for the configured targets (due when
the reply target runs out on the calendar clock); business seconds are an approximation (the
calendar is not walked), which no reader recomputes. A change to this file builds the cached history
again.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("Europe/London")
CHUNK = 20_000  # rows per insert
CHAT_TARGET = timedelta(minutes=2)  # the chat sources' default reply target
REPLY_TARGET = timedelta(hours=24)
QUEUES = ("support", "sales", "billing")
# How calls end: 32.5% leave unanswered; with 3% of callers withholding their number and some
# ringing again while their callback is still open, about 83,000 of 277,000 calls leave an open
# callback inquiry.
OUTCOMES = {
    "answered": 0.615,
    "transferred": 0.06,
    "abandoned": 0.245,
    "timeout": 0.05,
    "exit_key": 0.02,
    "exit_empty": 0.01,
}
UNANSWERED = frozenset({"abandoned", "timeout", "exit_key", "exit_empty"})


@dataclass(frozen=True)
class Sizes:
    chats: int  # chat inquiries a year
    emails: int  # e-mail inquiries a year
    stale_emails: int  # of them still open
    calls: int  # calls a year
    waiting: int  # callers in a queue now

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(chats=12_000, emails=800, stale_emails=30, calls=5_540, waiting=2)
        return cls(chats=600_000, emails=40_000, stale_emails=1_500, calls=277_000, waiting=4)


@dataclass
class Built:
    """A history database in the cache, and what it holds."""

    path: Path
    built_at: str  # ISO UTC: the end of the history
    seconds: float  # how long building it took
    alerts_s: (
        float  # the first evaluation of the alert rules on it (monitor.publish.alerts.run.run_once)
    )
    counts: dict[str, int]


def settings_mapping(folder: Path, database: Path, listen: str | None = None) -> dict[str, Any]:
    """The site's configuration; its sources read files in `folder` (bench/_history.py makes
    them, empty: the history is in the database already)."""
    office = {day: ["08:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
    mapping: dict[str, Any] = {
        "timezone": str(ZONE),
        "database": f"sqlite:///{database}",
        "agents": {"addresses": ["support@example.com"], "domains": ["example.com"]},
        "calendars": {"office": {"timezone": str(ZONE), "hours": office}},
        "sources": [
            {
                "name": "web-chat",
                "kind": "chat_jsonl",
                "path": str(folder / "chat" / "*.jsonl"),
                "stage": "decision",
                "every": "1m",
            },
            {
                "name": "phones",
                "kind": "asterisk_queue_log",
                "path": str(folder / "queue_log"),
                "calendar": "office",
                "every": "1m",
            },
            {
                "name": "support-mail",
                "kind": "maildir",
                "path": str(folder / "Maildir"),
                "calendar": "office",
                "every": "5m",
            },
        ],
    }
    if listen is not None:
        mapping["metrics"] = {"listen": listen}
    return mapping


def build(path: Path, sizes: Sizes) -> Built:
    from monitor.config_file import settings_from_mapping
    from monitor.publish.alerts.run import run_once
    from monitor.store.database import make_engine, prepare
    from monitor.store.tables import CALLS, INQUIRIES, MESSAGES
    from monitor.store.tallies import layout_for, recount

    started = time.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)
    folder = path.parent / f"{path.stem}-files"
    settings = settings_from_mapping(settings_mapping(folder, path), folder)
    path.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    prepare(engine)
    site = Site(sizes, now)
    counts = {"messages": 0, "inquiries": 0, "calls": 0}
    tables = {"messages": MESSAGES, "inquiries": INQUIRIES, "calls": CALLS}
    pending: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
    with engine.begin() as conn:
        for day in site.days():
            for name, rows in site.day(day).items():
                pending[name] += rows
                if len(pending[name]) >= CHUNK:
                    conn.execute(tables[name].insert(), pending[name])
                    counts[name] += len(pending[name])
                    pending[name] = []
        for name, rows in pending.items():
            if rows:
                conn.execute(tables[name].insert(), rows)
                counts[name] += len(rows)
        conn.execute(CALLS.insert(), site.waiting())
        counts["calls"] += sizes.waiting
        recount(conn, settings, layout_for(settings))
    counts["open_inquiries"] = site.open_count + len(site.callbacks)
    counts["open_callbacks"] = len(site.callbacks)
    counts["callback_messages"] = site.callback_messages
    alerts_started = time.perf_counter()
    outcome = run_once(engine, settings, now)
    alerts_s = time.perf_counter() - alerts_started
    counts["alerts_firing"] = outcome.firing
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    shutil.rmtree(folder, ignore_errors=True)
    seconds = time.perf_counter() - started
    print(
        f"built in {seconds:.0f} s ({path.stat().st_size / 1e6:.0f} MB): "
        + ", ".join(f"{v:,} {k}" for k, v in counts.items())
        + f"; the first alert evaluation took {alerts_s:.1f} s",
        file=sys.stderr,
    )
    return Built(path, now.isoformat(), round(seconds, 1), round(alerts_s, 2), counts)


class Site:
    """The rows of the site's year, day by day, from one seeded random generator."""

    def __init__(self, sizes: Sizes, now: datetime) -> None:
        self.sizes = sizes
        self.now = now
        self.rnd = random.Random(25)
        self.conversations = 0
        self.open_count = 0  # open e-mail inquiries
        self.callbacks: dict[str, datetime] = {}  # tel: conversation -> its open inquiry's start
        self.callback_messages = 0
        self.recent_missed: deque[str] = deque(maxlen=500)  # numbers that rang unanswered

    def days(self) -> Iterator[date]:
        today = self.now.astimezone(ZONE).date()
        for back in range(365, -1, -1):
            yield today - timedelta(days=back)

    def day(self, day: date) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {"messages": [], "inquiries": [], "calls": []}
        weekday = day.weekday() < 5
        self._chats(day, out)
        if weekday:
            self._calls(day, out)
        self._emails(day, out, weekday)
        return out

    # -- helpers ---------------------------------------------------------------------------

    def _times(self, day: date, count: float, opens: int, closes: int) -> list[datetime]:
        """About `count` moments of `day` between the hours `opens` and `closes` (local), in
        order, none after now."""
        n = max(0, round(self.rnd.gauss(count, count**0.5 / 2)))
        start = datetime(day.year, day.month, day.day, opens, tzinfo=ZONE)
        span = (closes - opens) * 3600
        moments = sorted(self.rnd.uniform(0, span) for _ in range(n))
        out = [(start + timedelta(seconds=s)).astimezone(UTC) for s in moments]
        return [t.replace(microsecond=0) for t in out if t < self.now]

    def _message(
        self,
        source: str,
        external_id: str,
        conversation: str,
        at: datetime,
        side: str,
        channel: str,
        *,
        kind: str = "message",
        customer: str | None = None,
        subject: str | None = None,
    ) -> dict[str, Any]:
        return {
            "source": source,
            "external_id": external_id,
            "conversation": conversation,
            "at": at,
            "side": side,
            "kind": kind,
            "automatic": False,
            "internal": False,
            "channel": channel,
            "customer": customer,
            "subject": subject,
        }

    def _inquiry(
        self,
        source: str,
        conversation: str,
        channel: str,
        opened: datetime,
        opened_by: str,
        target: timedelta,
        *,
        kind: str = "first",
        closed: datetime | None = None,
        ended: datetime | None = None,
        business: float | None = None,
        customer: str | None = None,
        subject: str | None = None,
    ) -> dict[str, Any]:
        due = opened + target
        finished = closed or ended
        response = None if closed is None else (closed - opened).total_seconds()
        return {
            "source": source,
            "conversation": conversation,
            "channel": channel,
            "kind": kind,
            "status": "answered" if closed else "missed" if ended else "open",
            "opened_at": opened,
            "opened_by": opened_by,
            "closed_at": closed,
            "ended_at": ended,
            "response_seconds": response,
            "business_seconds": business,
            "due_at": due,
            "breached": finished is not None and finished > due,
            "clamped": False,
            "customer": customer,
            "subject": subject,
        }

    # -- the sources -----------------------------------------------------------------------

    def _chats(self, day: date, out: dict[str, list[dict[str, Any]]]) -> None:
        rnd = self.rnd
        for opened in self._times(day, self.sizes.chats / 365 / 1.2, 8, 22):
            self.conversations += 1
            conversation = f"chat-{self.conversations}"
            visitor = f"Visitor {rnd.randrange(10**6):06d}"
            # One inquiry in most chats, a follow-up in a fifth of them.
            for number in range(1 if rnd.random() < 0.8 else 2):
                asked = f"{conversation}:{2 * number + 1}"
                out["messages"].append(
                    self._message("web-chat", asked, conversation, opened, "customer", "chat")
                )
                kind = "followup" if number else "first"
                missed = rnd.random() < 0.06  # the visitor left before anyone answered
                if missed:
                    at = opened + timedelta(seconds=int(rnd.uniform(30, 600)))
                    said, side, what = f"{conversation}:end", "customer", "ended"
                else:
                    at = opened + timedelta(seconds=int(rnd.lognormvariate(3.6, 0.9)) + 5)
                    said, side, what = f"{conversation}:{2 * number + 2}", "agent", "message"
                out["messages"].append(
                    self._message("web-chat", said, conversation, at, side, "chat", kind=what)
                )
                out["inquiries"].append(
                    self._inquiry(
                        "web-chat",
                        conversation,
                        "chat",
                        opened,
                        asked,
                        CHAT_TARGET,
                        kind=kind,
                        closed=None if missed else at,
                        ended=at if missed else None,
                        customer=visitor,
                    )
                )
                if missed:
                    break
                opened = at + timedelta(seconds=int(rnd.uniform(60, 900)))

    def _calls(self, day: date, out: dict[str, list[dict[str, Any]]]) -> None:
        rnd = self.rnd
        names, weights = list(OUTCOMES), list(OUTCOMES.values())
        for entered in self._times(day, self.sizes.calls / 261, 8, 18):
            outcome = rnd.choices(names, weights)[0]
            if outcome == "timeout":
                wait = 300.0
            elif outcome == "exit_empty":
                wait = float(rnd.randint(0, 3))
            else:
                wait = float(int(rnd.expovariate(1 / (80 if outcome in UNANSWERED else 40))))
            roll = rnd.random()
            if roll < 0.03:
                caller = "anonymous"
            elif outcome in UNANSWERED and roll < 0.07 and self.recent_missed:
                caller = rnd.choice(self.recent_missed)  # rang again, still not answered
            else:
                caller = f"+44{rnd.choice(('20', '161', '121', '7700'))}{rnd.randrange(10**7):07d}"
            epoch = int(entered.timestamp())
            queue = rnd.choice(QUEUES)
            external_id = f"{epoch}.{rnd.randrange(10**5)}@{queue}@{epoch}"
            left = entered + timedelta(seconds=wait)
            answered = outcome not in UNANSWERED
            talk = float(int(rnd.lognormvariate(5.2, 0.8)) + 5) if answered else None
            out["calls"].append(
                {
                    "source": "phones",
                    "external_id": external_id,
                    "queue": queue,
                    "entered_at": entered,
                    "answered_at": left if answered else None,
                    "left_at": left + timedelta(seconds=talk or 0),
                    "wait_seconds": wait,
                    "talk_seconds": talk,
                    "outcome": outcome,
                    "caller": caller,
                }
            )
            if answered or caller == "anonymous":
                continue
            # A callback request: a voicemail-channel message in the number's conversation,
            # and an inquiry opened at the first unreturned one (a repeat adds to it).
            self.recent_missed.append(caller)
            conversation = f"tel:{caller[-9:]}"
            missed_id = f"missed:{external_id}"
            self.callback_messages += 1
            out["messages"].append(
                self._message(
                    "phones",
                    missed_id,
                    conversation,
                    left,
                    "customer",
                    "voicemail",
                    customer=caller,
                )
            )
            if conversation not in self.callbacks:
                self.callbacks[conversation] = left
                out["inquiries"].append(
                    self._inquiry(
                        "phones",
                        conversation,
                        "voicemail",
                        left,
                        missed_id,
                        REPLY_TARGET,
                        customer=caller,
                    )
                )

    def _emails(self, day: date, out: dict[str, list[dict[str, Any]]], weekday: bool) -> None:
        rnd = self.rnd
        count = self.sizes.emails / 365 * (1.2 if weekday else 0.5)
        days_ago = (self.now.astimezone(ZONE).date() - day).days
        # The stale ones: a share of the mail of the last six months was never answered.
        stale_share = self.sizes.stale_emails / (self.sizes.emails / 2) if days_ago > 1 else 0
        for opened in self._times(day, count, 0, 24):
            self.conversations += 1
            n = self.conversations
            conversation = f"<{n}.{rnd.getrandbits(40):010x}@mail.customer.test>"
            customer = f"customer{n % 9973}@shop{n % 97}.test"
            subject = f"Order {100000 + n} has not arrived"
            out["messages"].append(
                self._message(
                    "support-mail",
                    conversation,
                    conversation,
                    opened,
                    "customer",
                    "email",
                    customer=customer,
                    subject=subject,
                )
            )
            if days_ago < 183 and rnd.random() < stale_share:
                self.open_count += 1
                out["inquiries"].append(
                    self._inquiry(
                        "support-mail",
                        conversation,
                        "email",
                        opened,
                        conversation,
                        REPLY_TARGET,
                        customer=customer,
                        subject=subject,
                    )
                )
                continue
            response = rnd.lognormvariate(9.6, 1.0)  # a median of four hours, a long tail
            replied = opened + timedelta(seconds=int(response) + 60)
            closed = replied if replied < self.now else None  # not answered yet
            if closed is None:
                self.open_count += 1
            else:
                reply = f"<r{n}@example.com>"
                out["messages"].append(
                    self._message(
                        "support-mail",
                        reply,
                        conversation,
                        closed,
                        "agent",
                        "email",
                        customer=customer,
                        subject=f"Re: {subject}",
                    )
                )
            out["inquiries"].append(
                self._inquiry(
                    "support-mail",
                    conversation,
                    "email",
                    opened,
                    conversation,
                    REPLY_TARGET,
                    closed=closed,
                    business=None if closed is None else response * 0.3,
                    customer=customer,
                    subject=subject,
                )
            )

    def waiting(self) -> list[dict[str, Any]]:
        """The callers in a queue now (a minute to nine minutes in)."""
        return [
            {
                "source": "phones",
                "external_id": f"waiting-{n}@{QUEUES[n % 3]}",
                "queue": QUEUES[n % 3],
                "entered_at": self.now - timedelta(seconds=60 + 120 * n),
                "outcome": "waiting",
                "caller": f"+44207946{n:04d}",
            }
            for n in range(self.sizes.waiting)
        ]
