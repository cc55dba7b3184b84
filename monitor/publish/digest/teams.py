"""The digest's breakdown by team (and by agent where `reports.agents: true`): who answered
how much, how fast, and who has the oldest open inquiries, weakest first.

The figures are `report --by team` (and `--by agent`) for the day: the same reading of the
period and the same metrics engine (monitor.store.breakdown), so a team's line here is its row
there. A team is ranked as a touchpoint is (monitor.publish.digest.build): by the share of its
customers let down (the worse of its inquiries not answered within target and its calls held
over `hold_warn` or not answered), then how many, then its inquiries open past target now,
then its name. Inquiries and calls that count for no team (no `team:` on their source, and
nobody on a team answered them) make a line of their own, so the lines add up to the day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.measure.summaries import let_down_share
from monitor.publish.words import duration_text, percent_text
from monitor.store.breakdown import Group, breakdown, read_period

NO_TEAM = "no team"


@dataclass(frozen=True)
class TeamLine:
    """One team's (or agent's) day."""

    name: str
    team: str  # an agent's team ("" for a team's own line)
    answered: int  # inquiries answered, of those opened on the day
    within: str  # share answered within target, "-" when none is due yet
    within_note: str  # "9 of 12"
    median_reply: str
    calls_answered: int
    median_wait: str
    talk: str  # talk time of the calls answered
    open_now: int  # inquiries open now (agents have none: open ones are nobody's yet)
    open_past_target: int
    oldest_open: str  # age of the oldest open inquiry, "-" when none
    score: float  # share let down
    let_down: int

    @property
    def badge(self) -> str:
        if self.score > 0:
            return f"{percent_text(self.score)} let down"
        if self.open_past_target:
            return f"{self.open_past_target} past target"
        return "within target"

    @property
    def needs_attention(self) -> bool:
        return self.score > 0 or self.open_past_target > 0

    @property
    def summary(self) -> str:
        """The line in words, for the plain-text digest: only the parts with something in."""
        parts = []
        if self.answered or self.within_note:
            note = f" ({self.within_note})" if self.within_note else ""
            parts.append(
                f"{self.answered} answered, {self.within} within target{note}, "
                f"median reply {self.median_reply}"
            )
        if self.calls_answered:
            parts.append(
                f"{self.calls_answered} calls answered, median wait {self.median_wait}, "
                f"talk {self.talk}"
            )
        if self.open_now:
            late = f" ({self.open_past_target} past target)" if self.open_past_target else ""
            parts.append(f"{self.open_now} open{late}, the oldest waiting {self.oldest_open}")
        return "; ".join(parts) or "nothing answered"


@dataclass(frozen=True)
class TeamSection:
    teams: tuple[TeamLine, ...]  # weakest first
    agents: tuple[TeamLine, ...]  # weakest first; empty unless `reports.agents: true`


def team_section(
    engine: Engine, settings: Settings, since: datetime, until: datetime, now: datetime
) -> TeamSection | None:
    """The day's lines by team (and agent); None when no team is configured and figures per
    agent are off (nothing to break down)."""
    agents = settings.file.reports.agents
    if not settings.file.teams and not agents:
        return None
    period = read_period(engine, settings, since, until, now)
    teams = []
    if settings.file.teams:
        teams = [_line(g, g.key[0] or NO_TEAM, "") for g in breakdown(period, ["team"])]
    people = []
    if agents:
        for group in breakdown(period, ["agent", "team"]):
            agent, team = group.key
            if agent is not None:  # what nobody answered is on the team lines
                people.append(_line(group, agent, team or NO_TEAM))
    return TeamSection(tuple(sorted(teams, key=_rank)), tuple(sorted(people, key=_rank)))


def _line(group: Group, name: str, team: str) -> TeamLine:
    i, c = group.inquiries, group.calls
    score, let_down = let_down_share(i, c)
    return TeamLine(
        name=name,
        team=team,
        answered=0 if i is None else i.answered,
        within="-" if i is None else percent_text(i.within_target_ratio),
        within_note="" if i is None or not i.decided else f"{i.within_target} of {i.decided}",
        median_reply="-" if i is None else duration_text(i.median_seconds),
        calls_answered=0 if c is None else c.answered,
        median_wait="-" if c is None else duration_text(c.median_wait_seconds),
        talk="-" if c is None else duration_text(c.talk_seconds),
        open_now=0 if i is None else i.open_now,
        open_past_target=0 if i is None else i.open_breached_now,
        oldest_open="-" if i is None else duration_text(i.oldest_open_age_seconds),
        score=score,
        let_down=let_down,
    )


def _rank(line: TeamLine) -> tuple[float, int, int, bool, str]:
    # "no team" last among equals: it is what nobody owns, not a team to compare.
    return (-line.score, -line.let_down, -line.open_past_target, line.name == NO_TEAM, line.name)
