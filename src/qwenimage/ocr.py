"""Offline OCR (rapidocr: PP-OCR models shipped inside the wheel) and text-agreement scores.

Used by the synthetic text engine (keep a sample only if OCR reads its text back), by curation (text /
no-text split, dense and small text) and by evaluation (text accuracy of generated images).

    engine = OcrEngine()
    result = engine.read(image)              # OcrResult: lines with boxes and scores, in reading order
    text_agreement("通义千问", result.text)   # 1 - normalised edit distance, after normalisation
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image
from rapidfuzz.distance import Levenshtein

log = logging.getLogger(__name__)

_SPACES = re.compile(r"\s+")


@dataclass
class OcrLine:
    text: str
    box: list[tuple[float, float]]  # 4 corner points (x, y), clockwise from top-left
    score: float

    @property
    def top(self) -> float:
        return min(y for _, y in self.box)

    @property
    def left(self) -> float:
        return min(x for x, _ in self.box)

    @property
    def height(self) -> float:
        return max(y for _, y in self.box) - self.top


@dataclass
class OcrResult:
    lines: list[OcrLine] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def to_json(self) -> dict:
        return {"text": self.text, "lines": [{"text": l.text, "box": [list(p) for p in l.box],
                                              "score": round(l.score, 4)} for l in self.lines]}


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """Top-to-bottom rows (lines whose vertical centres are within half a line height), left to right."""
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda l: l.top + l.height / 2):
        centre = line.top + line.height / 2
        if rows and abs(centre - (rows[-1][0].top + rows[-1][0].height / 2)) < max(rows[-1][0].height, 1) / 2:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda l: l.left)]


class OcrEngine:
    """rapidocr on the CPU (onnxruntime); the models load on first use, once per process."""

    def __init__(self, min_score: float = 0.5, threads: int | None = None, upright: bool = True):
        self.min_score = min_score
        self.threads = threads  # onnxruntime threads; 1 per worker process when several workers share the cores
        # upright: no 180-degree line classifier. Every picture we read has its text upright (synthetic signs,
        # generated images, a user's photo), and the classifier turned some upright lines over ("push" read as
        # "ysnd", "open" as "updo" on the text-edit suite)
        self.upright = upright
        self._engine = None

    def _load(self):
        if self._engine is None:
            from rapidocr import RapidOCR

            params = {"Global.log_level": "warning", "Global.use_cls": not self.upright}
            if self.threads:
                params.update({"EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                               "EngineConfig.onnxruntime.inter_op_num_threads": self.threads})
            self._engine = RapidOCR(params=params)
        return self._engine

    def read(self, image: Image.Image | np.ndarray) -> OcrResult:
        array = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image
        output = self._load()(array)
        if output.txts is None:
            return OcrResult()
        lines = [OcrLine(text, [tuple(map(float, p)) for p in box], float(score))
                 for text, box, score in zip(output.txts, output.boxes, output.scores) if score >= self.min_score]
        return OcrResult(reading_order(lines))

    def read_many(self, images: Sequence[Image.Image | np.ndarray]) -> list[OcrResult]:
        return [self.read(image) for image in images]


def normalize_text(text: str) -> str:
    """NFKC (full-width -> half-width), lower case, no whitespace: OCR drops spaces between CJK runs."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", text)).lower()


def normalized_edit_distance(a: str, b: str) -> float:
    """Levenshtein distance / max length, in [0, 1]; 0 for two empty strings."""
    return Levenshtein.normalized_distance(a, b)


def text_agreement(expected: str, recognized: str) -> float:
    """1 - NED between the normalised texts: 1.0 when OCR reads exactly the expected text."""
    return 1.0 - normalized_edit_distance(normalize_text(expected), normalize_text(recognized))
