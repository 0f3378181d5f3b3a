"""Putting a flat medium into a scene: placement quad, perspective warp, lighting, drop shadow, and the
warped positions of text boxes.

The medium is warped with premultiplied alpha so its edges blend without dark fringes. Placement keeps
the whole quad inside the canvas, so every text box stays inside the image.
"""

from __future__ import annotations

import cv2
import numpy as np

from qwenimage.synth.sample import Box


def random_quad(rng: np.random.Generator, medium_size: tuple[int, int], canvas: tuple[int, int],
                max_rotation: float = 6.0, max_tilt: float = 0.05) -> np.ndarray:
    """[4, 2] float32 corners (TL, TR, BR, BL) of the medium in the canvas: rotated, with a mild
    perspective (each corner moved by up to `max_tilt` of the medium size), inside the canvas."""
    (mw, mh), (width, height) = medium_size, canvas
    corners = np.array([[0, 0], [mw, 0], [mw, mh], [0, mh]], np.float32) - [mw / 2, mh / 2]
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    corners = corners @ rotation.T + rng.uniform(-max_tilt, max_tilt, (4, 2)).astype(np.float32) * [mw, mh]
    span = corners.max(axis=0) - corners.min(axis=0)
    fit = min(1.0, 0.96 * width / span[0], 0.96 * height / span[1])
    corners *= fit
    low, high = -corners.min(axis=0) + 2, np.array([width, height], np.float32) - corners.max(axis=0) - 2
    center = rng.uniform(low, np.maximum(low, high))
    return (corners + center).astype(np.float32)


def homography(medium_size: tuple[int, int], quad: np.ndarray) -> np.ndarray:
    mw, mh = medium_size
    source = np.array([[0, 0], [mw, 0], [mw, mh], [0, mh]], np.float32)
    return cv2.getPerspectiveTransform(source, quad.astype(np.float32))


def light(rng: np.random.Generator, rgba: np.ndarray, strength: float = 0.12) -> np.ndarray:
    """Directional shading: brightness ramps by +-`strength` across the medium, with a slight warm/cool tint."""
    h, w = rgba.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (xs / w - 0.5) * np.cos(angle) + (ys / h - 0.5) * np.sin(angle)
    gain = 1.0 + 2 * strength * ramp * rng.uniform(0.5, 1.0)
    tint = 1.0 + rng.uniform(-0.03, 0.03, 3).astype(np.float32)
    out = rgba.astype(np.float32)
    out[..., :3] = np.clip(out[..., :3] * gain[..., None] * tint, 0, 255)
    return out.astype(np.uint8)


def composite(rng: np.random.Generator, scene: np.ndarray, rgba: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Warp `rgba` by `matrix` onto `scene` with a soft drop shadow; returns [H, W, 3] uint8."""
    height, width = scene.shape[:2]
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    premultiplied = np.concatenate([rgba[..., :3].astype(np.float32) * alpha, alpha], axis=2)
    warped = cv2.warpPerspective(premultiplied, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    coverage = warped[..., 3:4]
    sigma = max(1.0, min(width, height) * rng.uniform(0.008, 0.025))
    shift = np.float32([[1, 0, rng.uniform(-1, 1) * sigma * 1.5], [0, 1, rng.uniform(0.3, 1) * sigma * 1.5]])
    shadow = cv2.GaussianBlur(cv2.warpAffine(coverage[..., 0], shift, (width, height)), (0, 0), sigma)
    base = scene.astype(np.float32) * (1.0 - rng.uniform(0.3, 0.55) * shadow[..., None])
    out = base * (1.0 - coverage) + warped[..., :3]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def warp_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float32), matrix).reshape(-1, 2)


def warp_box(box: Box, matrix: np.ndarray, canvas: tuple[int, int]) -> tuple[Box, list[list[float]]]:
    """Axis-aligned bounds (clipped to the canvas) and the quad (TL, TR, BR, BL) of a warped box."""
    x0, y0, x1, y1 = box
    quad = warp_points(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32), matrix)
    width, height = canvas
    low, high = np.floor(quad.min(axis=0)), np.ceil(quad.max(axis=0))
    bounds = (int(max(low[0], 0)), int(max(low[1], 0)), int(min(high[0], width)), int(min(high[1], height)))
    return bounds, [[round(float(x), 1), round(float(y), 1)] for x, y in quad]
