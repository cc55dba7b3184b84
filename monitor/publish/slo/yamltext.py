"""YAML for people: comments above each part, multi-line strings (PromQL) as literal blocks.

PyYAML writes no comments, so a generated file is put together from comment lines and dumped
parts; `comment` makes any text a comment, whatever it holds (a calendar may be named
anything, a line break included)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Literal blocks for multi-line strings; lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True  # the same labels written out at each rule, not as &anchors


def _string(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _string)


def dump(value: Any, indent: int = 0) -> str:
    text = yaml.dump(
        value,
        Dumper=_Dumper,
        sort_keys=False,
        width=100,
        allow_unicode=True,
        default_flow_style=False,
    )
    return textwrap.indent(text, " " * indent)


def comment(lines: Iterable[str], indent: int = 0) -> str:
    """`lines` as YAML comment lines (each of its own lines too)."""
    prefix = " " * indent + "#"
    out = []
    for line in lines:
        for part in line.splitlines() or [""]:
            out.append(f"{prefix} {part}".rstrip())
    return "\n".join(out) + "\n" if out else ""
