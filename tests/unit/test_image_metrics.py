"""Pixel metrics: PSNR / SSIM against scikit-image, masks, CIEDE2000 colour drift, sub-pixel phase-correlation shift."""

import math

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from qwenimage.eval import image_metrics as im

BIG = skimage.data.astronaut()  # [512, 512, 3] uint8: texture everywhere
CROP = (slice(150, 278), slice(150, 278))  # a 128x128 window away from the borders


def shifted(dx: float, dy: float) -> np.ndarray:
    """The crop of the photo translated by (dx, dy) pixels (content moves right/down for positive values)."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(BIG, matrix, BIG.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return moved[CROP]


def test_integer_shift_by_roll_is_measured_within_a_tenth_of_a_pixel():
    image = BIG[CROP]
    shift = im.phase_shift(image, np.roll(image, 3, axis=1))
    assert abs(shift.dx - 3.0) < 0.1 and abs(shift.dy) < 0.1
    shift = im.phase_shift(image, np.roll(image, -3, axis=0))
    assert abs(shift.dy + 3.0) < 0.1 and abs(shift.dx) < 0.1


@pytest.mark.parametrize("dx, dy", [(3.0, 0.0), (2.5, 0.0), (-1.25, 0.75), (0.3, -1.7)])
def test_subpixel_shift_is_measured_within_a_tenth_of_a_pixel(dx, dy):
    shift = im.phase_shift(BIG[CROP], shifted(dx, dy))
    assert abs(shift.dx - dx) < 0.1 and abs(shift.dy - dy) < 0.1, shift
    assert shift.peak > 0.5
    assert math.isclose(shift.magnitude, math.hypot(shift.dx, shift.dy))


def test_identical_images_have_no_shift_and_unrelated_ones_a_low_peak():
    image = BIG[CROP]
    assert im.phase_shift(image, image.copy()) == im.Shift(0.0, 0.0, im.phase_shift(image, image).peak)
    other = skimage.data.coffee()[:128, :128]
    assert im.phase_shift(image, other).peak < 0.3 < im.phase_shift(image, image).peak


def test_psnr_and_ssim_match_scikit_image():
    rng = np.random.default_rng(0)
    a = BIG[CROP]
    b = np.clip(a.astype(np.int16) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert im.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), rel=1e-9)
    reference = structural_similarity(a, b, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
    assert im.ssim(a, b) == pytest.approx(reference, rel=1e-9)
    keep = np.zeros(a.shape[:2], bool)
    keep[:, :50] = True
    assert im.psnr(a, b, keep) == pytest.approx(peak_signal_noise_ratio(a[keep], b[keep], data_range=255), rel=1e-9)


def test_identical_images_score_perfectly():
    image = BIG[CROP]
    assert im.psnr(image, image) == math.inf
    assert im.ssim(image, image) == 1.0
    assert im.delta_e(image, image) == 0.0


def test_an_edit_confined_to_the_mask_is_invisible_outside_it():
    source = BIG[CROP]
    edited = source.copy()
    region = np.zeros(source.shape[:2], bool)
    region[40:80, 30:100] = True
    edited[region] = 255 - edited[region]  # a strong change, inside the region only
    kept = im.outside_only(source, edited, region)
    assert im.psnr(source, kept, ~region) == math.inf
    assert im.ssim(source, kept, ~region) == 1.0
    assert im.delta_e(source, kept, ~region) == 0.0
    assert im.psnr(source, edited) < 20 and im.ssim(source, edited) < 0.95  # seen when the mask is ignored


def test_a_global_colour_change_gives_a_positive_colour_difference():
    source = BIG[CROP]
    warmer = np.clip(source.astype(np.int16) + [25, 0, -25], 0, 255).astype(np.uint8)
    drift = im.delta_e(source, warmer)
    assert drift > 2.3  # above a just-noticeable difference
    assert im.delta_e(warmer, source) == pytest.approx(drift, rel=1e-6)  # CIEDE2000 is symmetric
    assert im.delta_e(source, np.clip(source.astype(np.int16) + [5, 0, -5], 0, 255).astype(np.uint8)) < drift


def test_mask_reading_and_pooled_counts():
    grey = np.array([[0, 127], [128, 255]], np.uint8)
    assert im.mask_to_region(grey).tolist() == [[False, False], [True, True]]
    image = BIG[CROP]
    nothing = im.squared_error(image, image, np.zeros(image.shape[:2], bool))
    assert nothing.count == 0 and math.isnan(nothing.psnr)
    assert math.isnan(im.delta_e(image, image, np.zeros(image.shape[:2], bool)))


def test_bad_inputs_name_the_sizes():
    with pytest.raises(ValueError, match="128x128 and 64x64"):
        im.psnr(BIG[CROP], BIG[:64, :64])
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\)"):
        im.ssim(BIG[CROP], BIG[CROP], np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="uint8"):
        im.psnr(BIG[CROP].astype(np.float32), BIG[CROP])
