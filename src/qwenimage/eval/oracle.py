"""Known-answer images: a suite sample's expected texts drawn plainly with the synth engine's fonts and layout
(black on white, one paragraph per text, centred, at the largest size that fits). `qwenimage eval text
--oracle` scores them: the harness's ceiling, and its check against a known answer.
"""

from __future__ import annotations

import functools

from PIL import Image, ImageDraw

from qwenimage.synth.fonts import FontFace, FontLibrary
from qwenimage.synth.layout import fit_block, place_block

MARGIN = 0.08  # of the short side
MAX_SIZE = 0.3  # largest font size, as a share of the short side


@functools.cache
def oracle_fonts() -> FontLibrary:
    return FontLibrary.discover()


def plain_face(library: FontLibrary, text: str) -> FontFace:
    """The first upright, regular-weight sans face covering `text` (Latin-only faces first for Latin text)."""
    faces = library.covering(text, "sans") or library.covering(text)
    if not faces:
        raise ValueError(f"no installed font covers {text!r}")
    odd = {"bold", "italic", "mono", "handwriting"}
    return min(faces, key=lambda f: (len(f.tags & odd), f.cjk, f.family, f.style))


def render_texts(texts: list[str] | tuple[str, ...], width: int, height: int,
                 library: FontLibrary | None = None) -> Image.Image:
    """An RGB image [height, width] showing `texts`, one paragraph each, wrapped to fit."""
    library = library or oracle_fonts()
    text = "\n".join(texts)
    face = plain_face(library, text)
    short = min(width, height)
    margin = MARGIN * short
    box = (margin, margin, width - margin, height - margin)
    block = fit_block(library, face, text, box[2] - box[0], box[3] - box[1], (6, max(6, int(MAX_SIZE * short))))
    if block is None:
        raise ValueError(f"{len(text)} characters do not fit a {width}x{height} image")
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = library.font(face, block.size)
    for line, origin in zip(block.lines, place_block(block, library, box, "center", "middle")):
        draw.text(origin, line, font=font, fill="black", anchor="ls")
    return image
