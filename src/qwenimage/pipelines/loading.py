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
SETTINGS_NAME = "qwenimage.json"  # optional: settings of models trained with qwenimage (e.g. size limits)


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
    settings = read_json(folder / SETTINGS_NAME, what=SETTINGS_NAME) if (folder / SETTINGS_NAME).is_file() else {}
    limits = SizeLimits(**settings.get("size_limits", {}))
    pipe = QwenImagePipeline(transformer, vae, encoder, ScheduleConfig.from_folder(folder / "scheduler"),
                             device=device, size_limits=limits, edit_style=EDIT_STYLES.get(index.get("_class_name")),
                             cfg_batching=cfg_batching, offload=offload)
    log.info("loaded %s (%s) from %s", index.get("_class_name"), dtype or "stored dtype", folder)
    return pipe
