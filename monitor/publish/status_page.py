"""The live status page at `/` of `run`: what needs someone now, then today so far.

Every number is the metrics engine's, read by `monitor.store.live` (the same summaries as
`report` and the digest, the open backlog counted in its indexes): the page says what `report
--since <today>` says at the same moment. This module only picks and words them, as the digest
words its lists (`templates/status.html` lays them out, autoescaped):

1. callers waiting now, longest first, each against `hold_warn` and `hold_max`;
2. open inquiries past their target or due within the alert margin (`alerts.due_soon`, else a
   quarter of the reply target), oldest first, with source, customer and subject;
3. sources that failed, were never read or went stale (their figures below are not a quiet day);
4. today so far per touchpoint, and links to the day's digest and its items.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from monitor import __version__
from monitor.config import Settings
from monitor.measure.items import CallItem, InquiryItem
from monitor.publish.alerts.rules import due_soon_margin
from monitor.publish.digest.build import clip
from monitor.publish.digest.lines import target_text
from monitor.publish.unread import Unread, not_read
from monitor.publish.words import duration_text, percent_text
from monitor.store.figures import SourceFigures, day_bounds
from monitor.store.health import STATUS_WORDS
from monitor.store.live import live

Level = Literal["max", "warn", "ok"]


@dataclass(frozen=True)
class WaitingCaller:
    wait: str
    caller: str
    source: str
    queue: str
    since: str  # when they entered, local time
    level: Level  # over hold_max, over hold_warn, or within
    against: str  # "over 13m", "over 5m", "5m at 16:26"


@dataclass(frozen=True)
class OverdueInquiry:
    age: str
    customer: str
    subject: str
    source: str
    channel: str
    since: str
    past_target: bool
    due: str  # "2h 10m past target", "due in 40m"


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    note: str = ""
    alarm: bool = False


@dataclass(frozen=True)
class Touchpoint:
    source: str
    channel: str
    stage: str
    figures: tuple[Figure, ...]  # inquiries (a phone source's: callbacks), then calls
    let_down: int  # inquiries not within target + calls held long or unanswered
    problem: str  # the source's health when it was not read: its figures are no quiet day


@dataclass(frozen=True)
class StatusPage:
    day: date
    day_text: str
    generated: str  # local time of the moment shown
    timezone: str
    waiting: tuple[WaitingCaller, ...]
    waiting_total: int
    overdue: tuple[OverdueInquiry, ...]
    past_target_total: int  # every open inquiry past its target, listed or not
    problems: tuple[Unread, ...]  # sources not read, incomplete first
    touchpoints: tuple[Touchpoint, ...]
    version: str
    wall: bool = False
    refresh: int = 15  # seconds between reloads
    user: str | None = None  # who is logged in, when the page asks

    @property
    def calm(self) -> bool:
        """Nothing needs anyone now."""
        return not (self.waiting or self.overdue or self.problems)


def build_status(
    engine: Engine,
    settings: Settings,
    now: datetime,
    *,
    top: int = 10,
    started_at: datetime | None = None,
) -> StatusPage:
    """The page at `now`: today so far is the day of `now` in the configured timezone. With the
    moment the service started, a source not read since is named too (what is stored of it
    may be hours old), as `/healthz` says "not read yet"."""
    zone = settings.timezone
    day = now.astimezone(zone).date()
    period = day_bounds(day, zone)
    seen = live(
        engine,
        settings,
        period,
        now,
        top=top,
        margin=lambda targets: due_soon_margin(settings, targets),
        read_after=started_at,
    )
    problems = not_read(list(seen.figures), zone, started_at, "the monitor started")
    trouble = {p.source: STATUS_WORDS.get(p.status, "not read yet") for p in problems}
    return StatusPage(
        day=day,
        day_text=f"{day:%A} {day.day} {day:%B %Y}",
        generated=f"{now.astimezone(zone):%H:%M:%S %Z}",
        timezone=settings.file.timezone,
        waiting=tuple(_caller(settings, c, now) for c in seen.waiting[:top]),
        waiting_total=len(seen.waiting),
        overdue=tuple(_overdue(i, now, zone) for i in seen.overdue),
        past_target_total=sum(
            f.inquiries.open_breached_now for f in seen.figures if f.inquiries is not None
        ),
        problems=tuple(problems),
        touchpoints=tuple(_touchpoint(f, trouble.get(f.source, "")) for f in seen.figures),
        version=__version__,
    )


def _local(at: datetime, now: datetime, settings: Settings) -> str:
    """A time of today as `16:05`, of another day as `Tue 17 Nov 09:00`."""
    zone = settings.timezone
    local = at.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return f"{local:%H:%M}"
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def _caller(settings: Settings, call: CallItem, now: datetime) -> WaitingCaller:
    targets = settings.targets_for(settings.source(call.source))
    wait = call.wait_seconds or 0.0
    # The alert rule's comparison: a caller breaches the moment their wait passes a threshold.
    if wait > targets.hold_max.total_seconds():
        level: Level = "max"
        against = f"over {target_text(targets.hold_max)}"
    elif wait > targets.hold_warn.total_seconds():
        level, against = "warn", f"over {target_text(targets.hold_warn)}"
    else:
        level = "ok"
        at = call.entered_at + targets.hold_warn
        against = f"{target_text(targets.hold_warn)} at {_local(at, now, settings)}"
    return WaitingCaller(
        wait=duration_text(wait),
        caller=clip(call.caller, 40) or "number withheld",
        source=call.source,
        queue=call.queue,
        since=_local(call.entered_at, now, settings),
        level=level,
        against=against,
    )


def _overdue(item: InquiryItem, now: datetime, zone: ZoneInfo) -> OverdueInquiry:
    due = item.due_at
    if due is None:
        due_text = ""
    elif item.past_target:
        due_text = f"{duration_text((now - due).total_seconds())} past target"
    else:
        due_text = f"due in {duration_text((due - now).total_seconds())}"
    opened = item.opened_at.astimezone(zone)
    return OverdueInquiry(
        age=duration_text(item.age_seconds),
        customer=clip(item.customer, 60) or "unknown customer",
        subject=clip(item.subject, 90),
        source=item.source,
        channel=item.channel.replace("_", " "),
        since=f"{opened:%a} {opened.day} {opened:%b %H:%M}",
        past_target=item.past_target,
        due=due_text,
    )


def _touchpoint(fig: SourceFigures, problem: str) -> Touchpoint:
    inquiries, calls = fig.inquiries, fig.calls
    figures, let_down = [], 0
    if inquiries is not None:
        let_down += inquiries.not_within_target
        word = "Callbacks" if calls is not None else "Received"
        figures += [
            Figure(word, str(inquiries.received), f"{inquiries.answered} answered"),
            Figure(
                "Within target",
                percent_text(inquiries.within_target_ratio),
                f"{inquiries.within_target} of {inquiries.decided}"
                if inquiries.decided
                else "none due yet",
                alarm=inquiries.not_within_target > 0,
            ),
            Figure("Median reply", duration_text(inquiries.median_seconds)),
            Figure("90% within", duration_text(inquiries.p90_seconds)),
            Figure(
                "Open now",
                str(inquiries.open_now),
                f"{inquiries.open_breached_now} past target",
                alarm=inquiries.open_breached_now > 0,
            ),
        ]
    if calls is not None:
        let_down += calls.held_long_or_unanswered
        figures += [
            Figure("Calls", str(calls.total), f"{calls.answered} answered"),
            Figure(
                "Let down",
                str(calls.held_long_or_unanswered),
                "held too long or not answered",
                alarm=calls.held_long_or_unanswered > 0,
            ),
            Figure("Median wait", duration_text(calls.median_wait_seconds)),
            Figure("90% waited", duration_text(calls.p90_wait_seconds)),
            Figure(
                "Waiting now",
                str(calls.waiting_now),
                f"longest {duration_text(calls.longest_waiting_now_seconds)}"
                if calls.waiting_now
                else "",
            ),
        ]
    return Touchpoint(
        source=fig.source,
        channel=fig.channel.replace("_", " "),
        stage=fig.stage,
        figures=tuple(figures),
        let_down=let_down,
        problem=problem,
    )
