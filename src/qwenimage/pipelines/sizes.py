"""Output sizes: explicit width/height, the official aspect presets, edit-size rules, and validation."""

from __future__ import annotations

from dataclasses import dataclass

from qwenimage.images import EDIT_AREA  # the official edit models' condition area

# The official recommended sizes (Qwen-Image model card), by aspect ratio.
ASPECT_PRESETS: dict[str, tuple[int, int]] = {
    "1:1": (1328, 1328),
    "16:9": (1664, 928),
    "9:16": (928, 1664),
    "4:3": (1472, 1104),
    "3:4": (1104, 1472),
    "3:2": (1584, 1056),
    "2:3": (1056, 1584),
}
DEFAULT_SIZE = (1024, 1024)
SIZE_MULTIPLE = 16  # VAE factor 8 x 2x2 packing




@dataclass(frozen=True)
class SizeLimits:
    """Allowed output sides in pixels. Official models: 384..3072; small models may declare their own, and the
    area their edit condition images are resized to (VL and VAE copies; an edit's default output size):
    qwenimage-mini trains edits at 128x128 and declares 128 * 128."""

    min_side: int = 384
    max_side: int = 3072
    edit_area: int = EDIT_AREA

    def __post_init__(self):
        if self.edit_area < 32 * 32:
            raise ValueError(f"edit_area {self.edit_area} is out of range: it must be at least {32 * 32} pixels "
                             "(32x32, the smallest condition image)")

    def check(self, width: int, height: int) -> None:
        for name, value in (("width", width), ("height", height)):
            if not self.min_side <= value <= self.max_side:
                raise ValueError(f"{name} {value} is out of range: sides must be within "
                                 f"{self.min_side}..{self.max_side} pixels")
            if value % SIZE_MULTIPLE:
                raise ValueError(f"{name} {value} is not a multiple of {SIZE_MULTIPLE}")


def resolve_size(width: int | None, height: int | None, aspect: str | None,
                 default: tuple[int, int] = DEFAULT_SIZE) -> tuple[int, int]:
    """(width, height) from explicit values or an aspect preset; explicit values win, both are not allowed."""
    if aspect is not None:
        if width is not None or height is not None:
            raise ValueError("give either --aspect or --width/--height, not both")
        if aspect not in ASPECT_PRESETS:
            raise ValueError(f"unknown aspect {aspect!r}; choose one of {', '.join(ASPECT_PRESETS)}")
        return ASPECT_PRESETS[aspect]
    if width is None and height is None:
        return default
    if width is None or height is None:
        ratio = default[0] / default[1]
        width = width or round(height * ratio / SIZE_MULTIPLE) * SIZE_MULTIPLE
        height = height or round(width / ratio / SIZE_MULTIPLE) * SIZE_MULTIPLE
    return width, height


def floor_to_multiple(width: int, height: int, multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    return width // multiple * multiple, height // multiple * multiple
