"""S2 image quality at 256p: luma, saturation, entropy, clarity, noise/texture.

All scores are computed and stored; the first failing check (in that order) names the reason:
too_dark, too_bright, oversaturated, low_entropy, blurry, noisy.
"""

from __future__ import annotations

from qwenimage.curate import metrics
from qwenimage.curate.config import CurateConfig
from qwenimage.curate.decode import resize_to_area
from qwenimage.curate.record import Record
from qwenimage.curate.stages.base import Stage, pixels


def quality_scores(rgb, resolution: int) -> dict[str, float]:
    """The S2 scores of an RGB image [H, W, 3] measured at about resolution^2 pixels."""
    small = resize_to_area(rgb, resolution)
    g = metrics.grey(small)
    mean_sat, saturated = metrics.saturation(small)
    return {"luma": metrics.mean_luma(g), "saturation": mean_sat, "saturated_fraction": saturated,
            "entropy": metrics.rgb_entropy(small), "clarity": metrics.clarity(g), "noise": metrics.noise_sigma(g)}


def first_failure(scores: dict[str, float], cfg) -> tuple[str, str] | None:
    checks = [
        ("too_dark", scores["luma"] < cfg.min_luma, f"luma {scores['luma']:.3f} < {cfg.min_luma}"),
        ("too_bright", scores["luma"] > cfg.max_luma, f"luma {scores['luma']:.3f} > {cfg.max_luma}"),
        ("oversaturated", scores["saturated_fraction"] > cfg.max_saturated_fraction,
         f"{scores['saturated_fraction']:.2f} of pixels saturated > {cfg.max_saturated_fraction}"),
        ("low_entropy", scores["entropy"] < cfg.min_entropy, f"entropy {scores['entropy']:.2f} < {cfg.min_entropy}"),
        ("blurry", scores["clarity"] < cfg.min_clarity, f"clarity {scores['clarity']:.1f} < {cfg.min_clarity}"),
        ("noisy", scores["noise"] > cfg.max_noise, f"noise {scores['noise']:.1f} > {cfg.max_noise}"),
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
        failure = first_failure(scores, self.config)
        if failure:
            record.reject(self.name, *failure)
