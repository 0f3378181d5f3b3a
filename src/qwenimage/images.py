"""User images: reading, the RGB policy, masks, tensors, and the area-preserving resize of edit conditions.

RGB policy (`to_rgb`), one rule per kind of mode:
- RGB is returned as is.
- Modes with alpha (RGBA, LA, PA, RGBa, La, P with a transparent colour) are composited over white, as
  transformers' Qwen2-VL image processor does.
- 16/32-bit integer greyscale (I;16*, I) is read as 16-bit (value / 257); an "I" image whose values all fit
  in 0..255 is read as 8-bit. Float greyscale (F) is read as 0..1 when its maximum is <= 1, else as 0..255.
- Everything else (L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX) goes through Pillow's own conversion.
A file or image that cannot be decoded raises ImageError, never a Pillow exception; so does a file that
declares more than MAX_PIXELS pixels (a "decompression bomb": a few bytes that would decode to gigabytes).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

EDIT_AREA = 1024 * 1024  # Edit: condition image (VL and VAE copies); Edit-Plus: VAE copies
EDIT_PLUS_VL_AREA = 384 * 384  # Edit-Plus: the copy each image gets for the VL encoder
SIZE_MULTIPLE = 32
MAX_ASPECT_RATIO = 200  # the Qwen2-VL image processor refuses longer/shorter ratios
MAX_PIXELS = 178_956_970  # largest image load_image opens (Pillow's own bomb limit, about 13377 x 13377)


class ImageError(ValueError):
    """An image that cannot be read or converted to RGB, or whose shape a model refuses."""


_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_INT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


def load_image(source: str | Path | BinaryIO | Image.Image) -> Image.Image:
    """Open an image file (or binary file object), apply its EXIF orientation and convert it to RGB (see the
    module policy). Raises ImageError naming the file for anything unreadable or larger than MAX_PIXELS."""
    if isinstance(source, Image.Image):
        return to_rgb(source)
    name = _describe(source)
    try:
        with Image.open(source) as image:
            _check_pixels(image.width, image.height)
            image = ImageOps.exif_transpose(image)
            return to_rgb(image)
    except ImageError as err:
        raise ImageError(f"{name}: {err}") from err
    except Image.DecompressionBombError as err:  # Pillow refuses before we see the size; its message holds it
        raise ImageError(f"{name}: {_too_many_pixels(_pixels_in(str(err)))}") from err
    except (OSError, UnidentifiedImageError, SyntaxError) as err:  # missing, truncated or not an image
        raise ImageError(f"cannot read image {name}: {err}") from err


def _describe(source: str | Path | BinaryIO) -> str:
    return str(source) if isinstance(source, (str, Path)) else getattr(source, "name", None) or "image data"


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(_too_many_pixels(width * height, f" ({width}x{height})"))


def _pixels_in(message: str) -> int | None:
    found = re.search(r"\((\d+) pixels\)", message)
    return int(found.group(1)) if found else None


def _too_many_pixels(pixels: int | None, size: str = "") -> str:
    count = f"{pixels:,} pixels{size}" if pixels is not None else "too many pixels"
    return f"image declares {count}, more than the limit of {MAX_PIXELS:,} pixels (a decompression bomb?)"


def _greyscale_to_8bit(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)  # [H, W]
    peak = float(values.max(initial=0.0))
    if image.mode == "F":
        scale = 255.0 if peak <= 1.0 else 1.0
    else:
        scale = 1.0 if image.mode == "I" and peak <= 255 else 1.0 / 257.0
    values = np.clip(np.nan_to_num(values * scale), 0.0, 255.0)
    return Image.fromarray(np.round(values).astype(np.uint8), mode="L")


def _over_white(image: Image.Image) -> Image.Image:
    if image.mode == "La":  # premultiplied greyscale: Pillow has no converter, read it as straight alpha
        image = Image.merge("LA", image.split())
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` in RGB following the module's policy (the same object if already RGB).

    Raises ImageError if it cannot be decoded or has no pixels.
    """
    if not isinstance(image, Image.Image):
        raise ImageError(f"expected a PIL image, got {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise ImageError(f"image has no pixels ({image.width}x{image.height})")
    try:
        image.load()
        if image.mode == "RGB":
            return image
        if image.mode in _INT_MODES or image.mode == "F":
            return _greyscale_to_8bit(image).convert("RGB")
        if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
            return _over_white(image)
        return image.convert("RGB")
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"cannot convert {image.mode} image ({image.width}x{image.height}) to RGB: {err}") from err


def condition_size(width: int, height: int, area: int = EDIT_AREA) -> tuple[int, int]:
    """(width, height) with the aspect ratio of `width x height`, about `area` pixels, multiples of 32.

    Matches the reference's rounding (Python's round on width/32 and height/32); each side is at least 32.
    """
    if width <= 0 or height <= 0:
        raise ImageError(f"image has no pixels ({width}x{height})")
    ratio = width / height
    if max(ratio, 1 / ratio) > MAX_ASPECT_RATIO:
        raise ImageError(f"image aspect ratio {width}x{height} exceeds 1:{MAX_ASPECT_RATIO}, "
                         "which the vision encoder accepts")
    new_width = math.sqrt(area * ratio)
    new_height = new_width / ratio
    return (max(SIZE_MULTIPLE, round(new_width / SIZE_MULTIPLE) * SIZE_MULTIPLE),
            max(SIZE_MULTIPLE, round(new_height / SIZE_MULTIPLE) * SIZE_MULTIPLE))


def resize_to_area(image: Image.Image, area: int = EDIT_AREA) -> Image.Image:
    """The RGB image resized (Lanczos) to `condition_size(w, h, area)`: the edit pipelines' condition image."""
    image = to_rgb(image)
    size = condition_size(image.width, image.height, area)
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def load_mask(source: str | Path | Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """A repaint mask [1, H, W] in {0, 1} (white = repaint), which must match the image size (w, h)."""
    mask = load_image(source)
    if mask.size != size:
        raise ImageError(f"mask size {mask.width}x{mask.height} does not match the image size {size[0]}x{size[1]}")
    grey = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0  # [H, W]
    return torch.from_numpy((grey >= 0.5).astype(np.float32))[None]


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> [3, H, W] float in [-1, 1]."""
    array = np.asarray(to_rgb(image), dtype=np.float32) / 127.5 - 1.0  # [H, W, 3]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def tensor_to_pil(pixels: torch.Tensor) -> Image.Image:
    """[3, H, W] in [-1, 1] -> RGB image."""
    array = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # [3, H, W]
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy())
