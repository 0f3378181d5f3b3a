"""One explicit mapping between our frozen config dataclasses and diffusers' `config.json`.

Our config field names are the diffusers keys, so the mapping is the identity on names; what this
module adds is validation: unknown keys are an error, list values become tuples, and metadata keys
(`_class_name`, `_diffusers_version`, ...) are checked or dropped.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, TypeVar

from qwenimage.weights.errors import ConfigError

C = TypeVar("C")

DIFFUSERS_VERSION_WRITTEN = "0.35.0"


def config_from_dict(config_cls: type[C], raw: dict[str, Any], *, source: str = "<dict>",
                     class_name: str | None = None) -> C:
    """Build `config_cls` from a diffusers-style dict; unknown keys raise ConfigError naming them."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a JSON object, got {type(raw).__name__}")
    found_class = raw.get("_class_name")
    if class_name is not None and found_class is not None and found_class != class_name:
        raise ConfigError(f"{source}: _class_name is {found_class!r}, expected {class_name!r}")
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    values = {k: v for k, v in raw.items() if not k.startswith("_")}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown keys for {config_cls.__name__}: {unknown}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: {err}") from err


def config_to_dict(config: Any, *, class_name: str) -> dict[str, Any]:
    """The diffusers `config.json` content for a config dataclass."""
    out: dict[str, Any] = {"_class_name": class_name, "_diffusers_version": DIFFUSERS_VERSION_WRITTEN}
    for key, value in dataclasses.asdict(config).items():
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def read_json(path: Path, *, what: str) -> Any:
    """Read a JSON file; a missing or malformed file raises ConfigError naming it."""
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from err


def write_json_atomic(path: Path, content: Any) -> None:
    """Write JSON through a temporary file and rename, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(content, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
