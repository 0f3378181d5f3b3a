"""Exact and near-duplicate detection: SHA-256 of the bytes, and a 64-bit perceptual hash (pHash) with a
banded LSH index.

pHash: the grey image at 32x32, its 2-D DCT, the 8x8 lowest frequencies compared with their median. Resized
and recompressed copies stay within a few bits. The index splits each hash into `bands` pieces and only
compares hashes that share a piece exactly, so two hashes within `bands - 1` bits always meet (pigeonhole);
memory is one entry per band per kept image.

Which copy survives does not depend on input order or executor: the copy that passed the most per-image
checks (S1-S5: a clean photo beats a larger copy with a QR code), then the largest image, then the larger
file, then the smaller id is kept; the others are rejected naming it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np

HASH_BITS = 64


def phash64(grey_image: np.ndarray) -> int:
    """64-bit perceptual hash of a grey image [H, W] uint8."""
    small = cv2.resize(grey_image, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].ravel()  # [64], low frequencies (DC first)
    bits = low > np.median(low[1:])
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class NearDuplicateIndex:
    """Banded LSH over 64-bit hashes: `query` returns stored keys within `max_distance` bits."""

    def __init__(self, max_distance: int, bands: int):
        if not 1 <= bands <= HASH_BITS:
            raise ValueError(f"lsh bands must be within 1..{HASH_BITS}, got {bands}")
        self.max_distance = max_distance
        edges = [round(i * HASH_BITS / bands) for i in range(bands + 1)]  # band i: bits edges[i]..edges[i+1]
        self._masks = [(((1 << (hi - lo)) - 1) << (HASH_BITS - hi), band)
                       for band, (lo, hi) in enumerate(zip(edges, edges[1:]))]
        self._buckets: dict[tuple[int, int], list[tuple[str, int]]] = defaultdict(list)

    def add(self, key: str, value: int) -> None:
        for mask, band in self._masks:
            self._buckets[band, value & mask].append((key, value))

    def query(self, value: int) -> list[tuple[str, int]]:
        """(key, distance) of stored hashes within max_distance, nearest first (ties by key)."""
        found: dict[str, int] = {}
        for mask, band in self._masks:
            for key, other in self._buckets.get((band, value & mask), ()):
                if key not in found and (distance := hamming(value, other)) <= self.max_distance:
                    found[key] = distance
        return sorted(found.items(), key=lambda item: (item[1], item[0]))


@dataclass(frozen=True)
class HashedImage:
    id: str
    sha256: str
    phash: int
    pixels: int  # width x height of the original
    file_bytes: int
    stages_passed: int = 0  # per-image stages passed (S1-S5): the first preference

    def preference(self) -> tuple:
        """Sort key: the copy to keep first."""
        return -self.stages_passed, -self.pixels, -self.file_bytes, self.id


def find_duplicates(images: list[HashedImage], max_distance: int, bands: int) -> dict[str, tuple[str, str, int]]:
    """id -> (reason, id of the copy kept, pHash distance) for every duplicate; reason is
    duplicate_exact or duplicate_near."""
    index = NearDuplicateIndex(max_distance, bands)
    by_sha: dict[str, str] = {}
    duplicates: dict[str, tuple[str, str, int]] = {}
    for image in sorted(images, key=HashedImage.preference):
        if image.sha256 in by_sha:
            duplicates[image.id] = ("duplicate_exact", by_sha[image.sha256], 0)
            continue
        by_sha[image.sha256] = image.id
        near = index.query(image.phash)
        if near:
            duplicates[image.id] = ("duplicate_near", near[0][0], near[0][1])
            continue
        index.add(image.id, image.phash)
    return duplicates
