"""S6 balance and S7 multi-scale: shares within 1 point of the targets with enough supply, the shortfall
report, order independence, subcategory water-filling, buckets and token-frequency weights."""

import random

import pytest

from qwenimage.curate.balance import category_quotas, water_fill
from qwenimage.curate.buckets import bucket_size, nearest_bucket, tier_buckets
from qwenimage.curate.config import CATEGORY_SHARES, CurateConfig
from qwenimage.curate.record import Record
from qwenimage.curate.stages.s6_balance import balance
from qwenimage.curate.stages.s7_multiscale import multiscale
from qwenimage.curate.tokfreq import token_weights


def records(supply: dict[str, int], seed: int = 0) -> list[Record]:
    rng = random.Random(seed)
    out = [Record(id=f"{category}/{i:05d}", source="test", labels={"category": category, "size": [1024, 768],
                                                                      "subcategory": rng.choice(["a", "b", "c"])})
           for category, count in supply.items() for i in range(count)]
    rng.shuffle(out)
    return out


@pytest.mark.parametrize("supply", [
    {"Nature": 2000, "Design": 900, "People": 700, "Synthetic": 160},
    {"Nature": 300, "Design": 400, "People": 500, "Synthetic": 600},
    {"Nature": 1200, "Design": 300, "People": 150, "Synthetic": 45},
])
def test_output_shares_are_within_one_point_of_the_targets(supply):
    batch = records(supply)
    report = balance(batch, CurateConfig())
    kept = [r for r in batch if r.kept]
    total = sum(CATEGORY_SHARES.values())
    for category, target in CATEGORY_SHARES.items():
        share = 100 * sum(r.labels["category"] == category for r in kept) / len(kept)
        assert abs(share - 100 * target / total) <= 1.0, (category, share)
    assert report["total"] == len(kept) and report["limiting_category"] in supply
    dropped = [r for r in batch if not r.kept]
    assert all(r.rejection.stage == "s6" and r.rejection.reason == "balance_downsampled" for r in dropped)


def test_selection_does_not_depend_on_input_order():
    supply = {"Nature": 500, "Design": 200, "People": 90, "Synthetic": 30}
    first, second = records(supply, seed=1), records(supply, seed=2)
    balance(first, CurateConfig())
    balance(second, CurateConfig())
    assert {r.id for r in first if r.kept} == {r.id for r in second if r.kept}


def test_shortfall_report_and_missing_categories():
    quotas = category_quotas({"Nature": 1000, "Design": 100, "People": 0, "Synthetic": 100}, CATEGORY_SHARES)
    assert quotas.limiting == "Design" and quotas.counts["People"] == 0
    assert quotas.shortfall["People"] == round(1200 * 13.21 / 100.62) and quotas.shortfall["Nature"] == 0
    assert quotas.shortfall["Design"] == round(1200 * 27.41 / 100.62) - 100
    upsampled = category_quotas({"Nature": 1000, "Design": 100}, {"Nature": 50, "Design": 50}, max_upsample=3)
    assert upsampled.counts == {"Nature": 300, "Design": 300}
    capped = category_quotas({"Nature": 1000, "Design": 1000}, {"Nature": 50, "Design": 50}, total=10)
    assert capped.counts == {"Nature": 5, "Design": 5}


def test_water_fill_spreads_evenly_and_keeps_small_groups_whole():
    assert water_fill({"a": 100, "b": 100, "c": 2}, 32) == {"a": 15, "b": 15, "c": 2}
    assert sum(water_fill({"a": 7, "b": 3}, 100).values()) == 10


def test_buckets_and_multiscale():
    assert bucket_size(1.0, 1328, 16) == (1328, 1328)
    buckets = tier_buckets(640, CurateConfig().s1.aspect_ratios, 16)
    assert all(w % 16 == 0 and h % 16 == 0 and 0.9 < w * h / 640**2 < 1.1 for w, h in buckets.values())
    assert nearest_bucket(1920, 1080, buckets)[0] == "16:9"
    batch = records({"Nature": 40, "Design": 20})
    for i, record in enumerate(batch):
        record.labels["size"] = [2000, 1500] if i % 2 else [800, 600]
    report = multiscale(batch, CurateConfig())
    assert all("640" in r.labels["buckets"] for r in batch)
    top = [r for r in batch if "1328" in r.labels["buckets"]]
    assert top and all(r.labels["size"] == [2000, 1500] for r in top)
    assert report["top_tier"]["records"] == len(top)


def test_token_weights_favour_rare_characters_and_keep_group_means():
    texts = {f"common{i}": "的 一 是" for i in range(20)} | {"rare": "饕 餮", "mixed": "的 饕"}
    groups = {key: "Design" for key in texts}
    weights = token_weights(texts, groups, alpha=0.5, max_weight=4.0)
    assert weights["rare"] > weights["mixed"] > weights["common0"]
    assert sum(weights.values()) / len(weights) == pytest.approx(1.0, abs=1e-3)
