"""Job configs (train, curate, synth, serve, eval): nested dataclasses from YAML with dotted overrides.

    config = load_job_config(TrainConfig, "train.yaml", ["optim.lr=1e-4", "data.batch_size=8"])

One mechanism everywhere: a YAML mapping fills the dataclass tree (unknown keys are an error naming the
dotted key), each override `a.b.c=value` sets one field with the value parsed as YAML (numbers, booleans,
lists), and `save_job_config` writes the resolved config next to every output.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from qwenimage.weights.errors import ConfigError

C = TypeVar("C")


def load_job_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from err
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping, got {type(raw).__name__}")
    for override in overrides or []:
        key, value = parse_override(override)
        set_dotted(raw, key, value)
    return from_dict(cls, raw, prefix="")


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.lr=1e-4' -> ('optim.lr', 0.0001); the value is parsed as YAML."""
    key, sep, value = text.lstrip("-").partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not KEY=VALUE (e.g. optim.lr=1e-4)")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: cannot parse the value ({err})") from err


def set_dotted(tree: dict, key: str, value: Any) -> None:
    """Set `a.b.c` in a nested mapping; a number indexes a list (`stages.0.steps=200`)."""
    *parents, leaf = key.split(".")
    node: Any = tree
    for part in parents:
        if isinstance(node, list):
            node = node[_list_index(node, part, key)]
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override {key!r}: {part!r} is a value, not a section")
    if isinstance(node, list):
        node[_list_index(node, leaf, key)] = value
    else:
        node[leaf] = value


def _list_index(items: list, part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise ConfigError(f"override {key!r}: {part!r} is not an index of a list of {len(items)} entries")
    return int(part)


def from_dict(cls: type[C], raw: dict[str, Any], prefix: str) -> C:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(prefix + k for k in unknown)} "
                          f"(valid under {prefix.rstrip('.') or 'the top level'}: {', '.join(sorted(fields))})")
    values = {name: _convert(hints[name], value, prefix + name) for name, value in raw.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {err}") from err


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, key) if len(options) == 1 else value
    if origin in (list, tuple) and dataclasses.is_dataclass(typing.get_args(hint)[0]):
        items = [from_dict(typing.get_args(hint)[0], item, f"{key}[{i}].") for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
        try:
            return hint(value)
        except ValueError:
            raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}") from None
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}")
    return value


def job_config_to_dict(config: Any) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(dataclasses.asdict(config))


def save_job_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(job_config_to_dict(config), sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(tmp, path)
