"""Pure conversion from the wire format to `GenerationRequest`s: sizes, quality, seeds, model defaults.

No HTTP, no weights: everything here is a function of the protocol object, the model's defaults and the
server limits, so it is tested without a server or a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from qwenimage.pipelines.request import GenerationRequest
from qwenimage.serve.config import ServeConfig
from qwenimage.serve.errors import invalid
from qwenimage.serve.protocol import QUALITY_ALIASES, QUALITY_STEPS, ImageEditRequest, ImageParams

_SIZE = re.compile(r"^\s*(\d{1,6})\s*[xX×]\s*(\d{1,6})\s*$")


@dataclass(frozen=True)
class ModelDefaults:
    """What a request gets for the fields it leaves out: the model folder's qwenimage.json "defaults"
    (the same ones `qwenimage generate` uses), else the pipeline's own defaults."""

    num_steps: int = 50
    true_cfg_scale: float = 4.0
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    edit_true_cfg_scale: float | None = None  # qwenimage.json "edit_defaults": instruction edits' CFG, if set
    text_focus: bool = False  # qwenimage.json declares "text_focus" (the model's text geometry)

    @classmethod
    def from_folder(cls, folder: Path) -> ModelDefaults:
        from qwenimage.pipelines.loading import model_settings

        settings = model_settings(folder)
        known = {"num_steps", "true_cfg_scale", "negative_prompt", "width", "height"}
        edit_cfg = settings.get("edit_defaults", {}).get("true_cfg_scale")
        return cls(**{k: v for k, v in settings.get("defaults", {}).items() if k in known},
                   edit_true_cfg_scale=edit_cfg, text_focus="text_focus" in settings)

    @property
    def edit_cfg(self) -> float:
        """The CFG of an instruction edit that sets none: "edit_defaults" when the folder has them (the mini model
        edits at CFG 1), else the text-to-image default."""
        return self.true_cfg_scale if self.edit_true_cfg_scale is None else self.edit_true_cfg_scale


def parse_size(size: str | None) -> tuple[int, int] | None:
    """"WxH" -> (W, H); "auto" or None -> None (the model's default, or the input image's size for edits)."""
    if size is None or size.strip().lower() == "auto":
        return None
    match = _SIZE.match(size)
    if not match:
        raise invalid(f"size must be 'WIDTHxHEIGHT' (e.g. '1024x1024') or 'auto', got {size!r}", "size")
    width, height = int(match.group(1)), int(match.group(2))
    if width < 1 or height < 1:
        raise invalid(f"size {size!r} has a zero side", "size")
    return width, height


def steps_for(params: ImageParams, defaults: ModelDefaults) -> int:
    """num_inference_steps when given, else the quality's documented step count (auto: the model's)."""
    if params.num_inference_steps is not None:
        return params.num_inference_steps
    quality = QUALITY_ALIASES.get(params.quality or "auto", params.quality or "auto")
    return QUALITY_STEPS.get(quality, defaults.num_steps)


def check_limits(params: ImageParams, config: ServeConfig, size: tuple[int, int] | None) -> None:
    if len(params.prompt) > config.max_prompt_chars:
        raise invalid(f"prompt has {len(params.prompt)} characters, more than the limit of "
                      f"{config.max_prompt_chars}", "prompt", code="string_above_max_length")
    if params.negative_prompt is not None and len(params.negative_prompt) > config.max_prompt_chars:
        raise invalid(f"negative_prompt has {len(params.negative_prompt)} characters, more than the limit of "
                      f"{config.max_prompt_chars}", "negative_prompt", code="string_above_max_length")
    if (params.n or 1) > config.max_n:
        raise invalid(f"n must be at most {config.max_n} on this server, got {params.n}", "n")
    if (params.partial_images or 0) > config.max_partial_images:
        raise invalid(f"partial_images must be at most {config.max_partial_images}, got {params.partial_images}",
                      "partial_images")
    if size is not None and size[0] * size[1] > config.max_pixels:
        raise invalid(f"size {size[0]}x{size[1]} has {size[0] * size[1]:,} pixels, more than the limit of "
                      f"{config.max_pixels:,}", "size")


def to_requests(params: ImageParams, defaults: ModelDefaults, config: ServeConfig, *,
                images: list[Image.Image] = (), mask: Image.Image | None = None) -> list[GenerationRequest]:
    """One GenerationRequest per output image (n of them). With a mask the first image is inpainted;
    without one the images condition an instruction edit; with neither it is text-to-image."""
    size = parse_size(params.size)
    check_limits(params, config, size)
    if size is None and not images:
        size = (defaults.width, defaults.height) if defaults.width and defaults.height else None
    negative = params.negative_prompt if params.negative_prompt is not None else defaults.negative_prompt
    default_cfg = defaults.edit_cfg if images and mask is None else defaults.true_cfg_scale  # instruction edit?
    cfg = params.true_cfg_scale if params.true_cfg_scale is not None else default_cfg
    if mask is not None and len(images) != 1:
        raise invalid(f"inpainting with a mask takes exactly one image, got {len(images)}", "image")
    keep = params.keep_unedited if isinstance(params, ImageEditRequest) else None
    focus = bool(params.text_focus) if isinstance(params, ImageEditRequest) else False
    for name, value in (("keep_unedited", keep), ("text_focus", focus)):
        if value not in (None, False) and (mask is not None or not images):
            raise invalid(f"{name} applies to instruction edits (images without a mask)", name)
    if focus and not defaults.text_focus:
        raise invalid("text_focus needs the model's text geometry (\"text_focus\" in its qwenimage.json); the "
                      "served model declares none", "text_focus")
    requests, steps = [], steps_for(params, defaults)
    for i in range(params.n or 1):
        request = GenerationRequest(prompt=params.prompt, negative_prompt=negative, num_steps=steps,
                                    true_cfg_scale=cfg, seed=None if params.seed is None else params.seed + i,
                                    width=size[0] if size else None, height=size[1] if size else None)
        if mask is not None:
            request.init_image, request.mask = images[0], mask
            strength = params.strength if isinstance(params, ImageEditRequest) else None
            request.strength = 1.0 if strength is None else strength
        else:
            request.images, request.keep_unedited, request.text_focus = list(images), keep, focus
        requests.append(request)
    return requests


def openai_mask(mask: Image.Image) -> Image.Image:
    """An OpenAI-style mask (transparent = edit here) as ours (white = repaint). A mask without alpha is read
    as ours already: white repaints."""
    if "A" in mask.getbands() or (mask.mode == "P" and "transparency" in mask.info):
        alpha = mask.convert("RGBA").getchannel("A")
        return alpha.point(lambda a: 255 if a < 128 else 0).convert("RGB")
    return mask.convert("L").convert("RGB")
