"""Image-quality scores with OpenCV and numpy: pure functions of pixel arrays (no models).

Input: `rgb` [H, W, 3] uint8 or `grey` [H, W] uint8. Values are comparable across images only at the same
scale, so callers measure on a copy resized to a fixed area (`decode.resize_to_area`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
SATURATED = 242  # HSV saturation >= 0.95 (of 255)
DARK, BRIGHT = 5, 250  # grey levels counted as clipped shadows / highlights


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # [H, W] uint8, Rec. 601 luma


def clarity(grey_image: np.ndarray) -> float:
    """Variance of the Laplacian: low for blurred images."""
    return float(cv2.Laplacian(grey_image, cv2.CV_32F).var())


def mean_luma(grey_image: np.ndarray) -> float:
    """Mean brightness in [0, 1]."""
    return float(grey_image.mean()) / 255.0


def saturation(rgb: np.ndarray) -> tuple[float, float]:
    """(mean HSV saturation in [0, 1], share of pixels with saturation >= 0.95 that are not near black)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # [H, W, 3], S and V in 0..255
    sat, value = hsv[..., 1], hsv[..., 2]
    return float(sat.mean()) / 255.0, float(((sat >= SATURATED) & (value >= 40)).mean())


def rgb_entropy(rgb: np.ndarray) -> float:
    """Mean Shannon entropy (bits, 0..8) of the R, G and B histograms: low for large uniform areas."""
    total = 0.0
    for channel in range(3):
        counts = np.bincount(rgb[..., channel].ravel(), minlength=256).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        total += float(-(p * np.log2(p)).sum())
    return total / 3.0


def noise_sigma(grey_image: np.ndarray) -> float:
    """Immerkaer's fast noise estimate (grey levels): high for noisy or overly fine-textured images."""
    height, width = grey_image.shape
    if height < 3 or width < 3:
        return 0.0
    response = cv2.filter2D(grey_image.astype(np.float32), -1, _NOISE_KERNEL)[1:-1, 1:-1]
    return float(np.abs(response).sum() * math.sqrt(math.pi / 2) / (6 * (width - 2) * (height - 2)))


def blockiness(grey_image: np.ndarray, block: int = 8) -> float:
    """JPEG blocking: mean gradient across block borders / mean gradient elsewhere (about 1 when clean)."""
    g = grey_image.astype(np.float32)
    dh, dv = np.abs(np.diff(g, axis=1)), np.abs(np.diff(g, axis=0))  # [H, W-1], [H-1, W]
    if dh.shape[1] < 2 * block or dv.shape[0] < 2 * block:
        return 1.0
    border = dh[:, block - 1::block].mean() + dv[block - 1::block, :].mean()
    inside_h = (dh.sum() - dh[:, block - 1::block].sum()) / (dh.size - dh[:, block - 1::block].size)
    inside_v = (dv.sum() - dv[block - 1::block, :].sum()) / (dv.size - dv[block - 1::block, :].size)
    return float(border / (inside_h + inside_v + 1e-3))


def clipped_fractions(grey_image: np.ndarray) -> tuple[float, float]:
    """(share of pixels <= 5, share >= 250): crushed shadows, blown highlights."""
    return float((grey_image <= DARK).mean()), float((grey_image >= BRIGHT).mean())


def center_crop(array: np.ndarray, side: int) -> np.ndarray:
    """The central side x side crop (or the whole array if smaller), for native-resolution measures."""
    height, width = array.shape[:2]
    top, left = max(0, (height - side) // 2), max(0, (width - side) // 2)
    return array[top:top + side, left:left + side]
