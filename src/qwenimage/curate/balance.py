"""Resampling to target shares: per-category quotas, order-independent selection, subcategory
water-filling, and the shortfall report. Pure functions of counts and ids."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field


def stable_rank(record_id: str, seed: int) -> str:
    """A pseudo-random but reproducible order key: the same ids sort the same way on every executor."""
    return hashlib.sha1(f"{seed}:{record_id}".encode("utf-8")).hexdigest()


def largest_remainder(weights: dict[str, float], total: int, caps: dict[str, int]) -> dict[str, int]:
    """Integers proportional to `weights` summing to `total` (or less where caps bind), none above its cap."""
    norm = sum(weights.values())
    if norm <= 0 or total <= 0:
        return {key: 0 for key in weights}
    exact = {key: total * w / norm for key, w in weights.items()}
    counts = {key: min(caps[key], math.floor(value)) for key, value in exact.items()}
    order = sorted(weights, key=lambda key: (-(exact[key] - math.floor(exact[key])), key))
    for key in order:
        if sum(counts.values()) >= total:
            break
        if counts[key] < caps[key]:
            counts[key] += 1
    return counts


@dataclass
class Quotas:
    counts: dict[str, int]  # records wanted per category (may exceed supply when upsampling)
    total: int
    limiting: str | None  # the category whose supply bounds the total
    shortfall: dict[str, int] = field(default_factory=dict)  # records missing to meet the reference total

    def to_json(self, supply: dict[str, int], shares: dict[str, float]) -> dict:
        return {"supply": supply, "target_shares": shares, "selected": self.counts, "total": self.total,
                "limiting_category": self.limiting, "shortfall": self.shortfall,
                "output_shares": {k: round(100.0 * v / self.total, 2) if self.total else 0.0
                                  for k, v in self.counts.items()}}


def category_quotas(supply: dict[str, int], shares: dict[str, float], max_upsample: float = 1.0,
                    total: int = 0) -> Quotas:
    """How many records of each category to keep so that they match `shares`.

    The total is the largest the supply allows (each category may repeat records up to `max_upsample`),
    or `total` if smaller. Categories without supply are left out and the others keep their relative
    shares; the shortfall says how many records each category lacks to reach the reference total (`total`,
    or all supplied records) at its target share.
    """
    wanted = {c: s for c, s in shares.items() if s > 0}
    norm = sum(wanted.values())
    present = {c: s / norm for c, s in wanted.items() if supply.get(c, 0) > 0}
    caps = {c: math.floor(supply.get(c, 0) * max_upsample) for c in present}
    if not present:
        return Quotas({c: 0 for c in wanted}, 0, None, {c: 0 for c in wanted})
    limiting = min(present, key=lambda c: (caps[c] / present[c], c))
    achievable = caps[limiting] / present[limiting]
    size = math.floor(min(achievable, total) if total > 0 else achievable + 1e-9)
    counts = largest_remainder(present, size, caps)
    reference = total if total > 0 else sum(supply.get(c, 0) for c in wanted)
    shortfall = {c: max(0, round(reference * s / norm) - math.floor(supply.get(c, 0) * max_upsample))
                 for c, s in wanted.items()}
    return Quotas({c: counts.get(c, 0) for c in wanted}, sum(counts.values()), limiting, shortfall)


def water_fill(supply: dict[str, int], quota: int) -> dict[str, int]:
    """Split `quota` over groups as evenly as their supply allows (small groups are kept whole, the rest
    share what is left equally); groups in name order get the odd leftovers."""
    counts = {key: 0 for key in supply}
    remaining, open_groups = min(quota, sum(supply.values())), sorted(k for k in supply if supply[k] > 0)
    while remaining > 0 and open_groups:
        share = max(1, remaining // len(open_groups))
        for key in list(open_groups):
            take = min(share, supply[key] - counts[key], remaining)
            counts[key] += take
            remaining -= take
            if counts[key] >= supply[key]:
                open_groups.remove(key)
            if remaining == 0:
                break
    return counts


def present_shares(supply: dict[str, int], shares: dict[str, float]) -> dict[str, float]:
    """The target shares of the categories that have records, normalised to sum 1 (a category without
    supply cannot be met: the others keep their relative shares)."""
    present = {c: s for c, s in shares.items() if s > 0 and supply.get(c, 0) > 0}
    norm = sum(present.values())
    return {c: s / norm for c, s in sorted(present.items())} if norm > 0 else {}


def category_weights(supply: dict[str, int], shares: dict[str, float]) -> dict[str, float]:
    """Per-record sampling weight of each category, so that a stream sampled by weight has the target shares:
    w_c = share_c * N / n_c over the N records of the wanted categories (mean weight 1). Categories with a
    zero or no target share get weight 0."""
    wanted = present_shares(supply, shares)
    total = sum(supply[c] for c in wanted)
    return {c: (wanted[c] * total / n if c in wanted else 0.0) for c, n in sorted(supply.items()) if n > 0}


def upsample_counts(supply: dict[str, int], shares: dict[str, float], max_upsample: float) -> dict[str, int]:
    """Copies to write per category: no record is dropped, scarce categories repeat (each record at most
    `max_upsample` times) towards the share they would have at the size the most abundant one sets."""
    wanted = present_shares(supply, shares)
    if not wanted:
        return {c: n for c, n in supply.items()}
    size = max(supply[c] / p for c, p in wanted.items())  # the total at which no category needs dropping
    counts = {c: min(max(supply[c], round(p * size)), math.floor(supply[c] * max_upsample))
              for c, p in wanted.items()}
    return {**{c: n for c, n in supply.items() if c not in wanted}, **counts}


def spread_copies(ids: list[str], copies: int, seed: int) -> dict[str, int]:
    """id -> how many times to write it, `copies` in all, as even as possible (the extra copies go to the
    ids first in stable_rank order)."""
    if not ids:
        return {}
    ordered = sorted(ids, key=lambda i: stable_rank(i, seed))
    base, extra = divmod(copies, len(ids))
    return {record_id: base + (rank < extra) for rank, record_id in enumerate(ordered)}


def shares_percent(amounts: dict[str, float]) -> dict[str, float]:
    total = sum(amounts.values())
    return {c: round(100.0 * v / total, 2) if total else 0.0 for c, v in sorted(amounts.items())}
