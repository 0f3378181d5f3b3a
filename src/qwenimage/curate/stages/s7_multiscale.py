"""S7 multi-scale (the 256p, 640p and 1328p tiers jointly): an aspect bucket per tier the image fills, a
hierarchical balance of the top tier (category shares, then subcategories evenly, best-ranked records
first), and token-frequency sampling weights for text-bearing records.

S7 rejects nothing: records left out of the top tier still train at the lower tiers.
"""

from __future__ import annotations

from collections import Counter

from qwenimage.curate.balance import category_quotas, stable_rank, water_fill
from qwenimage.curate.buckets import eligible, nearest_bucket, tier_buckets
from qwenimage.curate.config import CurateConfig
from qwenimage.curate.record import Record
from qwenimage.curate.tokfreq import token_weights


def rank_value(record: Record, rank_by: list[str]) -> float:
    """The first score of `rank_by` ('stage.name') the record has; higher is better."""
    for key in rank_by:
        stage, _, name = key.partition(".")
        value = record.scores.get(stage, {}).get(name)
        if isinstance(value, (int, float)):
            return float(value)
    return 0.0


def assign_buckets(records: list[Record], config: CurateConfig) -> None:
    """labels['buckets'] = {tier: [w, h]} for every tier the image fills (the lowest tier at least); an
    image S5 found below its high-resolution floor gets no tier at or above that floor."""
    cfg = config.s7
    tiers = sorted(cfg.tiers)
    buckets = {tier: tier_buckets(tier, config.s1.aspect_ratios, cfg.bucket_multiple) for tier in tiers}
    for record in records:
        width, height = record.labels["size"]
        low = record.labels.get("high_resolution") is False
        fits = [t for t in tiers if eligible(width, height, t, cfg.min_area_fraction)
                and not (low and cfg.min_area_fraction * t * t >= config.s5.min_pixels)] or tiers[:1]
        record.labels["buckets"] = {str(t): list(nearest_bucket(width, height, buckets[t])[1]) for t in fits}


def hierarchical_select(records: list[Record], config: CurateConfig) -> list[Record]:
    """Category quotas at the S6 shares, then subcategories water-filled, best `rank_by` first."""
    by_category: dict[str, list[Record]] = {}
    for record in records:
        by_category.setdefault(record.labels.get("category", "Nature"), []).append(record)
    quotas = category_quotas({c: len(rs) for c, rs in by_category.items()}, config.s6.shares)
    chosen: list[Record] = []
    for category, members in sorted(by_category.items()):
        by_sub: dict[str, list[Record]] = {}
        for record in members:
            by_sub.setdefault(record.labels.get("subcategory", "other"), []).append(record)
        counts = water_fill({s: len(rs) for s, rs in by_sub.items()}, quotas.counts.get(category, 0))
        for sub, group in by_sub.items():
            group.sort(key=lambda r: (-rank_value(r, config.s7.rank_by), stable_rank(r.id, config.s6.seed)))
            chosen.extend(group[:counts[sub]])
    return chosen


def multiscale(records: list[Record], config: CurateConfig) -> dict:
    """Buckets, the top-tier selection and sampling weights for the records kept by S6, in place."""
    cfg = config.s7
    kept = [r for r in records if r.kept]
    assign_buckets(kept, config)
    top = str(max(cfg.tiers))
    candidates = [r for r in kept if top in r.labels["buckets"]]
    if cfg.hierarchical and len(cfg.tiers) > 1:
        selected = {r.id for r in hierarchical_select(candidates, config)}
        for record in candidates:
            if record.id not in selected:
                del record.labels["buckets"][top]
    texts = {r.id: r.labels["text"] for r in kept if r.labels.get("text")} if cfg.token_resampling else {}
    weights = token_weights(texts, {r.id: r.labels.get("category", "Nature") for r in kept},
                            cfg.token_alpha, cfg.max_weight) if texts else {}
    for record in kept:
        token_weight = weights.get(record.id, 1.0)
        record.labels["token_weight"] = token_weight
        record.labels["sample_weight"] = round(record.labels.get("balance_weight", 1.0) * token_weight, 4)
    return _report(kept, cfg.tiers)


def _report(kept: list[Record], tiers: list[int]) -> dict:
    buckets: dict[str, Counter] = {str(t): Counter() for t in sorted(tiers)}
    top_categories: Counter = Counter()
    top = str(max(tiers))
    for record in kept:
        for tier, (width, height) in record.labels["buckets"].items():
            buckets[tier][f"{width}x{height}"] += 1
        if top in record.labels["buckets"]:
            top_categories[f"{record.labels.get('category')}/{record.labels.get('subcategory')}"] += 1
    weighted = [r.labels["token_weight"] for r in kept if r.labels.get("text")]
    return {"buckets": {t: dict(sorted(c.items())) for t, c in buckets.items()},
            "top_tier": {"tier": int(top), "records": sum(top_categories.values()),
                         "by_subcategory": dict(sorted(top_categories.items()))},
            "token_weights": {"records": len(weighted), "max": max(weighted, default=1.0),
                              "min": min(weighted, default=1.0)}}
