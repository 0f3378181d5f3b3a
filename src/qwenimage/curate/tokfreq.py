"""Token-frequency resampling of text-bearing records (the long tail of characters, report S7).

Tokens: every Han character, and every lower-cased word of other scripts. A record's raw weight is the
mean over its distinct tokens of (records / records containing the token)^alpha: records carrying rare
characters are seen more often. Weights are normalised to mean 1 within each group (a category), so the
group's total share is unchanged, and capped at `max_weight`.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W\d_]+", re.UNICODE)


def tokens(text: str) -> set[str]:
    return {t.lower() for t in _TOKEN.findall(text)}


def token_weights(texts: dict[str, str], groups: dict[str, str], alpha: float, max_weight: float) -> dict[str, float]:
    """id -> weight for the ids in `texts` (text-bearing records), normalised to mean 1 per group."""
    token_sets = {key: tokens(text) for key, text in texts.items()}
    frequency = Counter(t for ts in token_sets.values() for t in ts)
    count = len(token_sets)
    raw = {key: float(np.mean([(count / frequency[t]) ** alpha for t in ts])) if ts else 1.0
           for key, ts in token_sets.items()}
    weights: dict[str, float] = {}
    for group in sorted(set(groups[k] for k in raw)):
        keys = sorted(k for k in raw if groups[k] == group)
        values = np.array([raw[k] for k in keys])
        values = np.clip(values / values.mean(), 1.0 / max_weight, max_weight)
        values = values / values.mean()
        weights.update(zip(keys, values.round(4).tolist()))
    return weights
