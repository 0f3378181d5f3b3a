"""S4 helpers: text lines from OCR (or from a synthetic shard's json), the language split, and the
layout measures behind the dense-text and small-character filters."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass

import numpy as np

from qwenimage.ocr import OcrEngine, OcrLine, reading_order

LANGUAGES = ("english", "chinese", "other", "none")
MAX_LINE_HEIGHT = 0.5  # detected boxes taller than this share of the image are not text lines


@dataclass
class TextLine:
    text: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the measured image's pixels

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


class TextReader(OcrEngine):
    """The project's OCR engine, quiet (rapidocr warns about every image without text), detecting on the
    image as given up to `max_side` (rapidocr would enlarge small images to 736 pixels, which costs time),
    and using OMP_NUM_THREADS threads when set (curation workers set 1: the processes give parallelism)."""

    def __init__(self, min_score: float = 0.5, max_side: int = 960):
        super().__init__(min_score)
        self.max_side = max_side

    def _load(self):
        if self._engine is None:
            from rapidocr import RapidOCR

            params = {"Global.log_level": "error", "Det.limit_type": "max", "Det.limit_side_len": self.max_side,
                      "EngineConfig.onnxruntime.intra_op_num_threads": int(os.environ.get("OMP_NUM_THREADS", -1))}
            self._engine = RapidOCR(params=params)
        return self._engine

    def detect(self, rgb: np.ndarray) -> list[TextLine]:
        """Text boxes only (no recognition): enough for the dense-text filter, and cheap. A box taller than
        half the image is a detector artefact (seen on smooth photos), not a line of text: dropped."""
        output = self._load()(rgb, use_det=True, use_cls=False, use_rec=False)
        boxes = [] if output.boxes is None else output.boxes
        lines = [TextLine("", _bounds([tuple(map(float, p)) for p in box])) for box in boxes]
        return [line for line in lines if line.height <= MAX_LINE_HEIGHT * rgb.shape[0]]

    def read_lines(self, rgb: np.ndarray) -> list[TextLine]:
        """Recognised lines (confidence >= min_score) in reading order."""
        output = self._load()(rgb, use_det=True, use_cls=True, use_rec=True)  # rapidocr keeps the last flags
        if output.txts is None:
            return []
        lines = [OcrLine(text, [tuple(map(float, p)) for p in box], float(score))
                 for text, box, score in zip(output.txts, output.boxes, output.scores)
                 if score >= self.min_score and _meaningful(text)]
        return [TextLine(line.text, _bounds(line.box)) for line in reading_order(lines)]


def _meaningful(text: str) -> bool:
    """False for a lone Latin letter or digit: OCR reads round objects as 'O' and poles as 'I'."""
    visible = [ch for ch in text if not ch.isspace()]
    return len(visible) > 1 or any(script_counts(ch)["han"] for ch in visible)


def _bounds(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def synthetic_lines(metadata: dict) -> list[TextLine] | None:
    """Lines from the synth engine's json (`lines`: [{"text", "box": [x0, y0, x1, y1]}]), if present."""
    lines = metadata.get("lines")
    if not isinstance(lines, list):
        return None
    try:
        return [TextLine(str(line["text"]), tuple(float(v) for v in line["box"])) for line in lines]
    except (KeyError, TypeError, ValueError):
        return None


def script_counts(text: str) -> dict[str, int]:
    """Counts of Han characters, Latin letters and letters of other scripts."""
    counts = {"han": 0, "latin": 0, "other": 0}
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        if name.startswith("CJK UNIFIED") or name.startswith("CJK COMPATIBILITY IDEOGRAPH"):
            counts["han"] += 1
        elif name.startswith("LATIN"):
            counts["latin"] += 1
        else:
            counts["other"] += 1
    return counts


def classify_language(text: str) -> str:
    """english | chinese | other | none. Chinese when Han characters are at least a third of the letters
    (Chinese text often carries Latin words), English when Latin letters are the majority."""
    counts = script_counts(text)
    letters = sum(counts.values())
    if letters == 0:
        return "none"
    if counts["han"] * 3 >= letters:
        return "chinese"
    if counts["latin"] * 2 > letters:
        return "english"
    return "other"


@dataclass
class TextLayout:
    lines: int
    area_fraction: float  # text-box area / image area (boxes may overlap: capped at 1)
    median_height: float  # line height / the image's shorter side, median over characters


def layout(lines: list[TextLine], width: int, height: int) -> TextLayout:
    if not lines:
        return TextLayout(0, 0.0, 0.0)
    area = min(1.0, sum(line.area for line in lines) / float(width * height))
    heights = np.array([line.height for line in lines])
    weights = np.array([max(1, sum(not ch.isspace() for ch in line.text)) for line in lines])  # characters per line
    order = np.argsort(heights)
    cumulative = np.cumsum(weights[order])
    median = float(heights[order][np.searchsorted(cumulative, cumulative[-1] / 2)])
    return TextLayout(len(lines), area, median / min(width, height))
