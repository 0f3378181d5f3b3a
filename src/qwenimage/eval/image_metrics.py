"""Pixel metrics for edit consistency and VAE fidelity: PSNR, SSIM, colour difference and global shift.

Images are 8-bit RGB, [H, W, 3] uint8 arrays or PIL images. `keep` is a boolean [H, W] array of the
pixels a metric counts (for edits: the pixels outside the edited region); None counts every pixel.

- PSNR: 10 log10(255² / MSE) over the kept pixels and all three channels; inf when they are identical.
  `squared_error` returns the sums (total, count) so that a summary divides sums (pooled PSNR).
- SSIM: Wang et al. 2004 with the usual settings (11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
  population covariance), per RGB channel, through scikit-image; the per-pixel SSIM map is averaged over
  the kept pixels, without the 5-pixel image border scikit-image leaves out. Windows that straddle the
  edge of the kept area see the pixels beyond it: compare `outside_only(source, edited, mask)` with the
  source, so the region's content cannot leak into the score.
- Colour difference: mean CIEDE2000 ΔE (scikit-image, sRGB D65 -> CIELAB) over the kept pixels; about
  2.3 is a just-noticeable difference.
- Shift: phase correlation with a Gaussian low-pass on the normalised cross-power spectrum, so the
  correlation peak is a Gaussian whose sub-pixel centre a log-parabola fit finds (error ~0.03 px on
  natural images, where plain phase correlation is biased by ~0.15 px). Both images are weighted by a
  Hann window times the kept pixels, feathered: the edited region takes no part, and its outline, the
  same in both images, does not pull the estimate to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

SSIM_SIGMA = 1.5
SSIM_BORDER = 5  # scikit-image's crop for a Gaussian window of sigma 1.5 (radius int(3.5 * 1.5 + 0.5))
SHIFT_LOWPASS = 0.15  # cycles per pixel: sigma of the Gaussian weight on the cross-power spectrum
SHIFT_FEATHER = 4.0  # pixels: sigma of the soft edge of the kept area in the shift estimate


def as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """PIL image or array -> [H, W, 3] uint8."""
    array = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an RGB image [H, W, 3] uint8, got {array.dtype} array of shape {array.shape}")
    return array


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_rgb_array(a), as_rgb_array(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape[1]}x{a.shape[0]} and {b.shape[1]}x{b.shape[0]}")
    return a, b


def _keep(keep: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if keep is None:
        return np.ones(shape[:2], bool)
    if keep.shape != shape[:2]:
        raise ValueError(f"mask of shape {keep.shape} does not match the image shape {shape[:2]}")
    return keep.astype(bool)


def mask_to_region(mask: Image.Image | np.ndarray) -> np.ndarray:
    """An edit mask (white = edited; greyscale >= 0.5 counts) -> boolean region [H, W]."""
    grey = np.asarray(mask.convert("L")) if isinstance(mask, Image.Image) else np.asarray(mask)
    if grey.dtype == bool:
        return grey
    return grey.astype(np.float32) >= (128 if grey.dtype == np.uint8 else 0.5)


def outside_only(source, edited, region: np.ndarray | None) -> np.ndarray:
    """`edited` with the pixels of `region` taken from `source`: what an edit left outside its region."""
    source, edited = _pair(source, edited)
    if region is None:
        return edited
    return np.where(_keep(region, source.shape)[..., None], source, edited)          # [H, W, 3]


@dataclass(frozen=True)
class SquaredError:
    total: float  # sum of squared 8-bit differences
    count: int  # values counted (pixels x 3 channels)

    @property
    def psnr(self) -> float:
        """dB; inf for identical images, nan when nothing was counted."""
        if self.count == 0:
            return math.nan
        mse = self.total / self.count
        return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def squared_error(a, b, keep: np.ndarray | None = None) -> SquaredError:
    a, b = _pair(a, b)
    keep = _keep(keep, a.shape)
    diff = a[keep].astype(np.float64) - b[keep].astype(np.float64)                    # [N, 3]
    return SquaredError(float(np.sum(diff * diff)), int(diff.size))


def psnr(a, b, keep: np.ndarray | None = None) -> float:
    return squared_error(a, b, keep).psnr


def ssim(a, b, keep: np.ndarray | None = None) -> float:
    """Mean SSIM over the kept pixels (nan when none is kept away from the border)."""
    from skimage.metrics import structural_similarity

    a, b = _pair(a, b)
    if min(a.shape[:2]) < 2 * SSIM_BORDER + 1:
        raise ValueError(f"SSIM needs images of at least {2 * SSIM_BORDER + 1} px a side, "
                         f"got {a.shape[1]}x{a.shape[0]}")
    _, full = structural_similarity(a, b, channel_axis=2, data_range=255, gaussian_weights=True, sigma=SSIM_SIGMA,
                                    use_sample_covariance=False, full=True)                # [H, W, 3]
    counted = _keep(keep, a.shape).copy()
    counted[:SSIM_BORDER], counted[-SSIM_BORDER:] = False, False
    counted[:, :SSIM_BORDER], counted[:, -SSIM_BORDER:] = False, False
    return float(full.mean(axis=2)[counted].mean()) if counted.any() else math.nan


def delta_e(a, b, keep: np.ndarray | None = None) -> float:
    """Mean CIEDE2000 colour difference over the kept pixels (nan when none is kept)."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    a, b = _pair(a, b)
    keep = _keep(keep, a.shape)
    if not keep.any():
        return math.nan
    lab_a, lab_b = rgb2lab(a[keep][None]), rgb2lab(b[keep][None])                     # [1, N, 3]
    return float(deltaE_ciede2000(lab_a, lab_b).mean())


@dataclass(frozen=True)
class Shift:
    dx: float  # pixels; positive: the second image's content lies to the right of the first's
    dy: float  # pixels; positive: further down
    peak: float  # height of the correlation peak, ~1 for a clean translation, ~0 for unrelated images

    @property
    def magnitude(self) -> float:
        return math.hypot(self.dx, self.dy)


def _log_parabola(before: float, at: float, after: float) -> float:
    """Sub-sample offset of the maximum of a Gaussian sampled at -1, 0, +1."""
    lb, la, lf = (math.log(max(v, 1e-12)) for v in (before, at, after))
    curvature = lb - 2 * la + lf
    return 0.5 * (lb - lf) / curvature if curvature < 0 else 0.0


def shift_weight(keep: np.ndarray | None, shape: tuple[int, int], feather: float = SHIFT_FEATHER) -> np.ndarray:
    """[H, W] weight of each pixel in the shift estimate: a Hann window, times the kept pixels with their edge
    feathered (Gaussian), so neither the image border nor the region's outline correlates with itself."""
    import cv2

    weight = np.outer(np.hanning(shape[0]), np.hanning(shape[1]))                       # [H, W]
    if keep is None:
        return weight
    kept = _keep(keep, shape).astype(np.float32)
    return weight * cv2.GaussianBlur(kept, (0, 0), feather) * kept


def phase_shift(a, b, keep: np.ndarray | None = None, lowpass: float = SHIFT_LOWPASS) -> Shift:
    """Global translation of `b` relative to `a`, measured on the kept pixels (see the module notes)."""
    a, b = _pair(a, b)
    grey_a, grey_b = a.astype(np.float64).mean(axis=2), b.astype(np.float64).mean(axis=2)  # [H, W]
    height, width = grey_a.shape
    window = shift_weight(keep, (height, width))                                     # [H, W]
    total = max(float(window.sum()), 1e-12)
    spec_a = np.fft.fft2((grey_a - (grey_a * window).sum() / total) * window)
    spec_b = np.fft.fft2((grey_b - (grey_b * window).sum() / total) * window)
    cross = spec_b * np.conj(spec_a)
    magnitude = np.abs(cross)
    cross = np.where(magnitude > 1e-9 * max(magnitude.max(), 1e-300), cross / np.maximum(magnitude, 1e-300), 0)
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :]
    weight = np.exp(-(fx ** 2 + fy ** 2) / (2 * lowpass ** 2))                     # [H, W]
    surface = np.fft.ifft2(cross * weight).real                                      # [H, W]
    py, px = np.unravel_index(int(np.argmax(surface)), surface.shape)
    y = py + _log_parabola(surface[(py - 1) % height, px], surface[py, px], surface[(py + 1) % height, px])
    x = px + _log_parabola(surface[py, (px - 1) % width], surface[py, px], surface[py, (px + 1) % width])
    peak = float(surface[py, px] * surface.size / weight.sum())                      # 1 for a pure translation
    x, y = (x - width if x > width / 2 else x), (y - height if y > height / 2 else y)
    return Shift(round(float(x), 6) + 0.0, round(float(y), 6) + 0.0, peak)          # 1e-6 px, no -0.0: no float dust
