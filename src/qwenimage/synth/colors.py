"""Named colours (English and Chinese names for captions) and the WCAG contrast ratio.

A text colour is only used over a background when its contrast ratio with every representative colour of
that background (its darkest and lightest tones) is at least MIN_CONTRAST (WCAG AA for normal text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

MIN_CONTRAST = 4.5
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class NamedColor:
    en: str
    zh: str
    rgb: RGB

    @property
    def hex(self) -> str:
        return to_hex(self.rgb)


PALETTE = (
    NamedColor("black", "黑色", (20, 20, 20)),
    NamedColor("charcoal", "炭灰色", (50, 52, 58)),
    NamedColor("dark gray", "深灰色", (80, 80, 80)),
    NamedColor("gray", "灰色", (128, 128, 128)),
    NamedColor("light gray", "浅灰色", (212, 212, 212)),
    NamedColor("white", "白色", (250, 250, 250)),
    NamedColor("ivory", "象牙白", (255, 253, 240)),
    NamedColor("cream", "奶油色", (252, 246, 225)),
    NamedColor("beige", "米色", (238, 228, 200)),
    NamedColor("red", "红色", (205, 30, 35)),
    NamedColor("dark red", "深红色", (135, 10, 15)),
    NamedColor("burgundy", "酒红色", (110, 20, 45)),
    NamedColor("orange", "橙色", (240, 130, 25)),
    NamedColor("yellow", "黄色", (250, 215, 40)),
    NamedColor("gold", "金色", (212, 170, 50)),
    NamedColor("light yellow", "浅黄色", (253, 245, 180)),
    NamedColor("green", "绿色", (35, 140, 60)),
    NamedColor("dark green", "深绿色", (10, 80, 40)),
    NamedColor("light green", "浅绿色", (195, 235, 190)),
    NamedColor("teal", "青色", (0, 120, 125)),
    NamedColor("blue", "蓝色", (30, 90, 205)),
    NamedColor("navy blue", "藏青色", (20, 30, 85)),
    NamedColor("sky blue", "天蓝色", (130, 195, 240)),
    NamedColor("light blue", "浅蓝色", (205, 228, 248)),
    NamedColor("purple", "紫色", (115, 45, 160)),
    NamedColor("lavender", "淡紫色", (225, 215, 245)),
    NamedColor("pink", "粉色", (245, 175, 195)),
    NamedColor("light pink", "浅粉色", (252, 225, 232)),
    NamedColor("rose red", "玫红色", (200, 25, 105)),
    NamedColor("brown", "棕色", (115, 65, 30)),
)
BY_NAME = {color.en: color for color in PALETTE}


def to_hex(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in rgb[:3])


def relative_luminance(rgb: Sequence[float]) -> float:
    channels = np.asarray(rgb[:3], dtype=np.float64) / 255.0
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def contrast_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def min_contrast(color: Sequence[float], backgrounds: Sequence[Sequence[float]]) -> float:
    return min(contrast_ratio(color, bg) for bg in backgrounds)


def is_light(rgb: Sequence[float]) -> bool:
    return relative_luminance(rgb) > 0.35


def jitter(rng: np.random.Generator, rgb: Sequence[int], amount: int = 8) -> RGB:
    values = np.clip(np.asarray(rgb[:3]) + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return tuple(int(v) for v in values)


def pick_contrasting(rng: np.random.Generator, backgrounds: Sequence[Sequence[float]],
                     candidates: Sequence[NamedColor] = PALETTE, min_ratio: float = MIN_CONTRAST,
                     exclude: Sequence[str] = ()) -> tuple[NamedColor, RGB] | None:
    """A named colour (slightly jittered) readable over all `backgrounds`, or None when none is."""
    usable = [c for c in candidates if c.en not in exclude and min_contrast(c.rgb, backgrounds) >= min_ratio]
    if not usable:
        return None
    color = usable[int(rng.integers(len(usable)))]
    shade = jitter(rng, color.rgb)
    return color, shade if min_contrast(shade, backgrounds) >= min_ratio else color.rgb
