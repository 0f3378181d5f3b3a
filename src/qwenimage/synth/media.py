"""The media text is written or printed on, drawn flat: paper, sticky note, wooden sign, chalkboard,
whiteboard, computer screen, shop sign, cardboard sign.

`make(rng, width, height)` returns a Surface: RGBA pixels (alpha = the medium's shape), the box text goes
in, the tones a text colour must contrast with, the ink colours that suit the medium, and its names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from qwenimage.synth.backgrounds import smooth_noise
from qwenimage.synth.colors import BY_NAME, RGB, NamedColor
from qwenimage.synth.scenes import wooden_table

ALL_LENGTHS = ("word", "line", "paragraph")
SHORT = ("word", "line")


@dataclass
class Surface:
    rgba: np.ndarray  # [h, w, 4] uint8
    text_box: tuple[int, int, int, int]
    tones: list[RGB]
    inks: tuple[str, ...]  # palette names
    name_en: str  # "a yellow sticky note"
    name_zh: str  # "一张黄色便利贴"


@dataclass(frozen=True)
class MediumKind:
    key: str
    aspect: tuple[float, float]  # width / height range
    size: tuple[float, float]  # long side as a share of the canvas' fitting side
    lengths: tuple[str, ...]
    styles: tuple[str, ...]  # font styles that suit it
    make: Callable[[np.random.Generator, int, int], Surface]


def _pick(rng: np.random.Generator, names: tuple[str, ...]) -> NamedColor:
    return BY_NAME[names[int(rng.integers(len(names)))]]


def _fill(width: int, height: int, rgb, noise: np.ndarray | None = None) -> np.ndarray:
    rgba = np.empty((height, width, 4), np.float32)
    rgba[..., :3] = rgb
    if noise is not None:
        rgba[..., :3] += noise[..., None]
    rgba[..., 3] = 255
    return np.clip(rgba, 0, 255).astype(np.uint8)


def _padded(width: int, height: int, pad: float) -> tuple[int, int, int, int]:
    px, py = int(width * pad), int(height * pad)
    return (px, py, width - px, height - py)


def _framed_tones(rgba: np.ndarray, share: float, rgb) -> list[RGB]:
    """Draw a frame `share` of the short side thick (in place); return the extreme tones inside it."""
    h, w = rgba.shape[:2]
    border = max(3, int(min(w, h) * share))
    cv2.rectangle(rgba, (0, 0), (w - 1, h - 1), (*rgb, 255), border * 2)
    return _extremes(rgba[border:-border, border:-border])


def paper(rng, width, height) -> Surface:
    color = _pick(rng, ("white", "ivory", "cream"))
    rgba = _fill(width, height, color.rgb, smooth_noise(rng, width, height, 5) * 3)
    return Surface(rgba, _padded(width, height, rng.uniform(0.08, 0.12)), [color.rgb],
                   ("black", "charcoal", "navy blue", "blue", "dark red"),
                   f"a sheet of {color.en} paper", f"一张{color.zh}的纸")


def sticky_note(rng, width, height) -> Surface:
    color = _pick(rng, ("light yellow", "yellow", "light pink", "light green", "light blue"))
    rgba = _fill(width, height, color.rgb, smooth_noise(rng, width, height, 4) * 4)
    band = int(height * 0.12)
    rgba[:band, :, :3] = (rgba[:band, :, :3] * 0.94).astype(np.uint8)
    tones = [color.rgb, tuple(int(c * 0.94) for c in color.rgb)]
    return Surface(rgba, (int(width * 0.1), band + int(height * 0.04), int(width * 0.9), int(height * 0.92)), tones,
                   ("black", "navy blue", "blue", "dark red"), f"a {color.en} sticky note", f"一张{color.zh}便利贴")


def wooden_sign(rng, width, height) -> Surface:
    wood = wooden_table(rng, width, height) * rng.uniform(0.55, 0.7)
    rgba = np.concatenate([wood, np.full((height, width, 1), 255, np.float32)], axis=2).astype(np.uint8)
    tones = _framed_tones(rgba, 0.05, (60, 35, 18))
    return Surface(rgba, _padded(width, height, 0.12), tones, ("white", "cream", "light yellow", "gold"),
                   "a wooden sign", "一块木牌")


def chalkboard(rng, width, height) -> Surface:
    base = (35, 62, 48) if rng.random() < 0.6 else (38, 40, 42)
    rgba = _fill(width, height, base, smooth_noise(rng, width, height, 8) * 6)
    tones = _framed_tones(rgba, 0.045, (110, 72, 40))
    return Surface(rgba, _padded(width, height, 0.1), tones, ("white", "light yellow", "light pink", "light blue"),
                   "a chalkboard", "一块黑板")


def whiteboard(rng, width, height) -> Surface:
    rgba = _fill(width, height, (246, 247, 248), smooth_noise(rng, width, height, 3) * 3)
    tones = _framed_tones(rgba, 0.03, (170, 172, 176))
    return Surface(rgba, _padded(width, height, 0.09), tones,
                   ("black", "blue", "red", "dark green"), "a whiteboard", "一块白板")


def screen(rng, width, height) -> Surface:
    dark = rng.random() < 0.4
    panel = _pick(rng, ("black", "charcoal", "navy blue") if dark else ("white", "light gray", "light blue"))
    rgba = _fill(width, height, panel.rgb)
    _framed_tones(rgba, 0.05, (18, 18, 20))
    inks = ("white", "light green", "light yellow", "sky blue") if dark else ("black", "charcoal", "blue", "navy blue")
    return Surface(rgba, _padded(width, height, 0.1), [panel.rgb], inks, "a computer screen", "一块电脑屏幕")


def shop_sign(rng, width, height) -> Surface:
    panel = _pick(rng, ("red", "dark red", "navy blue", "dark green", "black", "burgundy", "teal"))
    rgba = _fill(width, height, panel.rgb, smooth_noise(rng, width, height, 6) * 3)
    inset = max(3, int(height * 0.08))
    trim = _pick(rng, ("gold", "white", "cream"))
    cv2.rectangle(rgba, (inset, inset), (width - inset, height - inset), (*trim.rgb, 255), max(2, inset // 3))
    return Surface(rgba, _padded(width, height, 0.16), [panel.rgb], ("white", "gold", "light yellow", "cream"),
                   f"a {panel.en} shop sign", f"一块{panel.zh}招牌")


def cardboard(rng, width, height) -> Surface:
    tan = np.array([200, 165, 118]) + rng.integers(-10, 11, 3)
    rgba = _fill(width, height, tan, smooth_noise(rng, width, height, 10) * 6)
    return Surface(rgba, _padded(width, height, 0.1), _extremes(rgba), ("black", "charcoal", "dark red", "navy blue"),
                   "a cardboard sign", "一块硬纸板牌子")


def _extremes(rgba: np.ndarray) -> list[RGB]:
    pixels = rgba[::6, ::6, :3].reshape(-1, 3).astype(np.float64)
    luma = pixels @ np.array([0.2126, 0.7152, 0.0722])
    return [tuple(int(v) for v in pixels[int(np.argmin(luma))]), tuple(int(v) for v in pixels[int(np.argmax(luma))])]


HANDWRITTEN = ("handwriting", "handwriting", "any")
MEDIA = (
    MediumKind("paper", (0.7, 0.8), (0.7, 0.92), ALL_LENGTHS, ("sans", "serif", "handwriting"), paper),
    MediumKind("sticky_note", (0.92, 1.08), (0.5, 0.75), SHORT, HANDWRITTEN, sticky_note),
    MediumKind("wooden_sign", (1.4, 2.4), (0.65, 0.9), SHORT, ("bold", "bold", "handwriting"), wooden_sign),
    MediumKind("chalkboard", (1.2, 1.6), (0.75, 0.95), ALL_LENGTHS, HANDWRITTEN, chalkboard),
    MediumKind("whiteboard", (1.3, 1.7), (0.75, 0.95), ALL_LENGTHS, HANDWRITTEN, whiteboard),
    MediumKind("screen", (1.5, 1.8), (0.75, 0.95), ALL_LENGTHS, ("sans", "sans", "bold"), screen),
    MediumKind("shop_sign", (2.2, 3.6), (0.75, 0.95), SHORT, ("bold",), shop_sign),
    MediumKind("cardboard", (1.2, 1.6), (0.6, 0.85), SHORT, HANDWRITTEN, cardboard),
)
