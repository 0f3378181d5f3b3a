"""Image-quality scores and perceptual deduplication: properties on real photos (scikit-image samples)."""

import io
import random

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from qwenimage.curate import metrics
from qwenimage.curate.decode import decode, resize_to_area
from qwenimage.curate.dedup import HashedImage, NearDuplicateIndex, find_duplicates, hamming, phash64
from qwenimage.images import ImageError


def jpeg(rgb, quality):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def test_quality_scores_move_the_right_way():
    photo = skdata.astronaut()
    grey = metrics.grey(photo)
    assert metrics.clarity(metrics.grey(cv2.GaussianBlur(photo, (0, 0), 3))) < metrics.clarity(grey) / 10
    assert metrics.mean_luma(metrics.grey(photo // 10)) < 0.05 < metrics.mean_luma(grey)
    assert metrics.rgb_entropy(np.full((64, 64, 3), 7, np.uint8)) == 0.0 and metrics.rgb_entropy(photo) > 6
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 30, photo.shape), 0, 255).astype(np.uint8)
    assert metrics.noise_sigma(metrics.grey(noisy)) > 3 * metrics.noise_sigma(grey)
    blocky = metrics.grey(decode(jpeg(photo, 5), 10**8).rgb)
    assert metrics.blockiness(blocky) > 1.8 > metrics.blockiness(metrics.grey(decode(jpeg(photo, 95), 10**8).rgb))
    mean_sat, saturated = metrics.saturation(photo)
    assert 0 < mean_sat < 1 and saturated < 0.1


def test_decode_applies_exif_orientation_and_refuses_bombs_and_truncation():
    photo = skdata.chelsea()  # 300 x 451
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(np.rot90(photo, 1).copy()).save(buffer, "JPEG", exif=exif)
    decoded = decode(buffer.getvalue(), 10**8)
    assert (decoded.width, decoded.height, decoded.orientation) == (451, 300, 6) and decoded.rgb.shape == (300, 451, 3)
    assert not decoded.plain
    with pytest.raises(ImageError, match="more than"):
        decode(jpeg(photo, 90), max_pixels=1000)
    data = jpeg(photo, 90)
    with pytest.raises(ImageError):
        decode(data[: len(data) // 2], 10**8)
    draft = decode(jpeg(skdata.retina(), 90), 10**8, draft_side=256)
    assert 256 <= min(draft.rgb.shape[:2]) < 1411 and draft.width == 1411


def test_phash_survives_resize_and_recompression_but_not_another_photo():
    photo = skdata.coffee()
    original = phash64(metrics.grey(photo))
    resized = decode(jpeg(resize_to_area(photo, 300), 40), 10**8).rgb
    assert hamming(original, phash64(metrics.grey(resized))) <= 4
    assert hamming(original, phash64(metrics.grey(skdata.astronaut()))) > 16


def test_lsh_index_finds_every_pair_within_the_guaranteed_distance():
    rng = random.Random(0)
    stored = [rng.getrandbits(64) for _ in range(300)]
    index = NearDuplicateIndex(max_distance=7, bands=8)
    for i, value in enumerate(stored):
        index.add(str(i), value)
    for _ in range(200):
        base = rng.choice(stored)
        query = base
        for bit in rng.sample(range(64), rng.randint(0, 7)):
            query ^= 1 << bit
        brute = sorted((str(i), hamming(query, v)) for i, v in enumerate(stored) if hamming(query, v) <= 7)
        assert sorted(index.query(query)) == brute


def test_duplicates_keep_the_largest_copy_whatever_the_input_order():
    images = [HashedImage("small", "a", 0b1011, 100, 10), HashedImage("big", "b", 0b1001, 400, 10),
              HashedImage("copy", "b", 0b1001, 400, 10), HashedImage("other", "c", 2**63 - 1, 50, 5)]
    for order in (images, images[::-1]):
        found = find_duplicates(order, max_distance=4, bands=8)
        assert found == {"copy": ("duplicate_exact", "big", 0), "small": ("duplicate_near", "big", 1)}
