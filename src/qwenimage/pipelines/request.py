"""One request = one output image. CLI flags and (later) the HTTP schema are built from this dataclass."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Union

import torch
from PIL import Image

from qwenimage.pipelines.keep import check_keep_threshold
from qwenimage.sampling.schedule import MAX_STEPS, ScheduleConfig, override_schedule
from qwenimage.sampling.step_cache import check_threshold

ImageInput = Union[str, Path, Image.Image]
SEED_RANGE = 2**64  # seeds are 0 <= seed < 2**64, what torch.Generator.manual_seed takes (and torch.seed gives)


class Task(str, Enum):
    TEXT_TO_IMAGE = "t2i"
    EDIT = "edit"  # instruction edit with one or several condition images
    IMG2IMG = "img2img"
    INPAINT = "inpaint"


@dataclass
class GenerationRequest:
    prompt: str
    negative_prompt: str | None = None  # true CFG runs only with a negative prompt and true_cfg_scale > 1
    width: int | None = None  # default: 1024x1024 (t2i) or from the (last) condition / init image
    height: int | None = None
    aspect: str | None = None  # one of sizes.ASPECT_PRESETS, instead of width/height
    num_steps: int = 50  # 1..MAX_STEPS (1000)
    true_cfg_scale: float = 4.0
    seed: int | None = None  # 0 <= seed < 2**64; None: a random seed, recorded in the result
    images: list[ImageInput] = field(default_factory=list)  # edit: condition images (target size from the last)
    init_image: ImageInput | None = None  # img2img / inpaint: the image to start from
    mask: ImageInput | None = None  # inpaint: white = repaint
    strength: float = 0.6  # img2img / inpaint: 1 = start from pure noise
    max_sequence_length: int = 512
    noise: torch.Tensor | None = None  # explicit initial noise [16, h, w] latents (overrides the seed)
    cache_threshold: float | None = None  # step cache (sampling/step_cache.py): 0 or None = off
    # overrides of the model's schedule, e.g. {"shift": 3} (a fixed shift, for Lightning-style few-step LoRAs);
    # keys are ScheduleConfig fields, values as given or as text ("3", "none")
    scheduler: dict[str, object] = field(default_factory=dict)
    # edits: paste the last input image's own pixels back where the result's latents differ from its latents by
    # less than this (pipelines/keep.py); None = off
    keep_unedited: float | None = None
    # edits: carry out 'Change the text "OLD" to "NEW"' on the model's own canvas around the old text, found by
    # OCR, at the size the model writes text, and paste the result back (pipelines/text_focus.py); the mask of
    # what changed uses keep_unedited's threshold (its default when None)
    text_focus: bool = False

    @property
    def task(self) -> Task:
        if self.images and self.init_image is not None:
            raise ValueError("a request has either condition images (edit) or an init image (img2img/inpaint)")
        if self.images:
            return Task.EDIT
        if self.init_image is not None:
            return Task.INPAINT if self.mask is not None else Task.IMG2IMG
        if self.mask is not None:
            raise ValueError("a mask needs an init image to inpaint")
        return Task.TEXT_TO_IMAGE

    def validate(self) -> None:
        """Check every value that needs no model weights; raises ValueError naming the bad value."""
        from qwenimage.text.encoder import MAX_TEXT_TOKENS

        self.task  # noqa: B018  (checks the combination of inputs)
        _check_int("num_steps", self.num_steps, 1, MAX_STEPS)
        _check_int("max_sequence_length", self.max_sequence_length, 1, MAX_TEXT_TOKENS)
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed < SEED_RANGE):
            raise ValueError(f"seed must be an integer with 0 <= seed < 2**64, got {self.seed!r}")
        if not 0 <= self.strength <= 1:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")
        if not math.isfinite(self.true_cfg_scale):
            raise ValueError(f"true_cfg_scale must be a finite number, got {self.true_cfg_scale}")
        check_threshold(self.cache_threshold)
        check_keep_threshold(self.keep_unedited)
        if self.keep_unedited is not None and self.task is not Task.EDIT:
            raise ValueError(f"keep_unedited applies to edits with condition images, not to {self.task.value}")
        if self.text_focus:
            from qwenimage.pipelines.text_focus import quoted_texts

            if self.task is not Task.EDIT:
                raise ValueError(f"text_focus applies to edits with condition images, not to {self.task.value}")
            quoted_texts(self.prompt)
        override_schedule(ScheduleConfig(), self.scheduler)  # unknown keys and bad values

    def uses_cfg(self) -> bool:
        return self.true_cfg_scale > 1 and self.negative_prompt is not None

    def start_strength(self) -> float:
        return self.strength if self.task in (Task.IMG2IMG, Task.INPAINT) else 1.0


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if not _is_int(value) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
