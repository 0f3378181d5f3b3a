"""Strategy 3, complex rendering: slides, app screens, posters, menus, cards... from JSON templates.

Placeholders are filled with text of the right kind and length for their box (corpus text or small
generators for prices, names, dates...), while the template keeps the layout, alignment, fonts and colour
roles; a random colour theme paints it. The caption describes the template and quotes every text with its
place. `text` lists all lines in reading order (rows top to bottom, left to right within a row).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from qwenimage.ocr import OcrLine, reading_order
from qwenimage.synth.base import DrawnText, StrategyBase
from qwenimage.synth.captions import choose, template_caption
from qwenimage.synth.colors import MIN_CONTRAST, contrast_ratio
from qwenimage.synth.fonts import FontFace
from qwenimage.synth.layout import estimated_capacity
from qwenimage.synth.sample import Discard, SynthSample, TextBox
from qwenimage.synth.scenes import photo_entries, random_scene
from qwenimage.synth.slots import slot_text
from qwenimage.synth.templates import Shape, Template, TextSlot, load_templates
from qwenimage.synth.themes import Theme, random_theme, readable_on

_SPACING = 1.3
_ATTEMPTS = 4


def _pixels(box, width: int, height: int) -> tuple[float, float, float, float]:
    return (box[0] * width, box[1] * height, box[2] * width, box[3] * height)


class ComplexStrategy(StrategyBase):
    name = "complex"

    def __init__(self, config=None):
        super().__init__(config)
        self._templates: list[Template] | None = None

    @property
    def templates(self) -> list[Template]:
        if self._templates is None:
            self._templates = load_templates(self.config.template_dir)
        return self._templates

    def _draw_shape(self, rng, image: Image.Image, shape: Shape, theme: Theme) -> None:
        width, height = image.size
        box = [round(v) for v in _pixels(shape.box, width, height)]
        if shape.type == "photo":
            photos = photo_entries(self.config.background_dir, self.config.builtin_photos)
            scene = random_scene(rng, box[2] - box[0], box[3] - box[1], photos, photo_share=0.7)
            image.paste(Image.fromarray(scene.image), (box[0], box[1]))
            return
        draw, short = ImageDraw.Draw(image), min(width, height)
        fill = theme.rgb(shape.fill)
        outline = theme.rgb(shape.outline) if shape.outline else None
        line_width = max(1, round(shape.width * short))
        if shape.type == "ellipse":
            draw.ellipse(box, fill=fill, outline=outline, width=line_width)
        else:
            draw.rounded_rectangle(box, radius=round(shape.radius * short), fill=fill, outline=outline,
                                   width=line_width if outline else 0)

    def _face(self, rng, faces: dict[str, FontFace], style: str, text: str) -> FontFace:
        """One face per style within a sample (a consistent look), unless it lacks a glyph of `text`."""
        face = faces.get(style)
        if face is None or self.fonts.missing(face, text):
            face = faces[style] = self.pick_face(rng, text, style)
        return face

    def _fill_slot(self, rng, image: Image.Image, slot: TextSlot, theme: Theme, language: str, faces, style: str):
        width, height = image.size
        box = _pixels(slot.box, width, height)
        floor = self.config.font_floor(width, height)
        short = min(width, height)
        sizes = (max(floor, round(slot.size[0] * short)), max(floor, round(slot.size[1] * short)))
        for attempt in range(_ATTEMPTS):
            target = rng.uniform(*sizes) * (1.25 ** attempt)
            capacity = estimated_capacity(box[2] - box[0], box[3] - box[1], target, _SPACING, language,
                                          slot.max_lines)
            text = slot_text(rng, self.corpus, slot.kind, language, capacity)
            face = self._face(rng, faces, style, text)
            text = self.fonts.as_drawn(face, text)  # capitals where the face forces them
            try:
                block = self.fit(face, text, box, sizes, _SPACING, slot.max_lines)
                break
            except Discard:
                continue
        else:
            raise Discard("text_too_long", f"slot {slot.slot!r} of {slot.kind} ({sizes} px)")
        fill, color = theme.colors[slot.on], theme.colors[slot.color]
        if contrast_ratio(color.rgb, fill.rgb) < MIN_CONTRAST:
            color = readable_on(fill)
        return text, self.draw(ImageDraw.Draw(image), block, box, color.rgb, slot.align, slot.valign), color

    def render(self, rng: np.random.Generator, width: int, height: int, language: str) -> SynthSample:
        template = self.templates[int(rng.integers(len(self.templates)))]
        theme = random_theme(rng)
        plain = self.font_style(rng)
        plain = "sans" if plain == "handwriting" else plain
        image = Image.new("RGB", (width, height), theme.rgb("background"))
        faces: dict[str, FontFace] = {}
        filled: list[tuple[TextSlot, str, DrawnText, object]] = []
        for element in template.elements:
            if isinstance(element, Shape):
                self._draw_shape(rng, image, element, theme)
                continue
            style = plain if element.style == "any" else element.style
            filled.append((element, *self._fill_slot(rng, image, element, theme, language, faces, style)))
        return self._sample(rng, image, template, theme, language, filled)

    def _sample(self, rng, image, template: Template, theme: Theme, language: str, filled) -> SynthSample:
        lines = [line for _, _, drawn, _ in filled for line in drawn.lines]
        ordered = reading_order([OcrLine(line.text, _corners(line), 1.0) for line in lines])
        caption_language = choose(rng, self.config.caption_languages)
        quoted = [(slot, text) for slot, text, _, _ in filled]
        caption = template_caption(rng, caption_language, template, theme, quoted)
        fonts = list(dict.fromkeys(drawn.block.face.name for _, _, drawn, _ in filled))
        slots = [{"slot": slot.slot, "kind": slot.kind, "text": text, "font": drawn.block.face.name,
                  "font_size": drawn.block.size, "color": color.hex}
                 for slot, text, drawn, color in filled]
        return SynthSample(
            image=image, text="\n".join(line.text for line in ordered), caption=caption, strategy=self.name,
            language=language, lines=lines, words=[w for _, _, drawn, _ in filled for w in drawn.words],
            fonts=fonts, colors={role: color.hex for role, color in theme.colors.items()},
            extra={"template": template.name, "caption_language": caption_language, "slots": slots,
                   "capitals_forced": any(self.fonts.forces_capitals(drawn.block.face) for _, _, drawn, _ in filled)},
            texts=[text for _, text, _, _ in filled])


def _corners(line: TextBox) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = line.box
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
