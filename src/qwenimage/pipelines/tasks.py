"""Task adapters: each turns a request into what the one sampler needs (a `Prepared` sample).

They differ only in the starting point, the condition images and the inpaint blend; everything else
(text, noise, schedule) is shared. Shapes per sample: latents [16, h, w], tokens [S, 64].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from PIL import Image

from qwenimage.images import EDIT_AREA, condition_size, load_image, load_mask, resize_to_area
from qwenimage.pipelines.request import GenerationRequest, Task
from qwenimage.pipelines.sizes import DEFAULT_SIZE, floor_to_multiple, resolve_size
from qwenimage.sampling.conditioning import TextConditioning
from qwenimage.sampling.packing import pack_latents

if TYPE_CHECKING:
    from qwenimage.pipelines.pipeline import QwenImagePipeline


@dataclass
class Prepared:
    request: GenerationRequest
    width: int
    height: int
    noise: torch.Tensor  # [S, C] packed initial noise
    text: TextConditioning  # batch 1
    negative: TextConditioning | None
    reference_grids: list[tuple[int, int]]
    reference_tokens: torch.Tensor | None  # [S_ref, C]
    known: torch.Tensor | None = None  # [S, C] clean packed latents of the init image (img2img / inpaint)
    mask: torch.Tensor | None = None  # [S, C] inpaint: 1 = repaint
    grid: tuple[int, int] = (0, 0)  # token rows, cols of the target; set by prepare()


def prepare(pipe: QwenImagePipeline, request: GenerationRequest) -> Prepared:
    task = request.task
    if task is Task.EDIT:
        prepared = prepare_edit(pipe, request)
    elif task in (Task.IMG2IMG, Task.INPAINT):
        prepared = prepare_from_image(pipe, request)
    else:
        prepared = prepare_text_to_image(pipe, request)
    prepared.grid = (prepared.height // pipe.token_step, prepared.width // pipe.token_step)
    return prepared


def output_size(pipe: QwenImagePipeline, request: GenerationRequest, default: tuple[int, int]) -> tuple[int, int]:
    """Sizes the user asked for are checked strictly; sizes derived from input images are floored to fit."""
    if request.width is None and request.height is None and request.aspect is None:
        return floor_to_multiple(*default, pipe.token_step)
    width, height = resolve_size(request.width, request.height, request.aspect, default=default)
    pipe.size_limits.check(width, height)
    return width, height


def prepare_text_to_image(pipe: QwenImagePipeline, request: GenerationRequest) -> Prepared:
    width, height = output_size(pipe, request, default=DEFAULT_SIZE)
    generator = pipe.generator(request)
    return Prepared(request, width, height, pipe.initial_noise(request, width, height, generator),
                    *pipe.encode_text(request), reference_grids=[], reference_tokens=None)


def prepare_edit(pipe: QwenImagePipeline, request: GenerationRequest) -> Prepared:
    """Condition images go to the VL encoder (with the prompt) and, as latents, after the target tokens."""
    images = [load_image(i) for i in request.images]
    vae_images = [resize_to_area(img, EDIT_AREA) for img in images]
    width, height = output_size(pipe, request, default=condition_size(images[-1].width, images[-1].height))
    generator = pipe.generator(request)
    tokens, grids = [], []
    for img in vae_images:
        latents = pipe.encode_image(img, sample=False)  # [16, h, w] normalised mode latents
        tokens.append(pack_latents(latents[None])[0])
        grids.append((latents.shape[1] // 2, latents.shape[2] // 2))
    return Prepared(request, width, height, pipe.initial_noise(request, width, height, generator),
                    *pipe.encode_text(request, images), reference_grids=grids, reference_tokens=torch.cat(tokens))


def prepare_from_image(pipe: QwenImagePipeline, request: GenerationRequest) -> Prepared:
    """img2img and inpaint: the init image's sampled latents are the start (noised to the first sigma)."""
    image = load_image(request.init_image)
    width, height = output_size(pipe, request, default=image.size)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    mask_pixels = load_mask(request.mask, image.size) if request.mask is not None else None
    generator = pipe.generator(request)
    known = pack_latents(pipe.encode_image(image, sample=True, generator=generator)[None])[0]  # [S, C]
    noise = pipe.initial_noise(request, width, height, generator)
    mask = None
    if mask_pixels is not None:
        factor = pipe.vae.spatial_factor
        latent_mask = F.interpolate(mask_pixels[None], size=(height // factor, width // factor), mode="nearest")
        mask = pack_latents(latent_mask.expand(1, pipe.latent_channels, -1, -1))[0].to(known.dtype)  # [S, C*4]
    return Prepared(request, width, height, noise, *pipe.encode_text(request), reference_grids=[],
                    reference_tokens=None, known=known, mask=mask)
