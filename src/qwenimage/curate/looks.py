"""Photo or graphic: what an image is, so that each stage judges it as what it is.

A graphic (poster, slide, app screen, synthetic render) is made of flat areas of chosen colours: low
histogram entropy, white or black backgrounds and sharp edges are its design, while in a photo they mean a
blank, clipped or defective picture. The look is decided once, in S2 (or S5 for synthetic records, which
skip S2), and kept in `labels["look"]`:

1. synthetic records, and records whose input metadata names a graphic category (`s2.graphic.categories`),
   are graphics;
2. otherwise an image is a graphic when it is both flat and crisp: the share of pixels in flat 3x3 patches
   (`flat_fraction`) reaches min_flat_fraction (sensor noise and texture keep photos far below it, rendered
   flat colours far above) and its clarity reaches s2.min_clarity (a blank, blurred or nearly black photo is
   flat too, but has no crisp edges: it stays a photo and is judged as one).
"""

from __future__ import annotations

import cv2
import numpy as np

from qwenimage.curate import taxonomy
from qwenimage.curate.config import GraphicConfig
from qwenimage.curate.record import SYNTHETIC, Record

PHOTO, GRAPHIC = "photo", "graphic"
FLAT_TOLERANCE = 1  # grey levels: JPEG keeps flat colours within about one level
_PATCH = np.ones((3, 3), np.uint8)


def flat_fraction(rgb: np.ndarray) -> float:
    """Share of pixels whose 3x3 neighbourhood varies by at most FLAT_TOLERANCE in every channel.
    rgb: [H, W, 3] uint8, measured as given (callers pass the S2 working copy)."""
    spread = np.zeros(rgb.shape[:2], np.uint8)
    for channel in range(3):
        plane = np.ascontiguousarray(rgb[..., channel])
        spread = np.maximum(spread, cv2.dilate(plane, _PATCH) - cv2.erode(plane, _PATCH))  # [H, W]
    return float((spread <= FLAT_TOLERANCE).mean())


def declared_look(record: Record, config: GraphicConfig) -> str | None:
    """GRAPHIC when the record says what it is (synthetic, or a graphic category in its metadata), else None."""
    if record.kind == SYNTHETIC:
        return GRAPHIC
    category = taxonomy.canonical_category(str(record.metadata.get("category", "")))
    return GRAPHIC if category and category in config.categories else None


def measured_look(flat: float, clarity: float, config: GraphicConfig, min_clarity: float) -> str:
    return GRAPHIC if flat >= config.min_flat_fraction and clarity >= min_clarity else PHOTO
