"""Aspect-ratio buckets per resolution tier (about tier^2 pixels, sides a multiple of 16) and which tiers
an image is large enough for."""

from __future__ import annotations

import math


def parse_ratio(text: str) -> float:
    width, sep, height = text.partition(":")
    try:
        value = float(width) / float(height)
    except (ValueError, ZeroDivisionError):
        value = 0.0
    if not sep or value <= 0:
        raise ValueError(f"aspect ratio {text!r} is not W:H")
    return value


def nearest_ratio(width: int, height: int, ratios: list[str]) -> tuple[str, float]:
    """(the allowed ratio closest to width/height, |ln| distance to it)."""
    log_ratio = math.log(width / height)
    name = min(ratios, key=lambda r: abs(log_ratio - math.log(parse_ratio(r))))
    return name, abs(log_ratio - math.log(parse_ratio(name)))


def bucket_size(ratio: float, tier: int, multiple: int) -> tuple[int, int]:
    """(width, height) with width / height close to `ratio` and about tier^2 pixels, multiples of `multiple`."""
    width = math.sqrt(tier * tier * ratio)
    return (max(multiple, round(width / multiple) * multiple),
            max(multiple, round(width / ratio / multiple) * multiple))


def tier_buckets(tier: int, ratios: list[str], multiple: int) -> dict[str, tuple[int, int]]:
    return {name: bucket_size(parse_ratio(name), tier, multiple) for name in ratios}


def nearest_bucket(width: int, height: int, buckets: dict[str, tuple[int, int]]) -> tuple[str, tuple[int, int]]:
    """The bucket whose aspect ratio is closest (in log space) to width / height."""
    log_ratio = math.log(width / height)
    name = min(buckets, key=lambda n: (abs(log_ratio - math.log(buckets[n][0] / buckets[n][1])), n))
    return name, buckets[name]


def eligible(width: int, height: int, tier: int, min_area_fraction: float) -> bool:
    return width * height >= min_area_fraction * tier * tier
