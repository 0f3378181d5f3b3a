"""Decoding a record's bytes into RGB pixels with the project's RGB policy, and the resized working copies.

`decode` applies the EXIF orientation and `qwenimage.images.to_rgb` (CMYK, 16-bit, alpha over white), so
every stage sees 8-bit RGB. Undecodable, truncated or oversized files raise ImageError.
"""

from __future__ import annotations

import base64
import io
import math
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from qwenimage.images import ImageError, to_rgb

EXIF_ORIENTATION = 0x0112
PLAIN_FORMATS = {"JPEG", "PNG", "WEBP"}  # written to the output as they are when 8-bit RGB / grey


class TooManyPixels(ImageError):
    """The header announces more pixels than allowed; nothing was decoded."""


@dataclass
class Decoded:
    rgb: np.ndarray  # [H, W, 3] uint8, display orientation
    width: int  # of the original image in display orientation (rgb may be a reduced JPEG draft)
    height: int
    format: str  # "JPEG", "PNG", ... as Pillow names it
    mode: str  # the file's mode before conversion ("RGB", "CMYK", "I;16", ...)
    orientation: int  # EXIF orientation tag, 1 = upright

    @property
    def plain(self) -> bool:
        """True when the file can be copied to the output as is (upright 8-bit RGB/grey JPEG/PNG/WebP)."""
        return self.format in PLAIN_FORMATS and self.mode in ("RGB", "L") and self.orientation == 1


def decode(data: bytes, max_pixels: int, draft_side: int | None = None, name: str = "image") -> Decoded:
    """Decode `data` (from `name`, the file or tar member errors name); with `draft_side`, a JPEG may be decoded
    at 1/2..1/8 size but not below that side."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise TooManyPixels(f"{width}x{height} has more than {max_pixels} pixels")
            fmt, mode = image.format or "unknown", image.mode
            orientation = int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
            if draft_side and fmt == "JPEG":
                scale = max(1, min(width, height) // draft_side)
                image.draft("RGB", (math.ceil(width / scale), math.ceil(height / scale)))
            image = ImageOps.exif_transpose(image)
            rgb = np.asarray(to_rgb(image))
    except ImageError as err:
        raise type(err)(f"{name}: {err}") from err
    except UnidentifiedImageError as err:  # its message shows the BytesIO object, not the file
        raise ImageError(f"{name}: cannot decode: not an image file Pillow can identify") from err
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise ImageError(f"{name}: cannot decode: {err}") from err
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Decoded(rgb, width, height, fmt, mode, orientation)


def resize_to_area(rgb: np.ndarray, side: int, upscale: bool = True) -> np.ndarray:
    """`rgb` resized (aspect kept) to about side x side pixels of area; INTER_AREA down, cubic up."""
    height, width = rgb.shape[:2]
    scale = side / math.sqrt(width * height)
    if scale > 1 and not upscale or abs(scale - 1) < 1e-3:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def resize_longer_side(rgb: np.ndarray, side: int) -> np.ndarray:
    """`rgb` shrunk so that its longer side is at most `side` (never enlarged)."""
    height, width = rgb.shape[:2]
    scale = side / max(width, height)
    if scale >= 1:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def thumbnail_b64(rgb: np.ndarray, side: int) -> str:
    """A small JPEG of `rgb` (longer side `side`), base64 encoded, for the HTML report."""
    small = resize_longer_side(rgb, side)
    buffer = io.BytesIO()
    Image.fromarray(small).save(buffer, "JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def encode_rgb(rgb: np.ndarray, lossless: bool) -> tuple[bytes, str]:
    """Re-encode converted pixels for the output: (bytes, extension)."""
    buffer = io.BytesIO()
    if lossless:
        Image.fromarray(rgb).save(buffer, "PNG")
        return buffer.getvalue(), "png"
    Image.fromarray(rgb).save(buffer, "JPEG", quality=95)
    return buffer.getvalue(), "jpg"
