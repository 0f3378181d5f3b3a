"""The web UI's side of the server, without Gradio: form values in, scheduler events out.

The form becomes the same protocol object the HTTP API parses (`ImageEditRequest`) and goes through the same
`to_requests`, `worker.admit` and `scheduler.submit`, so UI requests get the model's defaults, obey the
server's limits and batch with API requests: there is no second path to the pipeline. Kept apart from
`ui.py` so that all of it is tested without a browser.
"""

from __future__ import annotations

import asyncio
import math
import numbers
import secrets
import time
from typing import AsyncIterator

from PIL import Image
from pydantic import ValidationError

from qwenimage.images import to_rgb
from qwenimage.pipelines.request import GenerationRequest
from qwenimage.pipelines.sizes import ASPECT_PRESETS, SIZE_MULTIPLE
from qwenimage.serve.convert import to_requests
from qwenimage.serve.errors import ServeError, invalid
from qwenimage.serve.protocol import ImageEditRequest
from qwenimage.serve.scheduler import Done, Failed, Job, Partial, QueueFull
from qwenimage.serve.serving import Serving, client_error
from qwenimage.serve.uploads import decode_rgb

RANDOM_SEED = -1  # what the seed box holds for "pick one"; the picked seed is shown with the result
SEED_PICK_RANGE = 2**32  # picked seeds stay short enough to read and type back


def aspect_size(aspect: str, area: int, multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """(width, height) with the preset's shape and about `area` pixels, sides multiples of `multiple`:
    choosing "16:9" keeps the resolution the user had and changes only the shape."""
    if aspect not in ASPECT_PRESETS:
        raise ValueError(f"unknown aspect {aspect!r}; choose one of {', '.join(ASPECT_PRESETS)}")
    if area < 1:
        raise ValueError(f"area must be a positive number of pixels, got {area}")
    preset_w, preset_h = ASPECT_PRESETS[aspect]
    ratio = preset_w / preset_h
    width = max(multiple, round(math.sqrt(area * ratio) / multiple) * multiple)
    height = max(multiple, round(math.sqrt(area / ratio) / multiple) * multiple)
    return width, height


def form_params(prompt: str, negative_prompt: str | None, width: float | None, height: float | None,
                steps: float, cfg: float, seed: float | None, n: float, previews: float,
                strength: float | None = None, text_focus: bool = False) -> ImageEditRequest:
    """The form as the API's request body. Gradio hands numbers over as floats and empty boxes as None or
    "": width/height 0 or empty mean "auto" (the model's default, or the input image's size for edits), an
    empty negative prompt means the model's default, seed -1 or empty picks a seed (kept in the result's
    caption so it can be typed back). Bad values raise a ServeError naming the field."""
    width, height = _whole(width, "width"), _whole(height, "height")
    if (width > 0) != (height > 0):
        raise invalid(f"give both width and height, or 0 for both (auto); got {width}x{height}", "size")
    seed = RANDOM_SEED if seed is None or seed == "" else _whole(seed, "seed")
    fields = {"prompt": (prompt or "").strip(), "negative_prompt": negative_prompt or None,
              "size": f"{width}x{height}" if width > 0 else "auto", "num_inference_steps": _whole(steps, "steps"),
              "true_cfg_scale": float(cfg), "n": _whole(n, "batch"), "partial_images": _whole(previews, "previews"),
              "seed": secrets.randbelow(SEED_PICK_RANGE) if seed == RANDOM_SEED else seed,
              "strength": strength, "text_focus": bool(text_focus)}
    try:
        return ImageEditRequest(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise invalid(f"{param}: {first['msg']}" if param else first["msg"], param, first["type"]) from err


def editor_inputs(background: Image.Image | None, layers: list[Image.Image], extra_paths: list[str],
                  max_pixels: int) -> tuple[list[Image.Image], Image.Image | None]:
    """The edit tab's inputs as (condition images, mask). The editor's picture comes first, the extra
    uploads after it (the output size follows the last one); strokes painted on the editor's layers are the
    inpainting mask (white = repaint), None when nothing was painted. A mask inpaints one image only."""
    if background is None and not extra_paths:
        raise invalid("upload an image to edit", "image", "missing")
    images = [] if background is None else [_checked_rgb(background, "image", max_pixels)]
    for path in extra_paths:
        with open(path, "rb") as f:  # a file Gradio saved for this upload, not a path from the user
            images.append(decode_rgb(f.read(), "image[]", max_pixels))
    mask = painted_mask(layers, images[0].size) if background is not None else None
    if mask is not None and len(images) > 1:
        raise invalid(f"a painted mask inpaints the one image in the editor, but {len(images)} images were given: "
                      "remove the extra images or clear the strokes", "mask")
    return images, mask


def painted_mask(layers: list[Image.Image], size: tuple[int, int]) -> Image.Image | None:
    """White where any layer has a stroke (alpha > 0), black elsewhere, at `size`; None without strokes."""
    mask = Image.new("L", size, 0)
    for layer in layers:
        if "A" not in layer.getbands():
            continue
        alpha = layer.getchannel("A")
        if alpha.size != size:
            alpha = alpha.resize(size, Image.Resampling.NEAREST)
        mask.paste(255, mask=alpha.point(lambda a: 255 if a > 0 else 0))
    return mask.convert("RGB") if mask.getbbox() else None


def caption(request: GenerationRequest, image: Image.Image) -> str:
    """What the history shows under an image: enough to make it again."""
    cfg = f"CFG {request.true_cfg_scale:g}" if request.uses_cfg() else "no CFG"
    parts = [f"{image.width}x{image.height}", f"{request.num_steps} steps", cfg, f"seed {request.seed}",
             request.task.value]
    if request.negative_prompt:
        parts.append(f"negative: {request.negative_prompt}")
    return f"{request.prompt} | " + ", ".join(parts)


async def run_job(serving: Serving, params: ImageEditRequest, images: list[Image.Image] = (),
                  mask: Image.Image | None = None, kind: str = "generation"
                  ) -> AsyncIterator[tuple[list[GenerationRequest], Partial | Done]]:
    """Queue one form submission and yield (its requests, each Partial preview, then the Done). Errors
    arrive as ServeError (its message is what the user sees); leaving early (the browser tab closed,
    Gradio cancelled the event) frees the queue slot or stops the batch, as for an HTTP client."""
    requests = to_requests(params, serving.worker.defaults, serving.config, images=list(images), mask=mask)
    try:
        for request in requests:
            serving.worker.admit(request)
    except ValueError as err:
        raise invalid(str(err)) from err
    job = Job(requests, asyncio.get_running_loop(),
              partial_images=min(params.partial_images or 0, serving.config.max_partial_images))
    try:
        serving.scheduler.submit(job)
    except QueueFull as err:
        raise ServeError(429, str(err), code="queue_full") from err
    done = False
    try:
        while True:
            event = await job.events.get()
            if isinstance(event, Failed):
                done = True
                raise client_error(event.error)
            if isinstance(event, Done):
                done = True
                serving.metrics.request_latency.labels(kind).observe(time.monotonic() - job.submitted)
            yield requests, event
            if done:
                return
    finally:
        if not done:
            serving.scheduler.cancel(job)


def _whole(value, name: str) -> int:
    """A whole number from a form box (Gradio sends floats), or a ServeError naming the box."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)  # exact, even for seeds past float precision
    try:
        number = float(value if value not in (None, "") else 0)
    except (TypeError, ValueError):
        raise invalid(f"{name} must be a whole number, got {value!r}", name) from None
    if not number.is_integer():
        raise invalid(f"{name} must be a whole number, got {value!r}", name)
    return int(number)


def _checked_rgb(image: Image.Image, param: str, max_pixels: int) -> Image.Image:
    if image.width * image.height > max_pixels:
        raise invalid(f"{param} has {image.width}x{image.height} = {image.width * image.height:,} pixels, more than "
                      f"the limit of {max_pixels:,}", param, code="image_too_large")
    try:
        return to_rgb(image)
    except ValueError as err:
        raise invalid(f"{param}: {err}", param, code="invalid_image") from err
