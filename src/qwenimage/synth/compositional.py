"""Strategy 2, compositional rendering: text on a medium (paper, sticky note, sign, board, screen), drawn
flat, lit, warped in perspective with a drop shadow into a scene (photo or procedural surface).
Boxes are the warped positions: axis-aligned bounds in `lines`/`words`, the quads in `extra`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from qwenimage.synth.base import StrategyBase
from qwenimage.synth.captions import choose, scene_caption
from qwenimage.synth.colors import BY_NAME, pick_contrasting, to_hex
from qwenimage.synth.layout import estimated_capacity
from qwenimage.synth.media import MEDIA, MediumKind, Surface
from qwenimage.synth.sample import Discard, SynthSample, TextBox
from qwenimage.synth.scenes import photo_entries, random_scene
from qwenimage.synth.warp import composite, homography, light, random_quad, warp_box

_CEILING = {"word": 0.6, "line": 0.4, "paragraph": 0.15}  # largest size, share of the text box's short side
_TILT = {"word": (6.0, 0.05), "line": (4.0, 0.04), "paragraph": (2.0, 0.025)}  # max degrees, max corner shift
_FLOOR_BOOST = 1.2  # the warp shrinks text a little: start from a larger floor


def medium_size(rng: np.random.Generator, kind: MediumKind, width: int, height: int) -> tuple[int, int]:
    aspect = rng.uniform(*kind.aspect)
    share = rng.uniform(*kind.size)
    mw = min(width * share, height * share * aspect)
    return int(mw), int(mw / aspect)


class CompositionalStrategy(StrategyBase):
    name = "compositional"

    @property
    def photos(self):
        return photo_entries(self.config.background_dir, self.config.builtin_photos)

    def _write(self, rng: np.random.Generator, surface: Surface, language: str, style: str, length: str):
        box = surface.text_box
        box_w, box_h = box[2] - box[0], box[3] - box[1]
        floor = max(round(self.config.min_font_px * _FLOOR_BOOST),
                    round(self.config.font_floor(*surface.rgba.shape[1::-1]) * _FLOOR_BOOST))
        spacing = float(rng.uniform(1.25, 1.5))
        text = self.corpus.sample(rng, language, length, estimated_capacity(box_w, box_h, floor, spacing, language))
        face = self.pick_face(rng, text, style)
        text = self.fonts.as_drawn(face, text)  # capitals where the face forces them
        picked = pick_contrasting(rng, surface.tones, [BY_NAME[name] for name in surface.inks])
        if picked is None:
            raise Discard("low_contrast", surface.name_en)
        ceiling = max(floor, int(min(box_w, box_h) * _CEILING[length] * rng.uniform(0.7, 1.0)))
        block = self.fit(face, text, box, (floor, ceiling), spacing)
        image = Image.fromarray(surface.rgba, "RGBA")
        align = "center" if len(block.lines) <= 2 or rng.random() < 0.4 else "left"
        drawn = self.draw(ImageDraw.Draw(image), block, box, (*picked[1], 255), align, "middle")
        return text, face, picked, np.asarray(image), drawn

    def render(self, rng: np.random.Generator, width: int, height: int, language: str) -> SynthSample:
        scene = random_scene(rng, width, height, self.photos)
        kind = MEDIA[int(rng.integers(len(MEDIA)))]
        length = self.length_class(rng)
        length = length if length in kind.lengths else kind.lengths[-1]
        style = choose(rng, kind.styles)
        style = "handwriting" if style == "any" and rng.random() < self.config.handwriting_share else style
        mw, mh = medium_size(rng, kind, width, height)
        surface = kind.make(rng, mw, mh)
        text, face, (color, rgb), rgba, drawn = self._write(rng, surface, language, style, length)
        quad = random_quad(rng, (mw, mh), (width, height), *_TILT[length])
        matrix = homography((mw, mh), quad)
        image = composite(rng, scene.image, light(rng, rgba), matrix)
        lines, line_quads = self._warp_boxes(drawn.lines, matrix, width, height)
        words, word_quads = self._warp_boxes(drawn.words, matrix, width, height)
        caption_language = choose(rng, self.config.caption_languages)
        caption = scene_caption(rng, caption_language, text, (surface.name_en, surface.name_zh),
                                (scene.where_en, scene.where_zh), color, face)
        return SynthSample(
            image=Image.fromarray(image), text="\n".join(drawn.block.lines), caption=caption, strategy=self.name,
            language=language, lines=lines, words=words, fonts=[face.name],
            colors={"medium": to_hex(surface.tones[0]), "text": to_hex(rgb)},
            extra={"length": length, "medium": kind.key, "medium_name": surface.name_en, "scene": scene.source,
                   "where": scene.where_en, "font_size": drawn.block.size, "caption_language": caption_language,
                   "capitals_forced": self.fonts.forces_capitals(face),
                   "medium_quad": [[round(float(x), 1), round(float(y), 1)] for x, y in quad],
                   "line_quads": line_quads, "word_quads": word_quads},
            texts=[text])

    @staticmethod
    def _warp_boxes(boxes: list[TextBox], matrix, width: int, height: int):
        warped, quads = [], []
        for item in boxes:
            bounds, quad = warp_box(item.box, matrix, (width, height))
            warped.append(TextBox(item.text, bounds))
            quads.append(quad)
        return warped, quads
