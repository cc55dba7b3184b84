"""Who an inquiry or a call counts for: its team, and the agent who answered it.

Pure rules over stored rows and the `teams:` settings:

- A stored responder (monitor.measure.events.responder) is a team's agent when any of its
  identifiers (a name, an address, a Slack id or e-mail, a queue member) is listed in that
  team's `agents`, ignoring case. The agent is then known by the name the team lists (the
  first of an entry that lists one person's identifiers on several channels), so one person
  answering mail, chat and the phone is one agent; an agent on no team is known by the first
  (most readable) identifier their source gave.
- An answered inquiry, and an answered call, count for the responder's team; an open or
  missed inquiry and an unanswered call count for their source's team (`team:` on the source),
  as does an answer by someone on no team or by nobody the source names. Without either it
  counts for no team (`None`), which reports show as its own row, so rows add up to the whole.

Agents are never metric labels: these rules serve reports and the digest only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.config import Settings
from monitor.measure.events import responder_names

Row = Mapping[Any, Any]
ANSWERED = frozenset({"answered", "transferred"})


@dataclass(frozen=True)
class Member:
    """A responder as reports know them."""

    name: str  # the identifier a team lists, else the first the source gave
    team: str | None


@dataclass(frozen=True)
class Roster:
    """The teams and whom they list, and the team of each source."""

    listed: Mapping[str, tuple[str, str]]  # identifier, case-folded -> (team, as listed)
    source_teams: Mapping[str, str | None]

    @classmethod
    def from_settings(cls, settings: Settings) -> Roster:
        listed: dict[str, tuple[str, str]] = {}
        for team, members in settings.file.teams.items():
            for names in members.members():
                for name in names:  # one person's identifiers: known by the first
                    listed.setdefault(name.casefold(), (team, names[0]))
        return cls(listed, {s.name: s.team for s in settings.sources})

    def member(self, agent: str | None) -> Member | None:
        """The agent a stored responder is, and their team; None for nobody."""
        names = responder_names(agent)
        for name in names:
            found = self.listed.get(name.casefold())
            if found is not None:
                return Member(found[1], found[0])
        return Member(names[0], None) if names else None

    def inquiry_member(self, row: Row) -> Member | None:
        """Who answered an inquiry (None while it is open or when nobody is named)."""
        return self.member(row["agent"]) if row["status"] == "answered" else None

    def call_member(self, row: Row) -> Member | None:
        """Who answered a call (None when it was not answered or the log names nobody)."""
        return self.member(row["agent"]) if row["outcome"] in ANSWERED else None

    def inquiry_team(self, row: Row) -> str | None:
        """The team an inquiry counts for: its responder's, else its source's."""
        found = self.inquiry_member(row)
        if found is not None and found.team is not None:
            return found.team
        return self.source_teams.get(row["source"])

    def call_team(self, row: Row) -> str | None:
        """The team a call counts for: its answerer's, else its source's."""
        found = self.call_member(row)
        if found is not None and found.team is not None:
            return found.team
        return self.source_teams.get(row["source"])
