"""Build a `QwenImagePipeline` from a diffusers-layout pipeline folder (model_index.json + components)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from qwenimage.model import QwenImageMMDiT
from qwenimage.pipelines.pipeline import QwenImagePipeline
from qwenimage.pipelines.sizes import SizeLimits
from qwenimage.sampling.schedule import ScheduleConfig
from qwenimage.vae import WanVAE
from qwenimage.weights.config_io import read_json

log = logging.getLogger(__name__)

EDIT_STYLES = {"QwenImageEditPipeline": "edit", "QwenImageEditPlusPipeline": "edit_plus"}
SETTINGS_NAME = "qwenimage.json"  # optional: settings of models trained with qwenimage (size limits, defaults)


def model_settings(folder: str | Path) -> dict:
    """The folder's qwenimage.json ({} when absent): "size_limits", and "defaults" (width, height, num_steps,
    true_cfg_scale, negative_prompt) that the command line uses when not told otherwise."""
    path = Path(folder) / SETTINGS_NAME
    return read_json(path, what=SETTINGS_NAME) if path.is_file() else {}


def load_pipeline(folder: str | Path, *, dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
                  offload: bool = False, vae_tiling: bool = False,
                  cfg_batching: bool | None = None) -> QwenImagePipeline:
    from qwenimage.text import ConditionEncoder

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"model folder not found: {folder}")
    index = read_json(folder / "model_index.json", what="model_index.json (a diffusers pipeline folder)")
    load_device = "cpu" if offload else device
    transformer = QwenImageMMDiT.from_pretrained(folder / "transformer", dtype=dtype, device=load_device)
    vae = WanVAE.from_pretrained(folder / "vae", dtype=dtype, device=load_device)
    if vae_tiling:
        vae.enable_tiling()
    encoder = ConditionEncoder.from_pretrained(folder, dtype=dtype, device=load_device)
    settings = model_settings(folder)
    limits = SizeLimits(**settings.get("size_limits", {}))
    pipe = QwenImagePipeline(transformer, vae, encoder, ScheduleConfig.from_folder(folder / "scheduler"),
                             device=device, size_limits=limits, edit_style=EDIT_STYLES.get(index.get("_class_name")),
                             cfg_batching=cfg_batching, offload=offload)
    log.info("loaded %s (%s) from %s", index.get("_class_name"), dtype or "stored dtype", folder)
    return pipe
