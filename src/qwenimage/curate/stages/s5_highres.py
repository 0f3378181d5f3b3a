"""S5 high resolution (640p): resolution tier, blur, JPEG compression artifacts, exposure, abnormal elements
(QR codes, barcodes, watermarks), aesthetics.

S5 belongs to the high-resolution training stage (the report trains 256 -> 640 -> 1328): an image below the
640p tier (`s5.min_pixels`) is not rejected, it is labelled `high_resolution: false`, keeps the lower tiers
of S7 and skips the checks made at 640p (blur). Graphics (`labels["look"]`, see `curate.looks`) skip the
exposure checks unless s5.judge_graphic_exposure: their white or black backgrounds are chosen.

Reasons, in order: blurry (640p tier only), compression_artifacts, underexposed, overexposed, qr_code,
barcode, abnormal_element, watermark (captioner list or classifier hook), low_aesthetic (hook).
"""

from __future__ import annotations

import cv2
import numpy as np

from qwenimage.curate import metrics
from qwenimage.curate.config import CurateConfig
from qwenimage.curate.decode import resize_to_area
from qwenimage.curate.hooks import Scorer
from qwenimage.curate.looks import GRAPHIC, PHOTO, declared_look
from qwenimage.curate.record import Record
from qwenimage.curate.stages.base import Stage, pixels, scored_in_batch

BLOCKINESS_CROP = 1024  # blockiness is measured on a native-resolution centre crop of this side


class CodeDetector:
    """QR codes and 1-D barcodes with OpenCV. The ArUco-based QR detector (OpenCV >= 4.8) is preferred:
    the classic one also finds 'codes' in Chinese characters; either way the corners must form a plausible
    square (convex, sides within 2:1). The barcode detector exists in OpenCV >= 4.8."""

    def __init__(self):
        self._qr = self._barcode = None

    def __getstate__(self) -> dict:
        return {"_qr": None, "_barcode": None}

    def qr_code(self, grey: np.ndarray) -> bool:
        if self._qr is None:
            self._qr = cv2.QRCodeDetectorAruco() if hasattr(cv2, "QRCodeDetectorAruco") else cv2.QRCodeDetector()
        found, corners = self._qr.detect(grey)
        return bool(found) and corners is not None and _plausible_square(corners.reshape(-1, 2))

    def barcode(self, rgb: np.ndarray) -> bool:
        if not hasattr(cv2, "barcode"):
            return False
        self._barcode = self._barcode or cv2.barcode.BarcodeDetector()
        found, *_ = self._barcode.detect(rgb)
        return bool(found)


def _plausible_square(corners: np.ndarray) -> bool:
    """Four corners [4, 2] of a convex quadrilateral whose sides are within a factor 2 of each other."""
    if corners.shape != (4, 2):
        return False
    sides = np.linalg.norm(corners - np.roll(corners, 1, axis=0), axis=1)
    return bool(sides.min() > 8 and sides.max() < 2 * sides.min()
                and cv2.isContourConvex(corners.astype(np.float32).reshape(-1, 1, 2)))


def first_failure(scores: dict, captioner: dict, cfg, high_resolution: bool = True,
                  exposure: bool = True) -> tuple[str, str] | None:
    """The first S5 check that fails, as (reason, detail), in the documented order; the blur check only for
    images of the 640p tier, the exposure checks only when `exposure`."""
    watermarks = captioner.get("Watermark List") or []
    checks = [
        ("blurry", high_resolution and scores["sharpness"] < cfg.min_sharpness,
         f"sharpness {scores['sharpness']:.1f} at 640p"),
        ("compression_artifacts", scores.get("blockiness", 0.0) > cfg.max_blockiness,
         f"blockiness {scores.get('blockiness', 0.0):.2f} > {cfg.max_blockiness}"),
        ("underexposed", exposure and scores["dark_fraction"] > cfg.max_dark_fraction,
         f"{scores['dark_fraction']:.0%} black"),
        ("overexposed", exposure and scores["bright_fraction"] > cfg.max_bright_fraction,
         f"{scores['bright_fraction']:.0%} white"),
        ("qr_code", cfg.reject_qr_codes and scores["qr_code"], "QR code detected"),
        ("barcode", cfg.reject_barcodes and scores["barcode"], "barcode detected"),
        ("abnormal_element", cfg.reject_abnormal_elements and captioner.get("Abnormal Element") == "yes",
         "the captioner reports an abnormal element"),
        ("watermark", cfg.reject_captioner_watermarks and bool(watermarks), f"captioner watermarks: {watermarks}"),
    ]
    return next(((reason, detail) for reason, failed, detail in checks if failed), None)


class S5HighRes(Stage):
    name = "s5"

    def __init__(self, config: CurateConfig):
        self.config, self.max_pixels, self.graphic = config.s5, config.s1.max_pixels, config.s2.graphic
        self.codes = CodeDetector()
        self.aesthetic, self.watermark = Scorer(self.config.aesthetic), Scorer(self.config.watermark)

    def process(self, records: list[Record]) -> None:
        super().process(records)
        threshold = self.config.aesthetic.threshold
        self._hook(records, self.aesthetic, "aesthetic", "low_aesthetic", lambda value: value < threshold)
        threshold_w = self.config.watermark.threshold
        self._hook(records, self.watermark, "watermark_score", "watermark", lambda value: value >= threshold_w)

    def process_one(self, record: Record) -> None:
        image = pixels(record, self.max_pixels)
        high_resolution = image.width * image.height >= self.config.min_pixels
        record.labels["high_resolution"] = high_resolution
        look = record.labels.setdefault("look", declared_look(record, self.graphic) or PHOTO)
        view = resize_to_area(image.rgb, self.config.analysis_resolution)  # [h, w, 3], about 640^2 pixels
        grey = metrics.grey(view)
        dark, bright = metrics.clipped_fractions(grey)
        scores = {"sharpness": round(metrics.clarity(grey), 4), "dark_fraction": round(dark, 4),
                  "bright_fraction": round(bright, 4), "qr_code": self.codes.qr_code(grey),
                  "barcode": self.codes.barcode(view)}
        if image.format == "JPEG":  # 8x8 blocking comes from JPEG coding; graphics with aligned edges mimic it
            native = metrics.center_crop(metrics.grey(image.rgb), BLOCKINESS_CROP)
            scores["blockiness"] = round(metrics.blockiness(native), 4)
        record.score(self.name, **scores)
        exposure = look != GRAPHIC or self.config.judge_graphic_exposure
        failure = first_failure(scores, record.labels.get("captioner") or {}, self.config, high_resolution, exposure)
        if failure:
            record.reject(self.name, *failure)

    def _hook(self, records: list[Record], scorer: Scorer, score_name: str, reason: str, fails) -> None:
        """Score the kept records with a hook; reject where `fails(score)` (when the hook has a threshold)."""
        todo = [r for r in records if r.kept]
        if not scorer.enabled or not todo:
            return
        values = scored_in_batch(todo, self.name, lambda rs: scorer([pixels(r, self.max_pixels).rgb for r in rs]))
        for record, value in zip(todo, values):
            if value is None:
                continue
            record.score(self.name, **{score_name: round(value, 4)})
            if scorer.config.threshold is not None and fails(value):
                record.reject(self.name, reason, f"{score_name} {value:.3f} (threshold {scorer.config.threshold})")
