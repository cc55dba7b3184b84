"""`slo:` in the config: per source or per channel, one objective or a list; objectives as
percentages (exact), windows, the SLI a channel measures by default, `during` a configured
calendar; everything else refused at load with the key's path."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from monitor.config import parse_objective, slos
from monitor.config_file import ConfigError, settings_from_mapping

CALENDARS = {"office": {"timezone": "Europe/London", "hours": {"mon": ["09:00-17:30"]}}}


def load(**raw: Any) -> Any:
    return settings_from_mapping({"calendars": CALENDARS, **raw}, Path("."))


def problems(**raw: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(**raw)
    return caught.value.problems


def source(name: str, kind: str, slo: Any) -> dict[str, Any]:
    return {"name": name, "kind": kind, "path": f"{name}.log", "slo": slo}


@pytest.mark.parametrize(
    ("written", "ratio"),
    [("95%", "0.95"), ("99.5 %", "0.995"), ("99.95%", "0.9995"), (0.9, "0.9"), ("0.975", "0.975")],
)
def test_an_objective_is_a_percentage_or_a_ratio_kept_exact(written: Any, ratio: str) -> None:
    assert parse_objective(written) == Decimal(ratio)
    # exact: the budget written into PromQL is 0.05, not 0.050000000000000044
    assert str(1 - parse_objective("95%")) == "0.05"


@pytest.mark.parametrize("written", ["100%", "0%", "-5%", 95, "95", "1", "abc", True, "nan%"])
def test_an_objective_outside_0_to_100_percent_or_not_a_number_is_refused(written: Any) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_objective(written)


def test_objectives_per_source_and_per_channel_with_their_defaults() -> None:
    phones = [{"objective": "90%"}, {"objective": "95%", "sli": "callbacks"}]
    settings = load(
        sources=[
            source("inbox", "mbox", {"objective": "95%", "during": "office"}),
            source("phones", "asterisk_queue_log", phones),
            source("answering", "answering_service_csv", {"objective": "98%", "window": "30d"}),
        ],
        slo={"chat": {"objective": "80%"}, "voicemail": [{"objective": "90%", "window": "7d"}]},
    )
    found = [(s.id, s.scope, s.sli, s.objective, s.window.days, s.during) for s in slos(settings)]
    assert found == [
        ("chat-replies", "channel", "replies", Decimal("0.8"), 28, None),
        ("voicemail-callbacks", "channel", "callbacks", Decimal("0.9"), 7, None),
        ("inbox-replies", "source", "replies", Decimal("0.95"), 28, "office"),
        ("phones-holds", "source", "holds", Decimal("0.9"), 28, None),
        ("phones-callbacks", "source", "callbacks", Decimal("0.95"), 28, None),
        ("answering-callbacks", "source", "callbacks", Decimal("0.98"), 30, None),
    ]


def test_an_sli_the_channel_does_not_measure_is_refused_with_its_path() -> None:
    assert problems(sources=[source("inbox", "mbox", {"objective": "95%", "sli": "holds"})]) == [
        "sources[0].slo[0].sli (source inbox): holds is not measured on channel email (use replies)"
    ]
    assert problems(slo={"phone": {"objective": "95%", "sli": "callbacks"}}) == [
        "slo.phone[0].sli: the callbacks of a whole channel are under slo.voicemail"
    ]


def test_during_names_a_configured_calendar() -> None:
    assert problems(slo={"email": {"objective": "95%", "during": "shop"}}) == [
        "slo.email[0].during: no calendar named 'shop'"
    ]


@pytest.mark.parametrize("window", ["2d", "400d", "28.5h", "90m"])
def test_a_window_is_whole_hours_from_3_to_366_days(window: str) -> None:
    (problem,) = problems(slo={"email": {"objective": "95%", "window": window}})
    assert problem.startswith("slo.email[0].window: expected")


def test_the_same_objective_twice_is_refused() -> None:
    assert problems(
        sources=[source("email", "mbox", {"objective": "95%"})],
        slo={"email": {"objective": "99%"}},
    ) == ["sources[0].slo[0] (source email): 'email-replies' is already defined at slo.email[0]"]


def test_unknown_keys_and_channels_are_refused() -> None:
    assert problems(slo={"email": {"objective": "95%", "target": "24h"}}) == [
        "slo.email[0].target: unknown key"
    ]
    (problem,) = problems(slo={"fax": {"objective": "95%"}})
    assert problem.startswith("slo.fax")
