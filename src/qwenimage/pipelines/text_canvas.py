"""The canvas of a text_focus edit (pipelines/text_focus.py): geometry between a picture's text line and the model's
canvas, the line's colours, and the canvases themselves (the source resampled, a flat backdrop, the old text redrawn
in the model's font), plus the text painted out of the source for the new ink to go on.

Boxes are (x0, y0, x1, y1) in canvas pixels; quadrilaterals [4, 2] are OCR's, clockwise from the top-left corner;
homographies [3, 3] map canvas pixels to source pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from qwenimage.pipelines.text_focus import TextFocus

MARGIN = 0.15  # the line's box grows by this share of its height on each side


def sub_quad(quad: np.ndarray, start: float, end: float) -> np.ndarray:
    """The part of a line's quadrilateral [4, 2] between the shares `start` and `end` of its length."""
    top_left, top_right, bottom_right, bottom_left = quad
    top = lambda t: top_left + t * (top_right - top_left)  # noqa: E731
    bottom = lambda t: bottom_left + t * (bottom_right - bottom_left)  # noqa: E731
    return np.stack([top(start), top(end), bottom(end), bottom(start)]).astype(np.float32)


def line_homography(quad: np.ndarray, focus: TextFocus, text_width: float | None = None,
                    exact: bool = False) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The homography [3, 3] from canvas pixels to source pixels that takes the OCR quadrilateral [4, 2] (clockwise
    from top-left) to a level box of the model's line height, at its left edge and centred vertically; and that
    box (x0, y0, x1, y1) on the canvas. Its width: the line's at that height (scaled down to fit the canvas); for a
    line the canvas shows redrawn in narrower letters than the model's (`text_width` pixels of the model's text, in
    OCR's box: the pen's margin on both sides), that box's: the model's letters are then as narrow as the source's
    (wider ones keep their own shape). `exact`: the quadrilateral frames the characters alone (no OCR margin) and
    goes onto the drawn text's own box, from the pen, so each of the model's characters lands on the source's (a
    line without spaces edited a few characters at a time)."""
    import cv2

    top_left, top_right, bottom_right, bottom_left = quad
    width = (np.linalg.norm(top_right - top_left) + np.linalg.norm(bottom_right - bottom_left)) / 2
    height = (np.linalg.norm(bottom_left - top_left) + np.linalg.norm(bottom_right - top_right)) / 2
    if width < 1 or height < 1:
        raise ValueError(f"text_focus: the OCR box {quad.tolist()} is degenerate")
    scale = min(focus.line_height / height, (focus.width - 2 * focus.left) / width)
    box_w, box_h = width * scale, height * scale
    x0, y0 = focus.left, (focus.height - box_h) / 2
    if text_width is not None and exact:
        x0, box_w = focus.pen * focus.width, text_width
    elif text_width is not None:
        box_w = max(box_w, text_width + 2 * (focus.pen * focus.width - focus.left))
    box = np.array([[x0, y0], [x0 + box_w, y0], [x0 + box_w, y0 + box_h], [x0, y0 + box_h]], dtype=np.float32)
    return cv2.getPerspectiveTransform(box, quad.astype(np.float32)), (x0, y0, x0 + box_w, y0 + box_h)


def resample(source: Image.Image, to_source: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """The canvas of `size` (width, height): source pixels through the homography, the edges repeated beyond the
    picture. A source drawn larger than the canvas is first shrunk with area averaging (no aliasing)."""
    import cv2

    pixels = np.asarray(source)
    # the canvas's scale: source pixels per canvas pixel near the line
    shrink = float(np.sqrt(abs(np.linalg.det(to_source[:2, :2] / to_source[2, 2]))))
    if shrink > 1.5:
        factor = 1 / shrink
        small = cv2.resize(pixels, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        scale_x, scale_y = small.shape[1] / pixels.shape[1], small.shape[0] / pixels.shape[0]
        to_source = np.diag([scale_x, scale_y, 1.0]) @ to_source
        pixels = small
    canvas = cv2.warpPerspective(pixels, to_source, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REPLICATE)
    return Image.fromarray(canvas)


def grown_box(box: tuple[float, float, float, float], margin: float,
              size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1) grown by `margin` of its height, in whole pixels inside a canvas of `size`."""
    x0, y0, x1, y1 = box
    pad = margin * (y1 - y0)
    return (max(0, int(x0 - pad)), max(0, int(y0 - pad)), min(size[0], int(np.ceil(x1 + pad))),
            min(size[1], int(np.ceil(y1 + pad))))


def line_colors(canvas: Image.Image, box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(background, ink) RGB of the line in `box`: the background is the box's median colour (the text covers
    less of its box than the surface does), the ink the median of the pixels furthest from it."""
    left, top, right, bottom = grown_box(box, MARGIN, canvas.size)
    inside = np.asarray(canvas)[top:bottom, left:right].reshape(-1, 3).astype(np.float32)       # [N, 3]
    background = np.median(inside, axis=0)
    distance = np.linalg.norm(inside - background, axis=1)
    ink = np.median(inside[distance >= 0.6 * distance.max()], axis=0) if distance.max() > 0 else background
    return background.astype(np.uint8), ink.astype(np.uint8)


def flat_backdrop(canvas: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """The canvas with everything outside the line's box (grown by MARGIN) in the line's background colour."""
    pixels = np.asarray(canvas)
    left, top, right, bottom = grown_box(box, MARGIN, canvas.size)
    flat = np.empty_like(pixels)
    flat[:] = line_colors(canvas, box)[0]
    flat[top:bottom, left:right] = pixels[top:bottom, left:right]
    return Image.fromarray(flat)


def ink_share(pixels: np.ndarray, paper: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """How far each pixel [h, w, 3] lies from paper towards ink: its projection on that segment, [h, w] in 0..1."""
    paper, ink = paper.astype(np.float32), ink.astype(np.float32)
    direction = ink - paper
    return np.clip((pixels - paper) @ direction / max(float(direction @ direction), 1.0), 0, 1).astype(np.float32)


def text_removed(source: Image.Image, quad: np.ndarray, background: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The source [H, W, 3] (float) with the text inside the line's quadrilateral painted out (OpenCV's Telea
    inpainting over the pixels nearer the ink colour than the background, grown by two pixels). Only shapes that lie
    inside the (grown) quadrilateral are text: a sign's dark frame or edge that crosses it and runs on stays."""
    import cv2

    pixels = np.asarray(source)
    height = np.linalg.norm(quad[3] - quad[0])
    region = np.zeros(pixels.shape[:2], np.uint8)
    cv2.fillConvexPoly(region, np.round(quad).astype(np.int32), 1)
    pad = max(1, int(MARGIN * height))
    region = cv2.dilate(region, np.ones((2 * pad + 1, 2 * pad + 1), np.uint8))
    values = pixels.astype(np.float32)
    nearer_ink = np.linalg.norm(values - ink, axis=2) < np.linalg.norm(values - background, axis=2)
    count, labels = cv2.connectedComponents(nearer_ink.astype(np.uint8), connectivity=8)
    inside = np.bincount(labels[region > 0], minlength=count)
    glyph = inside >= 0.9 * np.bincount(labels.ravel(), minlength=count)     # shapes (almost) all inside the line
    glyph[0] = False                                                           # label 0: pixels nearer the background
    text = cv2.dilate((glyph[labels] & (region > 0)).astype(np.uint8), np.ones((5, 5), np.uint8))
    return cv2.inpaint(pixels, text, 3, cv2.INPAINT_TELEA).astype(np.float32)


def redrawn(size: tuple[int, int], box: tuple[float, float, float, float], text: str, focus: TextFocus,
            background: np.ndarray, ink: np.ndarray) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A canvas of `size` in `background` with `text` drawn in `ink`, in the model's font, size and pen, its line
    box centred on the old line's: the sign the model was trained to edit; and the drawn text's box."""
    from PIL import ImageDraw

    font = model_font(focus)
    _, line_top, _, line_bottom = font.getbbox("Hgjy")  # the font's line box, as the words layout centres it
    out = Image.new("RGB", size, tuple(int(c) for c in background))
    centre = (box[1] + box[3]) / 2
    origin = (round(focus.pen * size[0]), round(centre - (line_top + line_bottom) / 2))
    ImageDraw.Draw(out).text(origin, text, font=font, fill=tuple(int(c) for c in ink))
    x0, y0, x1, y1 = font.getbbox(text)
    return out, (origin[0] + x0, origin[1] + y0, origin[0] + x1, origin[1] + y1)


def _model_face(focus: TextFocus):
    """(the font library, the model's face); ValueError when the font is not installed."""
    from qwenimage.synth.fonts import FontLibrary

    fonts = FontLibrary.discover()
    face = next((f for f in fonts.faces if f.name == focus.font), None)
    if face is None:
        raise ValueError(f"text_focus: the model's font {focus.font!r} is not installed (install.sh installs it)")
    return fonts, face


def model_font(focus: TextFocus):
    """The model's font at its size (a Pillow FreeTypeFont)."""
    fonts, face = _model_face(focus)
    return fonts.font(face, focus.font_size)


def missing_glyphs(focus: TextFocus, text: str) -> str:
    """The characters of `text` (spaces aside) the model's font cannot draw."""
    fonts, face = _model_face(focus)
    return fonts.missing(face, text.replace(" ", ""))
