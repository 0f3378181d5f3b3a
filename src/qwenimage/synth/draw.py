"""Drawing a laid-out block and measuring where its ink went: line and word boxes.

Boxes are the ink bounds Pillow reports for the glyphs (font.getbbox), offset to the pen origin, so they
hug the visible text (accents and descenders included), x1/y1 exclusive.
"""

from __future__ import annotations

from PIL import ImageDraw, ImageFont

from qwenimage.synth.layout import Block
from qwenimage.synth.linebreak import word_spans
from qwenimage.synth.sample import Box, TextBox


def ink_box(font: ImageFont.FreeTypeFont, text: str, origin: tuple[int, int], offset: float = 0.0) -> Box:
    left, top, right, bottom = font.getbbox(text, anchor="ls")
    x, y = origin
    return (int(x + offset + left), int(y + top), int(x + offset + right + 0.999), int(y + bottom))


def line_words(font: ImageFont.FreeTypeFont, line: str, origin: tuple[int, int]) -> list[TextBox]:
    """Word boxes of one drawn line (see linebreak.word_spans for what a word is)."""
    return [TextBox(line[start:end], ink_box(font, line[start:end], origin, font.getlength(line[:start])))
            for start, end in word_spans(line)]


def draw_block(draw: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont, block: Block,
               origins: list[tuple[int, int]], fill) -> tuple[list[TextBox], list[TextBox]]:
    """Draw every line at its origin (left, baseline); return the line boxes and word boxes."""
    lines, words = [], []
    for line, origin in zip(block.lines, origins):
        if not line:
            continue
        draw.text(origin, line, font=font, fill=fill, anchor="ls")
        lines.append(TextBox(line, ink_box(font, line, origin)))
        words.extend(line_words(font, line, origin))
    return lines, words


def clip_box(box: Box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    return (min(max(x0, 0), width), min(max(y0, 0), height), min(max(x1, 0), width), min(max(y1, 0), height))
