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
from qwenimage.pipelines.sizes import DEFAULT_SIZE, SizeLimits, floor_to_multiple, resolve_size
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


def target_size(request: GenerationRequest, limits: SizeLimits, step: int,
                source_size: tuple[int, int] | None = None) -> tuple[int, int]:
    """The output (width, height). Sizes the user asked for are checked strictly; a size derived from the
    input image (`source_size`, EXIF-transposed) or the default is floored to multiples of `step` and, when
    out of range, the error says where it came from and what to pass instead."""
    default, origin = default_size(request.task, source_size, limits.edit_area)
    if request.width is not None or request.height is not None or request.aspect is not None:
        width, height = resolve_size(request.width, request.height, request.aspect, default=default)
        limits.check(width, height)
        return width, height
    width, height = floor_to_multiple(*default, step)
    try:
        limits.check(width, height)
    except ValueError as err:
        raise ValueError(f"{err}; no size was given, so {width}x{height} comes from {origin}: pass --width and "
                         f"--height (multiples of {step} within {limits.min_side}..{limits.max_side})") from err
    return width, height


def default_size(task: Task, source_size: tuple[int, int] | None,
                 edit_area: int = EDIT_AREA) -> tuple[tuple[int, int], str]:
    """The size a request gets when it names none, and where that size comes from (for error messages)."""
    if task is Task.TEXT_TO_IMAGE:
        return DEFAULT_SIZE, f"the default size {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}"
    if source_size is None:
        raise ValueError(f"a {task.value} request needs the size of its input image")
    if task is Task.EDIT:
        origin = (f"the last input image ({source_size[0]}x{source_size[1]}) scaled to the model's edit area of "
                  f"about {edit_area:,} pixels")
        return condition_size(*source_size, edit_area), origin
    return source_size, f"the input image ({source_size[0]}x{source_size[1]})"


def source_image(request: GenerationRequest) -> Image.Image | None:
    """The image whose size sets the output size when none is given: the last condition or the init image."""
    if request.images:
        return load_image(request.images[-1])
    return load_image(request.init_image) if request.init_image is not None else None


def prepare_text_to_image(pipe: QwenImagePipeline, request: GenerationRequest) -> Prepared:
    width, height = target_size(request, pipe.size_limits, pipe.token_step)
    generator = pipe.generator(request)
    return Prepared(request, width, height, pipe.initial_noise(request, width, height, generator),
                    *pipe.encode_text(request), reference_grids=[], reference_tokens=None)


def prepare_edit(pipe: QwenImagePipeline, request: GenerationRequest) -> Prepared:
    """Condition images go to the VL encoder (with the prompt) and, as latents, after the target tokens."""
    images = [load_image(i) for i in request.images]
    vae_images = [resize_to_area(img, pipe.size_limits.edit_area) for img in images]
    width, height = target_size(request, pipe.size_limits, pipe.token_step, images[-1].size)
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
    width, height = target_size(request, pipe.size_limits, pipe.token_step, image.size)
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
