"""The objectives as pyrra specifications (`support-monitor slo --format pyrra`).

Written to pyrra's `ServiceLevelObjective` (`pyrra.dev/v1alpha1`, https://github.com/pyrra-dev/pyrra,
`kubernetes/api/v1alpha1/servicelevelobjective_types.go` and the README's ratio example):
`metadata.name`/`namespace`, `spec.description`, `spec.target` (a percentage, as a string),
`spec.window` and `spec.indicator.ratio.errors.metric`/`total.metric`, each a plain vector
selector. One object per file: pyrra's filesystem mode reads each file as one object and
refuses unknown keys.

Pyrra cannot count only opening hours: its indicator is a selector, with no room for the
calendar gauge, and its alerts have no time of day. An objective with `during` is written
counting every hour, and its file and description say so. Pyrra also alerts with its own
windows and factors (14, 7, 2 and 1 over 1h, 6h, 1d and 4d for a 28-day window), not the
workbook's; a 28-day window gives it exactly those windows.
"""

from __future__ import annotations

import re
from typing import Any

from monitor.config import Slo
from monitor.publish.slo import Output, Unwritable, describe, duration, percent, sli_of
from monitor.publish.slo.yamltext import comment, dump

NAMESPACE = "monitoring"  # where the README's examples put them; change it to pyrra's own


def specs(objectives: list[Slo], config_name: str) -> Output:
    files: list[tuple[str, str]] = []
    notes: list[str] = []
    named: dict[str, str] = {}
    for slo in objectives:
        name = object_name(slo)
        if name in named:
            raise Unwritable(
                [
                    f"{slo.where}: its pyrra name {name!r} is also that of {named[name]} "
                    "(pyrra names are lower case, with - for _): rename a source"
                ]
            )
        named[name] = slo.where
        header = [
            f"A service-level objective of Support Monitor as a pyrra ServiceLevelObjective "
            f"(pyrra.dev/v1alpha1), written by `support-monitor slo --format pyrra` from "
            f"{config_name}.",
            "Format: https://github.com/pyrra-dev/pyrra "
            "(kubernetes/api/v1alpha1/servicelevelobjective_types.go).",
            "Pyrra alerts with its own windows and factors, not the SRE workbook's.",
        ]
        if slo.during is not None:
            note = (
                f"{slo.where}: pyrra cannot count only the opening hours of {slo.during}: "
                f"{name} counts every hour"
            )
            notes.append(note)
            header.append(note.split(": ", 1)[1] + " (no selector can hold the calendar).")
        files.append((f"{name}.yaml", comment(header) + dump(_object(slo, name))))
    return Output(files, notes)


def object_name(slo: Slo) -> str:
    """A Kubernetes object name: lower-case letters, digits, - and ."""
    return re.sub(r"[^a-z0-9.-]", "-", slo.id.lower()).strip("-.")


def _object(slo: Slo, name: str) -> dict[str, Any]:
    sli = sli_of(slo)
    description = describe(slo)
    if slo.during is not None:
        description += " Pyrra counts every hour: it cannot count only opening hours."
    return {
        "apiVersion": "pyrra.dev/v1alpha1",
        "kind": "ServiceLevelObjective",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "description": description,
            "target": percent(slo.objective),
            "window": duration(slo.window),
            "indicator": {
                "ratio": {
                    "errors": {"metric": sli.selector(bad=True)},
                    "total": {"metric": sli.selector()},
                }
            },
        },
    }
