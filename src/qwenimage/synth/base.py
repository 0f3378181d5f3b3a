"""What every strategy shares: the config, lazily loaded resources (loaded once per process, shared
between strategies through cached loaders), pickling that carries only the config, and the steps common
to all three strategies: choosing a length class and a font style, picking a font, drawing a fitted block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

from qwenimage.synth.config import LENGTH_CLASSES, SynthConfig
from qwenimage.synth.corpus import Corpus
from qwenimage.synth.draw import draw_block
from qwenimage.synth.fonts import FontFace, FontLibrary
from qwenimage.synth.layout import Block, fit_block, place_block, readable_ceiling
from qwenimage.synth.sample import Discard, TextBox

_PLAIN_STYLES = ("sans", "serif", "bold")


@dataclass
class DrawnText:
    block: Block
    lines: list[TextBox]
    words: list[TextBox]


class StrategyBase:
    name = "base"

    def __init__(self, config: SynthConfig | None = None):
        self.config = config or SynthConfig()
        self._corpus: Corpus | None = None
        self._fonts: FontLibrary | None = None

    def __getstate__(self):
        return {"config": self.config}

    def __setstate__(self, state):
        self.__init__(state["config"])

    @property
    def corpus(self) -> Corpus:
        if self._corpus is None:
            self._corpus = Corpus(self.config)
        return self._corpus

    @property
    def fonts(self) -> FontLibrary:
        if self._fonts is None:
            self._fonts = FontLibrary.discover(self.config.font_dirs, self.config.system_fonts)
        return self._fonts

    def length_class(self, rng: np.random.Generator) -> str:
        weights = np.array([self.config.length_weights.get(name, 0.0) for name in LENGTH_CLASSES])
        return LENGTH_CLASSES[int(rng.choice(len(weights), p=weights / weights.sum()))]

    def font_style(self, rng: np.random.Generator) -> str:
        if rng.random() < self.config.handwriting_share:
            return "handwriting"
        return _PLAIN_STYLES[int(rng.integers(len(_PLAIN_STYLES)))]

    def pick_face(self, rng: np.random.Generator, text: str, style: str) -> FontFace:
        return self.fonts.pick(rng, text, style)

    def fit(self, face: FontFace, text: str, box: tuple[float, float, float, float], sizes: tuple[int, int],
            spacing: float, max_lines: int | None = None) -> Block:
        """Fit or Discard("text_too_long"); sizes above layout.readable_ceiling are not tried."""
        ceiling = min(sizes[1], readable_ceiling(self.fonts, face, text, box[2] - box[0]))
        sizes = (sizes[0], max(sizes[0], ceiling))
        block = fit_block(self.fonts, face, text, box[2] - box[0], box[3] - box[1], sizes, spacing, max_lines)
        if block is None:
            raise Discard("text_too_long", f"{len(text)} characters do not fit {box} at {sizes[0]} px")
        return block

    def draw(self, draw: ImageDraw.ImageDraw, block: Block, box: tuple[float, float, float, float], fill,
             align: str = "left", valign: str = "top") -> DrawnText:
        origins = place_block(block, self.fonts, box, align, valign)
        try:
            lines, words = draw_block(draw, self.fonts.font(block.face, block.size), block, origins, fill)
        except OSError as err:  # FreeType failing on a glyph
            raise Discard("render_error", f"{block.face.name}: {err}") from err
        return DrawnText(block, lines, words)
