"""S6 balance and S7 multi-scale: the three balancing modes (weights keeps every record and its weighted
shares hit the targets, upsample repeats scarce categories up to the cap and drops nothing, downsample hits
the targets by dropping), the shortfall report, order independence, subcategory water-filling, buckets and
token-frequency weights."""

import random

import pytest

from qwenimage.curate.balance import category_quotas, water_fill
from qwenimage.curate.buckets import bucket_size, nearest_bucket, tier_buckets
from qwenimage.curate.config import CATEGORY_SHARES, CurateConfig
from qwenimage.curate.record import Record
from qwenimage.curate.stages.s6_balance import achieved_shares, balance
from qwenimage.curate.stages.s7_multiscale import multiscale
from qwenimage.curate.tokfreq import token_weights


def records(supply: dict[str, int], seed: int = 0) -> list[Record]:
    rng = random.Random(seed)
    out = [Record(id=f"{category}/{i:05d}", source="test", labels={"category": category, "size": [1024, 768],
                                                                      "subcategory": rng.choice(["a", "b", "c"])})
           for category, count in supply.items() for i in range(count)]
    rng.shuffle(out)
    return out


def config_with(**s6) -> CurateConfig:
    config = CurateConfig()
    for key, value in s6.items():
        setattr(config.s6, key, value)
    return config


def stream_shares(batch: list[Record]) -> dict[str, float]:
    """Category shares (percent) of a stream that samples each kept record by weight, with its copies."""
    amounts: dict[str, float] = {}
    for record in (r for r in batch if r.kept):
        amount = record.labels.get("sample_weight", record.labels["balance_weight"]) * record.labels["repeat"]
        amounts[record.labels["category"]] = amounts.get(record.labels["category"], 0.0) + amount
    return {c: 100 * v / sum(amounts.values()) for c, v in amounts.items()}


@pytest.mark.parametrize("supply", [
    {"Nature": 239, "People": 1, "Design": 30, "Synthetic": 24},  # one People photo: nothing is thrown away
    {"Nature": 300, "Design": 400, "People": 500, "Synthetic": 600},
    {"Nature": 1200, "Design": 300, "People": 150, "Synthetic": 45},
])
def test_weights_keep_every_record_and_give_the_stream_the_target_shares(supply):
    batch = records(supply)
    report = balance(batch, CurateConfig())  # the default mode
    assert report["mode"] == "weights" and report["dropped"] == 0 and all(r.kept for r in batch)
    multiscale(batch, CurateConfig())  # token weights multiply in; S7 keeps each category's total
    total = sum(CATEGORY_SHARES.values())
    shares = stream_shares(batch)
    for category, target in CATEGORY_SHARES.items():
        assert abs(shares[category] - 100 * target / total) <= 1.0, (category, shares)
    assert achieved_shares(batch) == pytest.approx(shares, abs=0.01)
    weights = [r.labels["balance_weight"] for r in batch]
    assert sum(weights) / len(weights) == pytest.approx(1.0, abs=1e-3)


def test_weights_renormalise_over_the_categories_present():
    batch = records({"Nature": 50, "Synthetic": 50})
    balance(batch, CurateConfig())
    shares = stream_shares(batch)
    assert shares["Nature"] == pytest.approx(100 * 55 / 60, abs=0.01) and set(shares) == {"Nature", "Synthetic"}


def test_upsample_repeats_scarce_categories_up_to_the_cap_and_drops_nothing():
    supply = {"Nature": 550, "Design": 100, "People": 132, "Synthetic": 10}
    batch = records(supply)
    report = balance(batch, config_with(mode="upsample", max_upsample=3.0))
    assert report["dropped"] == 0 and all(r.kept for r in batch)
    copies = {c: sum(r.labels["repeat"] for r in batch if r.labels["category"] == c) for c in supply}
    assert copies == report["written"]
    assert copies["Nature"] == 550 and copies["People"] == 132  # at (or above) their target: written once
    assert copies["Design"] == 274 and copies["Synthetic"] == 30  # 27.41% of 1000 wanted; Synthetic hits 3x
    assert all(1 <= r.labels["repeat"] <= 3 for r in batch)
    design = [r.labels["repeat"] for r in batch if r.labels["category"] == "Design"]
    assert max(design) - min(design) <= 1  # spread evenly


@pytest.mark.parametrize("supply", [
    {"Nature": 2000, "Design": 900, "People": 700, "Synthetic": 160},
    {"Nature": 300, "Design": 400, "People": 500, "Synthetic": 600},
    {"Nature": 1200, "Design": 300, "People": 150, "Synthetic": 45},
])
def test_downsampled_shares_are_within_one_point_of_the_targets(supply):
    batch = records(supply)
    report = balance(batch, config_with(mode="downsample"))
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
    balance(first, config_with(mode="downsample"))
    balance(second, config_with(mode="downsample"))
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
