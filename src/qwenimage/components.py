"""Which of our classes loads which diffusers component folder (by the `_class_name` in config.json)."""

from __future__ import annotations

import importlib
from pathlib import Path

from qwenimage.weights.config_io import read_json
from qwenimage.weights.errors import ConfigError
from qwenimage.weights.pretrained import PretrainedModel

# diffusers class name -> (module, our class, preset lookup)
COMPONENTS: dict[str, tuple[str, str]] = {
    "QwenImageTransformer2DModel": ("qwenimage.model", "QwenImageMMDiT"),
    "AutoencoderKLQwenImage": ("qwenimage.vae", "WanVAE"),
}


def component_class(class_name: str) -> type[PretrainedModel]:
    if class_name not in COMPONENTS:
        raise ConfigError(f"unsupported component class {class_name!r}; qwenimage loads {sorted(COMPONENTS)}")
    module, name = COMPONENTS[class_name]
    return getattr(importlib.import_module(module), name)


def class_of_folder(folder: str | Path) -> type[PretrainedModel]:
    """The model class for a component folder, from its config.json."""
    path = Path(folder) / "config.json"
    config = read_json(path, what="config.json")
    class_name = config.get("_class_name") if isinstance(config, dict) else None
    if class_name is None:
        raise ConfigError(f"{path}: no _class_name; cannot tell which component this is")
    return component_class(class_name)
