"""Strategy 1, pure rendering: corpus text on a clean background (solid, gradient or paper), at the
largest size that fits the canvas with margins, in a colour whose contrast ratio is at least 4.5.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from qwenimage.synth.backgrounds import random_background
from qwenimage.synth.base import StrategyBase
from qwenimage.synth.captions import choose, pure_caption
from qwenimage.synth.colors import min_contrast, pick_contrasting, to_hex
from qwenimage.synth.sample import Discard, SynthSample

_CEILING = {"word": 0.3, "line": 0.16, "paragraph": 0.1}  # largest size, as a share of the short side


class PureStrategy(StrategyBase):
    name = "pure"

    def render(self, rng: np.random.Generator, width: int, height: int, language: str) -> SynthSample:
        length = self.length_class(rng)
        text = self.corpus.sample(rng, language, length)
        face = self.pick_face(rng, text, self.font_style(rng))
        text = self.fonts.as_drawn(face, text)  # capitals where the face forces them
        background = random_background(rng, width, height)
        picked = pick_contrasting(rng, background.tones)
        if picked is None:
            raise Discard("low_contrast", background.name_en)
        color, rgb = picked
        short = min(width, height)
        margin = rng.uniform(0.05, 0.12) * short
        box = (margin, margin, width - margin, height - margin)
        floor = self.config.font_floor(width, height)
        ceiling = max(floor, int(short * _CEILING[length] * rng.uniform(0.6, 1.0)))
        block = self.fit(face, text, box, (floor, ceiling), spacing=float(rng.uniform(1.25, 1.6)))
        align = "center" if len(block.lines) == 1 or rng.random() < 0.3 else "left"
        valign = choose(rng, ("top", "middle", "middle"))
        image = Image.fromarray(background.image)
        drawn = self.draw(ImageDraw.Draw(image), block, box, rgb, align, valign)
        caption_language = choose(rng, self.config.caption_languages)
        caption = pure_caption(rng, caption_language, text, background, color, face, align)
        return SynthSample(
            image=image, text="\n".join(block.lines), caption=caption, strategy=self.name, language=language,
            lines=drawn.lines, words=drawn.words, fonts=[face.name],
            colors={"background": background.hex, "text": to_hex(rgb)},
            extra={"length": length, "background": background.name_en, "font_size": block.size,
                   "align": align, "caption_language": caption_language,
                   "contrast": round(min_contrast(rgb, background.tones), 2),
                   "capitals_forced": self.fonts.forces_capitals(face)},
            texts=[text])
