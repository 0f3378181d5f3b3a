"""Aggregates of per-sample counts, with bootstrap 95% intervals, and the paired difference of two runs.

Every metric is a ratio of sums over samples (sum of numerators / sum of denominators), so a sample with
three regions weighs three times in exact match and once in sample accuracy. Intervals: the 2.5 and 97.5
percentiles of the metric over B = 1000 resamples of the samples with replacement (numpy
default_rng(0)). Paired difference (`qwenimage eval compare`): the same resampled sample ids in both runs,
B minus A per resample; "significant" when that 95% interval excludes zero. All metrics: higher is better.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from qwenimage.eval.metrics import SampleScore

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0

# name -> what it is; the numerator and denominator of each sample come from `counts`
METRICS = {
    "exact_match": "share of expected texts found exactly (text accuracy)",
    "word_accuracy": "share of expected words (Chinese: characters) found among the OCR tokens",
    "ned": "mean over texts of 1 - normalised edit distance to the best-matching part of the reading",
    "sample_accuracy": "share of samples with every text found exactly",
    "char_precision": "characters read that were expected / characters read",
    "char_recall": "expected characters that were read / characters expected",
    "char_f1": "harmonic mean of character precision and recall",
}
_RATIOS = ("exact_match", "word_accuracy", "ned", "sample_accuracy", "char_precision", "char_recall")


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    n: int  # samples

    def to_json(self) -> dict:
        return {key: round(v, 6) if isinstance(v, float) else v for key, v in asdict(self).items()}


def counts(score: SampleScore) -> np.ndarray:
    """[2, 6] numerators and denominators of the ratio metrics, in _RATIOS order."""
    texts = len(score.texts)
    return np.array([
        [sum(t.exact for t in score.texts), sum(t.words_matched for t in score.texts), sum(t.ned for t in score.texts),
         float(score.all_exact), score.chars_matched, score.chars_matched],
        [texts, sum(t.words for t in score.texts), texts, 1.0, score.chars_read, score.chars_expected],
    ], dtype=np.float64)


def _ratios(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """[..., 6] sums -> [..., 7] metrics (the six ratios, 0 where nothing was counted, then char F1)."""
    ratio = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    p, r = ratio[..., 4], ratio[..., 5]
    f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    return np.concatenate([ratio, f1[..., None]], axis=-1)


def resample_weights(n: int, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """[B, n] how often each sample is drawn in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(samples, n))  # [B, n]
    weights = np.zeros((samples, n))
    np.add.at(weights, (np.repeat(np.arange(samples), n), picks.ravel()), 1.0)
    return weights


def _bootstrap(table: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """table [n, 2, 6], weights [B, n] -> [B, 7] metrics per resample."""
    num = weights @ table[:, 0, :]  # [B, 6]
    den = weights @ table[:, 1, :]
    return _ratios(num, den)


def aggregate(scores: list[SampleScore]) -> dict[str, Interval]:
    """Every metric over `scores` with its bootstrap 95% interval; empty input gives no metrics."""
    if not scores:
        return {}
    table = np.stack([counts(s) for s in scores])  # [n, 2, 6]
    point = _ratios(table[:, 0].sum(0), table[:, 1].sum(0))  # [7]
    boot = _bootstrap(table, resample_weights(len(scores)))
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return {name: Interval(float(point[i]), float(low[i]), float(high[i]), len(scores))
            for i, name in enumerate(METRICS)}


def paired_difference(a: list[SampleScore], b: list[SampleScore]) -> dict[str, dict]:
    """B - A per metric over the same samples (a[i] and b[i] score the same id), with a paired bootstrap
    95% interval and whether it excludes zero."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired difference needs the same non-zero number of samples, got {len(a)} and {len(b)}")
    table_a = np.stack([counts(s) for s in a])
    table_b = np.stack([counts(s) for s in b])
    point = _ratios(table_b[:, 0].sum(0), table_b[:, 1].sum(0)) - _ratios(table_a[:, 0].sum(0), table_a[:, 1].sum(0))
    weights = resample_weights(len(a))
    boot = _bootstrap(table_b, weights) - _bootstrap(table_a, weights)  # [B, 7]
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return {name: {"difference": round(float(point[i]), 6), "low": round(float(low[i]), 6),
                   "high": round(float(high[i]), 6), "significant": bool(low[i] > 0 or high[i] < 0), "n": len(a)}
            for i, name in enumerate(METRICS)}
