"""The daily digest's content: one day's figures, ranked, compared and worded.

Every number comes from the metrics engine (`monitor.store.figures`, `monitor.measure.summaries`),
the same functions `report`, `/metrics` and the alerts use; this module only picks, ranks, compares
and words them, and the templates (`templates/digest*`) lay them out.

**Weakest first.** A touchpoint (a source) is ranked by the share of the day's customers it let
down, the worse of:
- inquiries: the share of those whose verdict is in that were *not* answered within the reply
  target (answered late, missed, or still open past it), i.e. 100% minus "within target";
- calls: the share of the day's calls held longer than `hold_warn` or never answered.
Ties go to the touchpoint that let down more customers, then the one with more inquiries open
past their target now, then journey order and name. A touchpoint *needs attention* when that
share is above zero or it has inquiries open past their target. Journey stages are ordered by
their weakest touchpoint, and touchpoints within a stage weakest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from monitor import __version__
from monitor.config import ResolvedTargets, Settings
from monitor.measure.events import Stage
from monitor.measure.items import InquiryItem
from monitor.measure.summaries import CallFigures, HourCounts
from monitor.publish.digest.lines import Line, call_lines, inquiry_lines, target_text
from monitor.publish.digest.teams import TeamSection, team_section
from monitor.publish.unread import Unread, not_read
from monitor.publish.words import duration_text, percent_text
from monitor.store.figures import SourceFigures, all_figures, backlog_now, day_bounds

STAGES = [s.value for s in Stage]
TEXT_BAR = 30  # characters of the widest bar in the plain-text chart
OUTCOME_WORDS = {
    "answered": "answered",
    "transferred": "answered, transferred",
    "abandoned": "hung up",
    "timeout": "timed out",
    "exit_key": "left by key",
    "exit_empty": "queue emptied",
    "unknown": "end unknown",
}


@dataclass(frozen=True)
class Section:
    """One table of a touchpoint: its inquiries, its callbacks, its calls or one queue's."""

    title: str  # "Inquiries", "Callbacks", "Calls", "Calls · sales"
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Touchpoint:
    source: str
    channel: str
    stage: str
    score: float  # share of the day's customers let down (see the module docstring)
    let_down: int  # inquiries not within target + calls held long or unanswered
    open_past_target: int
    problems: tuple[str, ...]  # one sentence per way it let customers down
    sections: tuple[Section, ...]  # its inquiries, then its calls (a section per queue)
    received: int  # inquiries and calls that arrived on the day
    pending: int  # inquiries open and callers waiting now, whenever they began
    complete: bool = True  # False: not read after the day ended, its figures lack some

    @property
    def needs_attention(self) -> bool:
        return self.score > 0 or self.open_past_target > 0

    @property
    def quiet(self) -> bool:
        """Nothing to report: nobody came that day, and nobody is waiting on it now. Shown in
        one line, so the digest stays short however many touchpoints are configured."""
        return not self.received and not self.pending and not self.needs_attention

    @property
    def score_text(self) -> str:
        return percent_text(self.score)

    @property
    def badge(self) -> str:
        """What is wrong, in two or three words: the share let down, else what is overdue."""
        if self.score > 0:
            return f"{self.score_text} let down"
        if self.open_past_target:
            return f"{self.open_past_target} past target"
        if not self.complete:
            return "incomplete"
        return "within target"

    @property
    def quiet_text(self) -> str:
        """The one line of a quiet touchpoint."""
        if not self.complete:
            return "not read: no figures (see the top)"
        return "no inquiries or calls"


@dataclass(frozen=True)
class StageGroup:
    stage: str
    title: str
    touchpoints: tuple[Touchpoint, ...]  # weakest first, quiet ones included

    @property
    def busy(self) -> tuple[Touchpoint, ...]:
        """The touchpoints with something to report, each shown with its tables."""
        return tuple(t for t in self.touchpoints if not t.quiet)

    @property
    def quiet(self) -> tuple[Touchpoint, ...]:
        """The touchpoints with nothing to report, each shown in one line."""
        return tuple(t for t in self.touchpoints if t.quiet)


@dataclass(frozen=True)
class Tile:
    label: str
    value: str
    note: str
    alarm: bool = False


@dataclass(frozen=True)
class OpenItem:
    age: str
    customer: str
    subject: str
    source: str
    channel: str
    since: str
    past_target: bool


@dataclass(frozen=True)
class HoldItem:
    wait: str
    caller: str
    source: str
    queue: str
    at: str
    outcome: str
    over_warn: bool
    over_max: bool


@dataclass(frozen=True)
class HourBar:
    label: str
    total: int
    let_down: int
    ok_width: int  # percent of the chart's width
    let_down_width: int

    @property
    def rest_width(self) -> int:
        return 100 - self.ok_width - self.let_down_width

    @property
    def ok_chars(self) -> int:
        """The bar in characters of the plain-text chart (30 wide)."""
        return _chars(self.ok_width)

    @property
    def let_down_chars(self) -> int:
        return _chars(self.let_down_width)


def _chars(width: int) -> int:
    return max(1, round(width * TEXT_BAR / 100)) if width else 0


def _clip(text: str | None, limit: int) -> str:
    """Customer text shortened for a list line (it is escaped by the HTML template)."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


clip = _clip  # the status page words its lists as the digest does


@dataclass(frozen=True)
class Digest:
    """Everything the templates show, section by section, in the order they show it: a new
    section is one more field here and one more block in each template."""

    day: date
    day_text: str  # Thursday 19 November 2026
    short_day: str  # Thu 19 Nov
    timezone: str
    compared_with: tuple[str, ...]  # column heads: "vs Wed 18", "vs Thu 12"
    compared_text: str
    has_data: bool  # any inquiry or call arrived on the day
    has_sources: bool
    link: str | None  # `digest.link`, shown at the top
    # First of all: the sources that failed, were never read, went stale or were not read
    # after the day ended (those whose figures are incomplete come first).
    unread: tuple[Unread, ...]
    tiles: tuple[Tile, ...]
    attention: tuple[Touchpoint, ...]  # weakest first
    touchpoints: int
    stages: tuple[StageGroup, ...]
    oldest_open: tuple[OpenItem, ...]  # inquiries waiting for a reply, oldest first
    callbacks: tuple[OpenItem, ...]  # callers waiting to be called back, oldest first
    longest_holds: tuple[HoldItem, ...]
    hours: tuple[HourBar, ...]
    generated: str
    version: str
    # By team, and by agent where `reports.agents: true` (None: no teams configured).
    teams: TeamSection | None = None

    @property
    def incomplete(self) -> tuple[Unread, ...]:
        """The sources whose figures for the day are incomplete."""
        return tuple(u for u in self.unread if not u.complete)

    @property
    def reading_note(self) -> str:
        """For the subject: how many sources were not read ("" when all were)."""
        if self.incomplete:
            return f"{len(self.incomplete)} of {self.touchpoints} sources not read"
        if self.unread:
            n = len(self.unread)
            return f"{n} source{'s' * (n != 1)} failing"
        return ""

    @property
    def none_read(self) -> bool:
        """No source was read for the day: there is nothing to report but that."""
        return bool(self.touchpoints) and len(self.incomplete) == self.touchpoints


def build_digest(
    engine: Engine,
    settings: Settings,
    day: date,
    now: datetime,
    top: int = 10,
    *,
    read_after: datetime | None = None,
    read_after_words: str | None = None,
) -> Digest:
    """The digest of `day` (in the configured timezone) as seen at `now`; `top` oldest open
    inquiries, unreturned callbacks and longest holds are listed.

    A source's figures are complete when it was read after `read_after` (by default the end of
    the day; the service passes its own start when that is later, in words
    `read_after_words`); the others are named first and their figures marked incomplete."""
    zone = settings.timezone
    since, until = day_bounds(day, zone)
    # What is open now is the same for the day and the days it is compared with: read once.
    backlog = backlog_now(engine, settings, now)
    figures = all_figures(
        engine, settings, since, until, now, detail=top, read_after=read_after, backlog=backlog
    )
    before = day - timedelta(days=1)
    week = day - timedelta(days=7)
    earlier = [
        all_figures(engine, settings, *day_bounds(d, zone), now, backlog=backlog)
        for d in (before, week)
    ]
    touchpoints = [
        _touchpoint(settings, fig, (prev, last))
        for fig, prev, last in zip(figures, *earlier, strict=True)
    ]
    touchpoints.sort(key=_rank)
    digest = settings.file.digest
    return Digest(
        day=day,
        day_text=f"{day:%A} {day.day} {day:%B %Y}",
        short_day=f"{day:%a} {day.day} {day:%b}",
        timezone=settings.file.timezone,
        compared_with=(f"vs {before:%a} {before.day}", f"vs {week:%a} {week.day}"),
        compared_text=(
            f"{before:%a} {before.day} {before:%b} and {week:%a} {week.day} {week:%b}"
            " (the same weekday a week before)"
        ),
        has_data=any(t.received for t in touchpoints),
        has_sources=bool(figures),
        link=str(digest.link) if digest is not None and digest.link else None,
        unread=not_read(figures, zone, read_after, read_after_words),
        tiles=_tiles(figures),
        attention=tuple(t for t in touchpoints if t.needs_attention),
        touchpoints=len(touchpoints),
        stages=_stages(touchpoints),
        oldest_open=_open_items([o for f in figures for o in f.oldest_open], zone, top),
        callbacks=_open_items([o for f in figures for o in f.callbacks], zone, top),
        longest_holds=_longest_holds(figures, zone, top),
        hours=_hours(figures, zone),
        generated=f"{now.astimezone(zone):%a %d %b %Y %H:%M %Z}",
        version=__version__,
        teams=team_section(engine, settings, since, until, now),
    )


def _touchpoint(
    settings: Settings, fig: SourceFigures, then: tuple[SourceFigures, SourceFigures]
) -> Touchpoint:
    source = settings.source(fig.source)
    targets = settings.targets_for(source)
    shares, problems, let_down, open_late, received = [], [], 0, 0, 0
    inquiries, calls = fig.inquiries, fig.calls
    if inquiries is not None:
        received += inquiries.received
        let_down += inquiries.not_within_target
        open_late = inquiries.open_breached_now
        if inquiries.within_target_ratio is not None:
            shares.append(1 - inquiries.within_target_ratio)
        if inquiries.not_within_target:
            problems.append(
                f"{inquiries.not_within_target} of {inquiries.decided} inquiries not answered "
                f"within {target_text(targets.reply_within)} "
                f"({percent_text(1 - (inquiries.within_target_ratio or 0))})"
            )
        if open_late:
            problems.append(
                f"{open_late} open {'inquiry' if open_late == 1 else 'inquiries'} past target "
                f"now, the oldest waiting {duration_text(inquiries.oldest_open_age_seconds)}"
            )
    if calls is not None:
        received += calls.total
        let_down += calls.held_long_or_unanswered
        if calls.held_long_or_unanswered_ratio is not None:
            shares.append(calls.held_long_or_unanswered_ratio)
        if calls.held_long_or_unanswered:
            problems.append(
                f"{calls.held_long_or_unanswered} of {calls.total} calls held over "
                f"{target_text(targets.hold_warn)} or not answered "
                f"({percent_text(calls.held_long_or_unanswered_ratio)}); longest wait "
                f"{duration_text(calls.longest_wait_seconds)}"
            )
    sections = []
    if inquiries is not None:
        lines = inquiry_lines(
            inquiries,
            tuple(t.inquiries for t in then),
            targets,
            business=source.calendar is not None,
        )
        sections.append(Section("Callbacks" if fig.channel == "phone" else "Inquiries", lines))
    if calls is not None:
        sections += _call_sections(fig, calls, then, targets)
    pending = (inquiries.open_now if inquiries else 0) + (calls.waiting_now if calls else 0)
    return Touchpoint(
        source=fig.source,
        channel=fig.channel.replace("_", " "),
        stage=fig.stage,
        score=max(shares, default=0.0),
        let_down=let_down,
        open_past_target=open_late,
        problems=tuple(problems),
        sections=tuple(s for s in sections if s.lines),
        received=received,
        pending=pending,
        complete=fig.complete,
    )


def _call_sections(
    fig: SourceFigures,
    calls: CallFigures,
    then: tuple[SourceFigures, SourceFigures],
    targets: ResolvedTargets,
) -> list[Section]:
    """The calls of a phone source: one table, or one per queue when it had calls in several
    (a queue with no call that day and nobody waiting has nothing to show), each compared
    with the same queue on the earlier days."""
    if len(fig.queues) <= 1:
        return [Section("Calls", call_lines(calls, tuple(t.calls for t in then), targets))]
    sections = []
    for queue in fig.queues:
        earlier = tuple(
            next((q.calls for q in t.queues if q.queue == queue.queue), None) for t in then
        )
        sections.append(
            Section(f"Calls · {queue.queue}", call_lines(queue.calls, earlier, targets))
        )
    return sections


def _rank(t: Touchpoint) -> tuple[float, int, int, int, str]:
    return (-t.score, -t.let_down, -t.open_past_target, STAGES.index(t.stage), t.source)


def _stages(touchpoints: list[Touchpoint]) -> tuple[StageGroup, ...]:
    """Stages in the order of their weakest touchpoint (`touchpoints` is already ranked)."""
    order: list[str] = []
    for t in touchpoints:
        if t.stage not in order:
            order.append(t.stage)
    return tuple(
        StageGroup(
            stage=stage,
            title=stage.capitalize(),
            touchpoints=tuple(t for t in touchpoints if t.stage == stage),
        )
        for stage in order
    )


def _tiles(figures: list[SourceFigures]) -> tuple[Tile, ...]:
    """Totals of the day across touchpoints (sums of the engine's counts; no pooled
    percentiles, which cannot be added up)."""
    inquiries = [f.inquiries for f in figures if f.inquiries is not None]
    calls = [f.calls for f in figures if f.calls is not None]
    tiles = []
    if inquiries:
        within = sum(i.within_target for i in inquiries)
        decided = sum(i.decided for i in inquiries)
        open_late = sum(i.open_breached_now for i in inquiries)
        tiles += [
            Tile(
                "Inquiries",
                str(sum(i.received for i in inquiries)),
                f"{sum(i.answered for i in inquiries)} answered",
            ),
            Tile(
                "Within target",
                percent_text(within / decided if decided else None),
                f"{within} of {decided}" if decided else "none due yet",
                alarm=within < decided,
            ),
            Tile(
                "Open now",
                str(sum(i.open_now for i in inquiries)),
                f"{open_late} past target",
                alarm=open_late > 0,
            ),
        ]
    if calls:
        total = sum(c.total for c in calls)
        long_ = sum(c.held_long_or_unanswered for c in calls)
        tiles += [
            Tile("Calls", str(total), f"{sum(c.answered for c in calls)} answered"),
            Tile(
                "Calls let down",
                str(long_),
                percent_text(long_ / total) + " of calls" if total else "no calls",
                alarm=long_ > 0,
            ),
        ]
    return tuple(tiles)


def _when(at: datetime, zone: ZoneInfo, with_day: bool) -> str:
    local = at.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %H:%M}" if with_day else f"{local:%H:%M}"


def _open_items(found: list[InquiryItem], zone: ZoneInfo, top: int) -> tuple[OpenItem, ...]:
    """The `top` that have waited longest, across sources, oldest first."""
    items = sorted(found, key=lambda o: (o.opened_at, o.source))
    return tuple(
        OpenItem(
            age=duration_text(o.age_seconds),
            customer=_clip(o.customer, 60) or "unknown customer",
            subject=_clip(o.subject, 90),
            source=o.source,
            channel=o.channel.replace("_", " "),
            since=_when(o.opened_at, zone, with_day=True),
            past_target=o.past_target,
        )
        for o in items[:top]
    )


def _longest_holds(figures: list[SourceFigures], zone: ZoneInfo, top: int) -> tuple[HoldItem, ...]:
    holds = sorted(
        (h for f in figures for h in f.longest_holds),
        key=lambda h: (-(h.wait_seconds or 0.0), h.entered_at),
    )
    return tuple(
        HoldItem(
            wait=duration_text(h.wait_seconds),
            caller=_clip(h.caller, 40) or "number withheld",
            source=h.source,
            queue=h.queue,
            at=_when(h.entered_at, zone, with_day=False),
            outcome=OUTCOME_WORDS.get(h.outcome, h.outcome),
            over_warn=h.over_warn,
            over_max=h.over_max,
        )
        for h in holds[:top]
    )


def _hours(figures: list[SourceFigures], zone: ZoneInfo) -> tuple[HourBar, ...]:
    """The hours from the first to the last with any contact, bars scaled to the busiest."""
    series = [f.hours for f in figures if f.hours]
    if not series:
        return ()
    merged: list[HourCounts] = list(series[0])
    for hours in series[1:]:
        merged = [a + b for a, b in zip(merged, hours, strict=True)]
    totals = [h.inquiries + h.calls for h in merged]
    busy = [i for i, total in enumerate(totals) if total]
    if not busy:
        return ()
    peak = max(totals)
    bars, seen = [], set()
    for h in merged[busy[0] : busy[-1] + 1]:
        local = h.start.astimezone(zone)
        label = f"{local:%H:%M}"
        if label in seen:  # the repeated hour when clocks go back
            label = f"{local:%H:%M %Z}"
        seen.add(label)
        total, late = h.inquiries + h.calls, h.inquiries_let_down + h.calls_let_down
        late_width = _width(late, peak)
        ok_width = min(_width(total - late, peak), 100 - late_width)
        bars.append(HourBar(label, total, late, ok_width, late_width))
    return tuple(bars)


def _width(part: int, peak: int) -> int:
    """Percent of the chart for `part`, at least 1 when there is anything to show."""
    return max(1, round(100 * part / peak)) if part else 0
