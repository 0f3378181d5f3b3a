"""Layout: the largest font size at which a text, wrapped, fits a box; and where each line goes.

    block = fit_block(library, face, text, box_width, box_height, sizes=(16, 96), spacing=1.4)
    origins = place_block(block, library, (x0, y0, x1, y1), align="center", valign="middle")

Fitting binary-searches the size with widths measured once per unit at the reference size and scaled
(with a small safety margin for hinting), then checks the real line widths at the chosen size and steps
down while a line overflows.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenimage.synth.fonts import REFERENCE_SIZE, FontFace, FontLibrary
from qwenimage.synth.linebreak import break_units, wrap_units

_SAFETY = 0.97  # scaled widths may differ from hinted ones by a few percent


@dataclass
class Block:
    lines: list[str]
    face: FontFace
    size: int  # font size in pixels
    pitch: int  # baseline-to-baseline distance in pixels
    extent: float  # ascent + descent in pixels
    widths: list[float]  # exact line widths in pixels

    @property
    def height(self) -> float:
        return self.pitch * (len(self.lines) - 1) + self.extent

    @property
    def width(self) -> float:
        return max(self.widths, default=0.0)


class _Measured:
    """The text's break units and their widths at the reference size, per paragraph."""

    def __init__(self, library: FontLibrary, face: FontFace, text: str):
        self.paragraphs = [break_units(part) for part in text.split("\n")]
        self.widths = [[library.advance(face, unit) for unit in units] for units in self.paragraphs]
        self.widest = max((w for ws in self.widths for w in ws), default=0.0)

    def lines(self, size: int, max_width: float) -> list[str]:
        scale = size / REFERENCE_SIZE
        lines = []
        for units, widths in zip(self.paragraphs, self.widths):
            lines.extend(wrap_units(units, [w * scale for w in widths], max_width * _SAFETY) or [""])
        return lines


def _fits(measured: _Measured, size: int, width: float, height: float, spacing: float, extent: float,
          max_lines: int | None) -> list[str] | None:
    if measured.widest * size / REFERENCE_SIZE > width * _SAFETY:
        return None
    lines = measured.lines(size, width)
    too_many = max_lines is not None and len(lines) > max_lines
    too_tall = round(size * spacing) * (len(lines) - 1) + extent * size > height
    return None if too_many or too_tall else lines


def fit_block(library: FontLibrary, face: FontFace, text: str, width: float, height: float,
              sizes: tuple[int, int], spacing: float = 1.3, max_lines: int | None = None) -> Block | None:
    """The block at the largest size in `sizes` whose wrapped lines fit `width` x `height`; None if none fits."""
    measured, extent = _Measured(library, face, text), library.line_extent(face)
    low, high = int(sizes[0]), int(max(sizes[0], sizes[1]))
    if _fits(measured, low, width, height, spacing, extent, max_lines) is None:
        return None
    while low < high:  # invariant: `low` fits
        mid = (low + high + 1) // 2
        if _fits(measured, mid, width, height, spacing, extent, max_lines) is not None:
            low = mid
        else:
            high = mid - 1
    for size in range(low, int(sizes[0]) - 1, -1):
        lines = _fits(measured, size, width, height, spacing, extent, max_lines)
        if lines is None:
            continue
        font = library.font(face, size)
        widths = [font.getlength(line) for line in lines]
        if max(widths) <= width:
            ascent, descent = font.getmetrics()
            return Block(lines, face, size, round(size * spacing), ascent + descent, widths)
    return None


def place_block(block: Block, library: FontLibrary, box: tuple[float, float, float, float], align: str = "left",
                valign: str = "top") -> list[tuple[int, int]]:
    """Pen origins (left x, baseline y) of each line of `block` inside `box`, aligned as asked."""
    x0, y0, x1, y1 = box
    ascent, _ = library.font(block.face, block.size).getmetrics()
    slack = (y1 - y0) - block.height
    top = y0 + {"top": 0.0, "middle": slack / 2, "bottom": slack}[valign]
    origins = []
    for index, line_width in enumerate(block.widths):
        room = (x1 - x0) - line_width
        x = x0 + {"left": 0.0, "center": room / 2, "right": room}[align]
        origins.append((round(x), round(top + ascent + index * block.pitch)))
    return origins


def readable_ceiling(library: FontLibrary, face: FontFace, text: str, width: float, min_chars: int = 6) -> int:
    """The largest size at which the first `min_chars` characters (or the whole text) still fit on one line:
    a few huge characters a line would read as a vertical column."""
    head = "".join(text.split())[:min_chars]
    em_width = library.advance(face, head) / REFERENCE_SIZE if head else 1.0
    return max(1, int(width / max(em_width, 1e-6)))


def estimated_capacity(width: float, height: float, size: float, spacing: float, language: str,
                       max_lines: int | None = None) -> int:
    """About how many characters fit `width` x `height` at `size`: ideographs are one em wide, Latin
    letters (with spaces) about half an em; a 20% reserve covers wrapping losses."""
    per_line = width / (size * (1.0 if language != "en" else 0.55))
    lines = max(1, int((height - size) / (size * spacing)) + 1)
    lines = min(lines, max_lines) if max_lines else lines
    return max(1, int(0.8 * per_line * lines))
