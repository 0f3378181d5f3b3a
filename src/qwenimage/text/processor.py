"""Turns chat texts and images into Qwen2.5-VL inputs (our stand-in for transformers' Qwen2VLProcessor).

transformers' Qwen2VLProcessor also builds a video processor, which needs torchvision; we only need images.
The image processor (transformers' PIL backend, so results do not depend on torchvision being installed)
resizes each image to multiples of patch x merge, and each `<|image_pad|>` in the text becomes one token per
merged patch: grid_t * grid_h * grid_w / merge_size**2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from qwenimage.text.errors import ImageError
from qwenimage.images import to_rgb
from qwenimage.text.templates import IMAGE_PAD

PREPROCESSOR_CONFIG = "preprocessor_config.json"
# Qwen2.5-VL's preprocessor_config.json values, used when a pipeline folder has no processor/ folder.
DEFAULT_IMAGE_SETTINGS = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
                          "min_pixels": 56 * 56, "max_pixels": 28 * 28 * 16384}


def load_image_processor(processor_folder: Path | None) -> Qwen2VLImageProcessorPil:
    """The image processor from `processor/preprocessor_config.json`, or Qwen2.5-VL defaults without one."""
    if processor_folder is None or not (Path(processor_folder) / PREPROCESSOR_CONFIG).is_file():
        return Qwen2VLImageProcessorPil(**DEFAULT_IMAGE_SETTINGS)
    return Qwen2VLImageProcessorPil.from_pretrained(str(processor_folder), local_files_only=True)


@dataclass
class EncoderInputs:
    """Qwen2.5-VL forward inputs for a batch of B texts holding N images in total."""

    input_ids: torch.Tensor  # [B, S] long
    attention_mask: torch.Tensor  # [B, S] long, 1 = token, 0 = padding
    pixel_values: torch.Tensor | None = None  # [P, C*T*patch*patch], patches of all N images
    image_grid_thw: torch.Tensor | None = None  # [N, 3] (t, h, w) in patches

    def to(self, device: torch.device | str, dtype: torch.dtype) -> EncoderInputs:
        """On `device`, with the pixels in the vision tower's `dtype` (ids, mask and grid keep theirs)."""
        pixels = None if self.pixel_values is None else self.pixel_values.to(device, dtype)
        grid = None if self.image_grid_thw is None else self.image_grid_thw.to(device)
        return EncoderInputs(self.input_ids.to(device), self.attention_mask.to(device), pixels, grid)


class VisionTextProcessor:
    """Tokenizer + image processor: texts with `<|image_pad|>` placeholders and their images, in order."""

    def __init__(self, tokenizer, image_processor: Qwen2VLImageProcessorPil | None = None):
        self.tokenizer = tokenizer
        self.image_processor = image_processor or Qwen2VLImageProcessorPil(**DEFAULT_IMAGE_SETTINGS)

    def tokens_per_image(self, image_grid_thw: torch.Tensor) -> list[int]:
        return (image_grid_thw.prod(dim=-1) // self.image_processor.merge_size**2).tolist()

    def __call__(self, texts: list[str], images: list[Image.Image] | None = None) -> EncoderInputs:
        images = list(images or [])
        placeholders = sum(text.count(IMAGE_PAD) for text in texts)
        if placeholders != len(images):
            raise ImageError(f"the texts hold {placeholders} image placeholder(s) but {len(images)} image(s) were given")
        pixels = grid = None
        if images:
            vision = self.image_processor(images=[to_rgb(im) for im in images], return_tensors="pt")
            pixels, grid = vision["pixel_values"], vision["image_grid_thw"]  # [P, C*T*p*p], [N, 3]
            texts = _expand_placeholders(texts, self.tokens_per_image(grid))
        tokens = self.tokenizer(texts, padding=True, return_tensors="pt")
        return EncoderInputs(tokens["input_ids"], tokens["attention_mask"], pixels, grid)


def _expand_placeholders(texts: list[str], counts: list[int]) -> list[str]:
    """Replace the i-th `<|image_pad|>` over all texts (in order) by counts[i] copies of itself."""
    counts_left = iter(counts)
    expanded = []
    for text in texts:
        pieces = text.split(IMAGE_PAD)
        out = pieces[0]
        for piece in pieces[1:]:
            out += IMAGE_PAD * next(counts_left) + piece
        expanded.append(out)
    return expanded
