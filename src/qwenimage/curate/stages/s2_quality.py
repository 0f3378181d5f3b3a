"""S2 image quality at 256p: luma, saturation, entropy, clarity, noise/texture, judged by look.

Each image is first classed as a photo or a graphic (`curate.looks`): graphics (posters, slides, app
screens, renders) are judged with `s2.graphic`'s luma and entropy limits, since flat backgrounds are their
design; the other thresholds are the same for both. All scores are computed and stored (`s2.flat_fraction`
too; the look goes to `labels["look"]`); the first failing check (in this order) names the reason:
too_dark, too_bright, oversaturated, low_entropy, blurry, noisy.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenimage.curate import metrics
from qwenimage.curate.config import CurateConfig, S2Config
from qwenimage.curate.decode import resize_to_area
from qwenimage.curate.looks import GRAPHIC, declared_look, flat_fraction, measured_look
from qwenimage.curate.record import Record
from qwenimage.curate.stages.base import Stage, pixels


@dataclass(frozen=True)
class QualityLimits:
    min_luma: float
    max_luma: float
    max_saturated_fraction: float
    min_entropy: float
    min_clarity: float
    max_noise: float

    @classmethod
    def for_look(cls, cfg: S2Config, look: str) -> QualityLimits:
        graphic = look == GRAPHIC
        return cls(min_luma=cfg.graphic.min_luma if graphic else cfg.min_luma,
                   max_luma=cfg.graphic.max_luma if graphic else cfg.max_luma,
                   max_saturated_fraction=cfg.max_saturated_fraction,
                   min_entropy=cfg.graphic.min_entropy if graphic else cfg.min_entropy,
                   min_clarity=cfg.min_clarity, max_noise=cfg.max_noise)


def quality_scores(rgb, resolution: int) -> dict[str, float]:
    """The S2 scores of an RGB image [H, W, 3] measured at about resolution^2 pixels."""
    small = resize_to_area(rgb, resolution)
    g = metrics.grey(small)
    mean_sat, saturated = metrics.saturation(small)
    return {"luma": metrics.mean_luma(g), "saturation": mean_sat, "saturated_fraction": saturated,
            "entropy": metrics.rgb_entropy(small), "clarity": metrics.clarity(g), "noise": metrics.noise_sigma(g),
            "flat_fraction": flat_fraction(small)}


def first_failure(scores: dict[str, float], limits: QualityLimits) -> tuple[str, str] | None:
    checks = [
        ("too_dark", scores["luma"] < limits.min_luma, f"luma {scores['luma']:.3f} < {limits.min_luma}"),
        ("too_bright", scores["luma"] > limits.max_luma, f"luma {scores['luma']:.3f} > {limits.max_luma}"),
        ("oversaturated", scores["saturated_fraction"] > limits.max_saturated_fraction,
         f"{scores['saturated_fraction']:.2f} of pixels saturated > {limits.max_saturated_fraction}"),
        ("low_entropy", scores["entropy"] < limits.min_entropy,
         f"entropy {scores['entropy']:.2f} < {limits.min_entropy}"),
        ("blurry", scores["clarity"] < limits.min_clarity, f"clarity {scores['clarity']:.1f} < {limits.min_clarity}"),
        ("noisy", scores["noise"] > limits.max_noise, f"noise {scores['noise']:.1f} > {limits.max_noise}"),
    ]
    return next(((reason, detail) for reason, failed, detail in checks if failed), None)


class S2Quality(Stage):
    name = "s2"
    synthetic_enters = False

    def __init__(self, config: CurateConfig):
        self.config, self.max_pixels = config.s2, config.s1.max_pixels

    def process_one(self, record: Record) -> None:
        scores = quality_scores(pixels(record, self.max_pixels).rgb, self.config.analysis_resolution)
        record.score(self.name, **{k: round(v, 4) for k, v in scores.items()})
        look = declared_look(record, self.config.graphic) or measured_look(
            scores["flat_fraction"], scores["clarity"], self.config.graphic, self.config.min_clarity)
        record.labels["look"] = look
        failure = first_failure(scores, QualityLimits.for_look(self.config, look))
        if failure:
            record.reject(self.name, failure[0], f"{failure[1]} ({look})")
