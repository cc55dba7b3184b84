"""Service-level objectives from the config's `slo:`, as rules and specifications.

`support-monitor slo` writes one of three outputs from the same objectives (docs/slo.md):
Prometheus recording and alerting rules (`prometheus`: error ratios over the workbook's windows,
multi-window multi-burn-rate alerts, error budget remaining, counting only opening hours when
`during` is set), or sloth or pyrra specifications for teams that run those tools. This module
holds what the three share: each objective's SLI (which series are its bad and its total
events), the burn-rate tiers with the factor of each for the objective's window, and the
durations as Prometheus writes them.

The method is the Google SRE workbook's, ch. 5 "Alerting on SLOs"
(https://sre.google/workbook/alerting-on-slos/, "6: Multiwindow, Multi-Burn-Rate Alerts"): page
when 2% of the budget is spent in 1 hour (checked over 5 minutes too, so the alert stops soon
after the burn does) or 5% in 6 hours (and 30 minutes); open a ticket when 10% is spent in
1 day (and 2 hours) or in 3 days (and 6 hours). The workbook writes the factors for a 30-day
window (14.4, 6, 3, 1); a factor is the share of the budget times the window over the long
window, so here it is derived from the objective's own window: a 28-day objective spends the
same share at 13.44, 5.6, 2.8 and 0.9333 (sloth's 28-day catalogue has the same shares).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from monitor.config import Slo
from monitor.errors import SupportMonitorError

VERDICTS = "support_response_verdicts_total"
CALL_VERDICTS = "support_call_verdicts_total"
CALENDAR_OPEN = "support_calendar_open"
# The channels of a missed caller waiting for a callback.
CALLBACK_CHANNELS = ("voicemail", "answering_service")
SLI_MEANING = {
    "replies": "inquiries answered within the reply target (one still waiting counts late "
    "from the moment the target passes)",
    "holds": "calls answered by a person within hold_warn (a call that waited longer or was "
    "never answered counts late)",
    "callbacks": "missed callers called back within the reply target (one still waiting "
    "counts late from the moment the target passes)",
}


@dataclass(frozen=True)
class Tier:
    """One window pair of the multi-window, multi-burn-rate alerts."""

    severity: Literal["page", "ticket"]
    long: timedelta
    short: timedelta
    budget: Decimal  # the share of the window's error budget it spends before it fires


TIERS = (
    Tier("page", timedelta(hours=1), timedelta(minutes=5), Decimal("0.02")),
    Tier("page", timedelta(hours=6), timedelta(minutes=30), Decimal("0.05")),
    Tier("ticket", timedelta(days=1), timedelta(hours=2), Decimal("0.10")),
    Tier("ticket", timedelta(days=3), timedelta(hours=6), Decimal("0.10")),
)
# The windows every objective records an error ratio over (its own window is added).
WINDOWS = tuple(sorted({w for t in TIERS for w in (t.long, t.short)}))
# The window the current burn rate is shown over: 5 minutes is mostly empty at support volumes.
BURN_WINDOW = timedelta(hours=1)


def factor(tier: Tier, window: timedelta) -> Decimal:
    """The burn rate at which `tier` spends its share of a `window` budget within its long
    window (to four decimals: 0.9333 for 3 days of a 28-day window)."""
    exact = tier.budget * Decimal(int(window.total_seconds())) / int(tier.long.total_seconds())
    return exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN).normalize()


def budget(slo: Slo) -> Decimal:
    """The error budget: the share of events that may be bad (exact: 1 - 0.95 is 0.05)."""
    return 1 - slo.objective


def threshold(slo: Slo, tier: Tier) -> Decimal:
    """The error ratio over which `tier` fires."""
    return (factor(tier, slo.window) * budget(slo)).normalize()


def can_fire(slo: Slo, tier: Tier) -> bool:
    """An error ratio cannot pass 1: a tier whose threshold is 1 or more never fires (at a 90%
    objective, 14.4 times the budget is 144% of the events)."""
    return threshold(slo, tier) < 1


def impossible(slo: Slo) -> list[str]:
    """One line for each tier that could never fire at `slo`'s objective."""
    lines = []
    for tier in TIERS:
        if not can_fire(slo, tier):
            lowest = percent(1 - 1 / factor(tier, slo.window))
            lines.append(
                f"{slo.where}: the {tier.severity} tier {duration(tier.long)}/"
                f"{duration(tier.short)} ({factor(tier, slo.window)}x the budget) cannot fire "
                f"at objective {percent(slo.objective)}% (it needs an objective above "
                f"{lowest}%)"
            )
    return lines


def percent(ratio: Decimal) -> str:
    """A ratio as a percentage, to at most four decimals: 0.95 as 95, 0.93055… as 93.0556."""
    value = (ratio * 100).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN).normalize()
    return f"{value:f}"


def duration(value: timedelta) -> str:
    """A duration as Prometheus writes one: 5m, 1h, 28d."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def windows(slo: Slo) -> list[timedelta]:
    """The windows `slo` records an error ratio over: the alert windows and its own."""
    return sorted({*WINDOWS, slo.window})


def quoted(value: str) -> str:
    """A PromQL string literal (JSON's escapes are PromQL's): a calendar may be named
    anything."""
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Sli:
    """Which series hold an objective's events: `metric` with `matchers`; the bad ones also
    `verdict="late"`."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)

    def selector(self, *, bad: bool = False) -> str:
        matchers = [*self.matchers, *((("verdict", "=", "late"),) if bad else ())]
        inside = ",".join(f"{label}{op}{quoted(value)}" for label, op, value in matchers)
        return f"{self.metric}{{{inside}}}"


def sli_of(slo: Slo) -> Sli:
    """The series of an objective: the response verdicts of its source or channel (callbacks:
    of the channels of missed callers), or the call verdicts (holds)."""
    metric = CALL_VERDICTS if slo.sli == "holds" else VERDICTS
    matchers: list[tuple[str, str, str]] = []
    if slo.scope == "source":
        matchers.append(("source", "=", slo.name))
        if slo.sli == "callbacks":
            matchers.append(("channel", "=~", "|".join(CALLBACK_CHANNELS)))
    elif slo.sli != "holds":  # a channel's calls are every phone source's
        matchers.append(("channel", "=", slo.name))
    return Sli(metric, tuple(matchers))


def labels_of(slo: Slo) -> dict[str, str]:
    """The labels of every series recorded for `slo`: its id, its SLI, and the source or the
    channel it is about (dashboards select by `source`)."""
    return {"slo": slo.id, "sli": slo.sli, slo.scope: slo.name}


def describe(slo: Slo) -> str:
    """One sentence: what the objective asks."""
    scope = f"source {slo.name}" if slo.scope == "source" else f"channel {slo.name}"
    hours = f", counted during the open hours of calendar {slo.during}" if slo.during else ""
    return (
        f"{percent(slo.objective)}% of {SLI_MEANING[slo.sli]} over {duration(slo.window)}, "
        f"for {scope}{hours}."
    )


class Unwritable(SupportMonitorError):
    """The objectives of the config cannot be written in a format (two with one pyrra name):
    a problem of the config, for this format only; `problems` as a ConfigError's."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Output:
    """What a format writes: files (name, text) and lines for stderr (tiers left out, what the
    format cannot express)."""

    files: Sequence[tuple[str, str]]
    notes: Sequence[str]


def tiers_of(slo: Slo, severity: str) -> Iterator[Tier]:
    """The tiers of one severity that can fire at `slo`'s objective."""
    return (t for t in TIERS if t.severity == severity and can_fire(slo, t))
