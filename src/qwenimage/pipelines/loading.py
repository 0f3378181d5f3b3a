"""Build a `QwenImagePipeline` from a diffusers-layout pipeline folder (model_index.json + components)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import torch

from qwenimage.devices import resolve_device
from qwenimage.images import load_image, load_mask
from qwenimage.model import QwenImageMMDiT
from qwenimage.pipelines.pipeline import QwenImagePipeline, check_edit_support
from qwenimage.pipelines.request import GenerationRequest, Task
from qwenimage.pipelines.sizes import SizeLimits
from qwenimage.pipelines.tasks import source_image, target_size
from qwenimage.pipelines.text_focus import TextFocus
from qwenimage.sampling.schedule import ScheduleConfig, override_schedule
from qwenimage.vae import WanVAE
from qwenimage.weights.config_io import read_json
from qwenimage.weights.hub import resolve_model
from qwenimage.weights.quantize import check_quantize

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
                  cfg_batching: bool | None = None, revision: str | None = None,
                  scheduler: Mapping[str, object] | None = None,
                  quantize: str | None = None) -> QwenImagePipeline:
    """`folder`: a local pipeline folder, or a Hub repo id ("Qwen/Qwen-Image", at `revision`) resolved through
    huggingface_hub (see weights/hub.py). `scheduler`: overrides of the folder's schedule, e.g. {"shift": 3}.
    `quantize`: int8, int8-dynamic or fp8 quantises the transformer's linears while loading (weights/quantize.py)."""
    from qwenimage.text import ConditionEncoder

    folder, device = resolve_model(folder, revision), resolve_device(device)
    index = _model_index(folder)
    schedule = override_schedule(ScheduleConfig.from_folder(folder / "scheduler"), scheduler or {})
    load_device = "cpu" if offload else device
    check_quantize(quantize, device)  # before anything is read: an unknown mode or fp8 on CPU is one line
    transformer = QwenImageMMDiT.from_pretrained(folder / "transformer", dtype=dtype, device=load_device,
                                                 quantize=quantize)
    vae = WanVAE.from_pretrained(folder / "vae", dtype=dtype, device=load_device)
    if vae_tiling:
        vae.enable_tiling()
    encoder = ConditionEncoder.from_pretrained(folder, dtype=dtype, device=load_device)
    pipe = QwenImagePipeline(transformer, vae, encoder, schedule,
                             device=device, size_limits=size_limits(folder),
                             edit_style=folder_edit_style(folder),
                             cfg_batching=cfg_batching, offload=offload,
                             text_focus=TextFocus.from_settings(model_settings(folder)))
    log.info("loaded %s (%s) from %s", index.get("_class_name"), dtype or "stored dtype", folder)
    return pipe


def check_requests(folder: str | Path, requests: list[GenerationRequest]) -> None:
    """Every check that needs no weights, against the model folder's settings, before anything is loaded:
    the request values, the input images (readable, not too large, the mask's size), the output size (with
    where a derived size comes from), and whether the model can do the task. Raises ValueError."""
    folder = Path(folder)
    edit_style = folder_edit_style(folder)
    limits = size_limits(folder)
    step = WanVAE.config_from_folder(folder / "vae").spatial_factor * 2  # pixels per token side
    text_focus = TextFocus.from_settings(model_settings(folder))
    for request in requests:
        request.validate()
        check_edit_support(edit_style, len(request.images))
        if request.text_focus and text_focus is None:
            raise ValueError(f"text_focus needs the model's text geometry (\"text_focus\" in {folder / SETTINGS_NAME});"
                             " this model declares none")
        for image in request.images[:-1]:
            load_image(image)  # every condition image must be readable, not only the one that sets the size
        source = source_image(request)
        width, height = target_size(request, limits, step, source.size if source is not None else None)
        if request.task is Task.INPAINT:
            load_mask(request.mask, (width, height))


def folder_edit_style(folder: str | Path) -> str | None:
    """The edit style the folder's pipeline class declares ("edit", "edit_plus"), None for text-to-image."""
    return EDIT_STYLES.get(_model_index(Path(folder)).get("_class_name"))


def size_limits(folder: Path) -> SizeLimits:
    return SizeLimits(**model_settings(folder).get("size_limits", {}))


def _model_index(folder: Path) -> dict:
    if not folder.is_dir():
        raise ValueError(f"model folder not found: {folder}")
    return read_json(folder / "model_index.json", what="model_index.json (a diffusers pipeline folder)")
