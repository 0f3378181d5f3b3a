"""Check a diffusers pipeline folder without generating: every component model_index.json lists is present, its
JSON files parse, its weight files exist with consistent safetensors headers, and the transformer and VAE load
strictly. Each problem is one line that names the file, so one run reports everything `generate` would trip on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from qwenimage.components import COMPONENTS, component_class
from qwenimage.weights.config_io import read_json
from qwenimage.weights.pretrained import PretrainedModel

MODEL_COMPONENTS = ("transformer", "vae")  # the folders qwenimage's own classes load
# the file that configures each component (the models' is config.json)
CONFIG_FILES = {"scheduler": "scheduler_config.json", "tokenizer": "tokenizer_config.json",
                "processor": "preprocessor_config.json"}


@dataclass
class FolderReport:
    lines: list[str] = field(default_factory=list)  # one per healthy component
    problems: list[str] = field(default_factory=list)  # one per problem, each naming its file


def check_pipeline_folder(folder: Path, dtype: torch.dtype | None = None) -> FolderReport:
    report = FolderReport()
    try:
        index = read_json(folder / "model_index.json", what="model_index.json")
        if not isinstance(index, dict):
            raise ValueError(f"{folder / 'model_index.json'}: expected a JSON object")
    except (ValueError, OSError) as err:
        report.problems.append(str(err))
        return report
    for name in listed_components(index):
        try:
            report.lines.append(check_component(folder / name, name, dtype))
        except (ValueError, OSError) as err:  # config, checkpoint and image errors name their file
            report.problems.append(str(err))
    return report


def listed_components(index: dict) -> list[str]:
    """The component folders model_index.json names: entries like "vae": ["diffusers", "AutoencoderKL..."]."""
    return [name for name, value in index.items()
            if not name.startswith("_") and isinstance(value, list) and len(value) == 2 and value[1] is not None]


def check_component(folder: Path, name: str, dtype: torch.dtype | None) -> str:
    """A line describing the healthy component `folder`; raises ValueError naming the file on the first problem."""
    if not folder.is_dir():
        raise ValueError(f"{folder}: missing (model_index.json lists the component {name!r})")
    config_name = CONFIG_FILES.get(name, "config.json")
    config = read_json(folder / config_name, what=f"{name} {config_name}")
    for path in sorted(folder.glob("*.json")):
        read_json(path, what=path.name)  # every JSON file parses (tokenizer.json, generation_config.json, ...)
    class_name = config.get("_class_name") if isinstance(config, dict) else None
    if name in MODEL_COMPONENTS or class_name in COMPONENTS:
        return _load_strictly(folder, class_name, dtype)
    if name == "text_encoder":
        from qwenimage.text.encoder import check_weight_files

        count = check_weight_files(folder)
        held = f"{count} tensors, safetensors headers and lengths consistent" if count else "PyTorch .bin weights"
        return f"{folder}: text encoder, {held}"
    if name == "scheduler":
        from qwenimage.sampling.schedule import ScheduleConfig

        ScheduleConfig.from_folder(folder)
    return f"{folder}: {config_name} ok"


def _load_strictly(folder: Path, class_name: str | None, dtype: torch.dtype | None) -> str:
    if not class_name:
        raise ValueError(f"{folder / 'config.json'}: no _class_name; cannot tell which component this is")
    return load_strictly(folder, component_class(class_name), dtype)


def load_strictly(folder: Path, cls: type[PretrainedModel], dtype: torch.dtype | None) -> str:
    """Load a component folder with strict key and shape checks; a line saying what it holds."""
    start = time.perf_counter()
    model = cls.from_pretrained(folder, dtype=dtype)
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()})
    return (f"{folder}: {cls.__name__}, {model.num_parameters():,} parameters ({', '.join(dtypes)}), "
            f"all keys matched, loaded in {time.perf_counter() - start:.1f}s")
