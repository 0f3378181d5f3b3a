"""Clean procedural backgrounds for pure rendering: solid colours, soft gradients and paper textures.

Each comes with the words a caption uses for it ("On a <name> background") and the extreme tones a text
colour must contrast with.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from qwenimage.synth.colors import BY_NAME, RGB, NamedColor, is_light

LIGHT_NAMES = ("white", "ivory", "cream", "beige", "light gray", "light yellow", "light green", "light blue",
               "lavender", "light pink", "sky blue", "pink", "yellow")
DARK_NAMES = ("black", "charcoal", "navy blue", "dark green", "dark red", "burgundy", "brown", "purple", "teal")
PAPER_NAMES = ("white", "ivory", "cream", "beige", "light yellow", "light gray")


@dataclass
class Background:
    image: np.ndarray  # [H, W, 3] uint8
    name_en: str  # fits "On a <name_en> background"
    name_zh: str  # fits "在<name_zh>背景上"
    tones: list[RGB]  # darkest and lightest colours present, for the contrast check
    main: NamedColor

    @property
    def hex(self) -> str:
        return self.main.hex

    @property
    def noun_en(self) -> str:
        """Fits "The background is <noun_en>"."""
        return f"a {self.name_en}" if self.name_en.endswith("gradient") else self.name_en


def smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """[H, W] float noise in about [-1, 1], smooth at the scale of width / cells."""
    grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _named(rng: np.random.Generator, names: tuple[str, ...]) -> NamedColor:
    return BY_NAME[names[int(rng.integers(len(names)))]]


def _tones(image: np.ndarray) -> list[RGB]:
    small = image[::8, ::8].reshape(-1, 3).astype(np.float64)
    luma = small @ np.array([0.2126, 0.7152, 0.0722])
    return [tuple(int(v) for v in small[int(np.argmin(luma))]), tuple(int(v) for v in small[int(np.argmax(luma))])]


def solid(rng: np.random.Generator, width: int, height: int, color: NamedColor) -> Background:
    image = np.empty((height, width, 3), np.uint8)
    image[:] = color.rgb
    return Background(image, color.en, color.zh, [color.rgb], color)


def gradient(rng: np.random.Generator, width: int, height: int, start: NamedColor, end: NamedColor) -> Background:
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xs * np.cos(angle) / width + ys * np.sin(angle) / height
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    image = (1 - t)[..., None] * np.asarray(start.rgb, np.float32) + t[..., None] * np.asarray(end.rgb, np.float32)
    image = image.astype(np.uint8)
    return Background(image, f"{start.en}-to-{end.en} gradient", f"{start.zh}到{end.zh}渐变", [start.rgb, end.rgb],
                      start)


def paper(rng: np.random.Generator, width: int, height: int, color: NamedColor) -> Background:
    base = np.asarray(color.rgb, np.float32)
    mottling = smooth_noise(rng, width, height, 6) * 5 + smooth_noise(rng, width, height, 24) * 3
    grain = rng.integers(-5, 6, size=(height, width), dtype=np.int16).astype(np.float32)
    image = np.clip(base + (mottling + grain)[..., None], 0, 255).astype(np.uint8)
    return Background(image, f"textured {color.en} paper", f"{color.zh}纸张纹理", _tones(image), color)


def random_background(rng: np.random.Generator, width: int, height: int) -> Background:
    """Light backgrounds three times in four; solid, gradient or paper."""
    kind = rng.choice(["solid", "gradient", "paper"], p=[0.45, 0.25, 0.3])
    if kind == "paper":
        return paper(rng, width, height, _named(rng, PAPER_NAMES))
    names = LIGHT_NAMES if rng.random() < 0.75 else DARK_NAMES
    first = _named(rng, names)
    if kind == "solid":
        return solid(rng, width, height, first)
    second = _named(rng, tuple(n for n in names if n != first.en and is_light(BY_NAME[n].rgb) == is_light(first.rgb)))
    return gradient(rng, width, height, first, second)
