"""S4 text rendering: the English / Chinese / other / no-text split, dense-text and small-character
filters. Synthetic text shards enter the pipeline here (they skipped S1-S3), with their own text and line
boxes, so they need no OCR, and their paragraphs are dense on purpose: the dense-text filter leaves them
alone unless s4.synthetic_dense_text is set.

Reasons: language (in s4.drop_languages), dense_text, small_text.
"""

from __future__ import annotations

from qwenimage.curate.config import CurateConfig
from qwenimage.curate.decode import resize_longer_side
from qwenimage.curate.record import SYNTHETIC, Record
from qwenimage.curate.stages.base import Stage, pixels
from qwenimage.curate.text_render import TextReader, TextLine, classify_language, layout, synthetic_lines


class S4Text(Stage):
    name = "s4"

    def __init__(self, config: CurateConfig):
        self.config, self.max_pixels = config.s4, config.s1.max_pixels
        self.reader = TextReader(self.config.min_ocr_score, self.config.ocr_max_side)

    def _synthetic(self, record: Record) -> tuple[list[TextLine], str, int, int] | None:
        if record.kind != SYNTHETIC or not self.config.trust_synthetic_metadata:
            return None
        lines = synthetic_lines(record.metadata)
        width, height = record.metadata.get("width"), record.metadata.get("height")
        if lines is None or not width or not height:
            return None
        text = str(record.metadata.get("text", "\n".join(line.text for line in lines)))
        return lines, text, int(width), int(height)

    def process_one(self, record: Record) -> None:
        found = self._synthetic(record)
        if found is None and not self.config.ocr:
            return
        if found is None:
            rgb = resize_longer_side(pixels(record, self.max_pixels).rgb, self.config.ocr_max_side)
            height, width = rgb.shape[:2]
            boxes = self.reader.detect(rgb)  # cheap: recognition only for what the dense filter keeps
            if self._dense(record, boxes, width, height):
                return
            lines = self.reader.read_lines(rgb) if boxes else []
            found = lines, "\n".join(line.text for line in lines), width, height
        elif self._dense(record, found[0], found[2], found[3], enforce=self.config.synthetic_dense_text):
            return
        lines, text, width, height = found
        language = classify_language(text)
        record.labels.update(language=language, text=text)
        record.score(self.name, language=language, chars=sum(not c.isspace() for c in text))
        if not self._small(record, lines, width, height) and language in self.config.drop_languages:
            record.reject(self.name, "language", f"{language} text is dropped (s4.drop_languages)")

    def _dense(self, record: Record, boxes: list[TextLine], width: int, height: int, enforce: bool = True) -> bool:
        """Reject text covering too much of the image or in too many lines (detected boxes), when `enforce`
        (synthetic paragraphs are dense on purpose: s4.synthetic_dense_text). True if rejected."""
        measured = layout(boxes, width, height)
        record.score(self.name, text_boxes=measured.lines, text_area=round(measured.area_fraction, 4))
        cfg = self.config
        if enforce and (measured.area_fraction > cfg.max_text_area or measured.lines > cfg.max_text_lines):
            record.reject(self.name, "dense_text", f"{measured.lines} text lines covering "
                                                   f"{measured.area_fraction:.0%} of the image")
        return not record.kept

    def _small(self, record: Record, lines: list[TextLine], width: int, height: int) -> bool:
        """Reject text whose median line (recognised lines only) is too small to learn from. True if rejected."""
        measured = layout(lines, width, height)
        record.score(self.name, text_lines=measured.lines, char_height=round(measured.median_height, 4))
        if measured.lines and measured.median_height < self.config.min_char_height:
            record.reject(self.name, "small_text", f"median line height {measured.median_height:.4f} of the "
                                                   f"shorter side < {self.config.min_char_height}")
        return not record.kept
