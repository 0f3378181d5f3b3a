"""Colour themes for complex templates: a light or dark base with a primary and an accent colour.

Roles: background, surface (cards, panels), primary, accent, muted (dividers, secondary panels), text,
on_primary, on_accent. Text roles pick black or white (or the theme's text colour) for contrast; at draw
time a slot's colour is still checked against the fill under it and swapped for black or white below 4.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qwenimage.synth.colors import BY_NAME, MIN_CONTRAST, RGB, NamedColor, contrast_ratio

LIGHT_BASES = ("white", "ivory", "cream", "light gray", "light blue", "light pink", "lavender", "light yellow")
DARK_BASES = ("black", "charcoal", "navy blue", "dark green", "burgundy")
PRIMARIES = ("blue", "navy blue", "red", "dark red", "teal", "purple", "green", "dark green", "orange", "rose red",
             "burgundy", "brown", "charcoal", "gold", "sky blue")
BLACK, WHITE = BY_NAME["black"], BY_NAME["white"]


@dataclass
class Theme:
    colors: dict[str, NamedColor]  # role -> colour

    def rgb(self, role: str) -> RGB:
        return self.colors[role].rgb

    def names(self, language: str) -> dict[str, str]:
        return {role: (color.en if language == "en" else color.zh) for role, color in self.colors.items()}


def readable_on(fill: NamedColor, preferred: NamedColor | None = None) -> NamedColor:
    """`preferred` when it contrasts enough with `fill`, else black or white, whichever contrasts more."""
    if preferred is not None and contrast_ratio(preferred.rgb, fill.rgb) >= MIN_CONTRAST:
        return preferred
    return max((BLACK, WHITE), key=lambda c: contrast_ratio(c.rgb, fill.rgb))


def _mix(a: NamedColor, b: NamedColor, share: float) -> NamedColor:
    rgb = tuple(int(round((1 - share) * x + share * y)) for x, y in zip(a.rgb, b.rgb))
    return NamedColor(a.en, a.zh, rgb)


def random_theme(rng: np.random.Generator) -> Theme:
    dark = rng.random() < 0.25
    bases = DARK_BASES if dark else LIGHT_BASES
    background = BY_NAME[bases[int(rng.integers(len(bases)))]]
    options = [name for name in PRIMARIES if name != background.en]
    primary = BY_NAME[options[int(rng.integers(len(options)))]]
    accents = [name for name in options if name != primary.en]
    accent = BY_NAME[accents[int(rng.integers(len(accents)))]]
    surface = _mix(background, WHITE if not dark else BY_NAME["gray"], 0.5 if not dark else 0.15)
    muted = _mix(background, BY_NAME["gray"], 0.25)
    text = readable_on(background, BY_NAME["charcoal"] if not dark else WHITE)
    return Theme({
        "background": background, "surface": surface, "primary": primary, "accent": accent, "muted": muted,
        "text": text, "on_primary": readable_on(primary), "on_accent": readable_on(accent),
    })
