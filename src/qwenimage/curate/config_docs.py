"""Documented config fields: `opt(default, doc)` declares a dataclass field with its documentation, which
`config_yaml` writes as comments above each key (the shipped default YAML) and `documented_keys` turns into
command-line options. Loading stays with the project's one mechanism, `qwenimage.jobconfig`.

    print(config_yaml(CurateConfig()))  # every key with its documentation comment
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from typing import Any

import yaml


def opt(default: Any, doc: str) -> Any:
    """A dataclass field with a default (lists and dicts are copied per instance) and its documentation."""
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata={"doc": doc})
    return dataclasses.field(default=default, metadata={"doc": doc})


def config_yaml(config: Any, indent: int = 0) -> str:
    """The config as YAML, each key preceded by its documentation as a comment."""
    lines: list[str] = []
    pad = " " * indent
    for f in dataclasses.fields(config):
        doc = f.metadata.get("doc")
        if doc:
            lines.extend(f"{pad}# {line}" for line in doc.splitlines())
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{f.name}:")
            lines.append(config_yaml(value, indent + 2).rstrip("\n"))
        else:
            lines.extend(pad + line for line in _yaml_entry(f.name, _plain(value)).splitlines())
    return "\n".join(lines) + "\n"


def _yaml_entry(name: str, value: Any) -> str:
    """`name: value`, flow style when it fits on a line, block style otherwise."""
    flow = yaml.safe_dump({name: value}, allow_unicode=True, default_flow_style=True, width=10_000).strip()
    flow = flow[1:-1] if flow.startswith("{") else flow  # a one-key flow mapping: {name: value}
    if len(flow) <= 110 and not isinstance(value, dict):
        return flow
    return yaml.safe_dump({name: value}, allow_unicode=True, default_flow_style=False, sort_keys=False, width=110)


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else (
        [_plain(v) for v in value] if isinstance(value, list) else value)


def documented_keys(cls: type, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, type hint, doc) of every leaf field, for command-line options."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(documented_keys(hints[f.name], key))
        else:
            out.append((key, hints[f.name], f.metadata.get("doc", "")))
    return out
