"""Scenes behind compositional text: real photos (a user folder; by default the photos that ship inside
scikit-image) and procedurally drawn surfaces (brick wall, wooden table, concrete, tiles, night bokeh, sky).

A scene says where the medium is, for the caption: `where_en` fits "A sticky note <where_en> reads ...",
`where_zh` fits "<where_zh>有一张便利贴". A user photo may have a sidecar .txt: first line the English
phrase, second line the Chinese one; otherwise the file name is used ("kitchen_table.jpg" -> "over a photo
of kitchen table").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from qwenimage.synth.backgrounds import smooth_noise

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
# scikit-image photos with no text in them (the motorcycles carry a brand name, `camera` a counter).
BUILTIN_PHOTOS = {
    "astronaut": ("over a photo of an astronaut", "一张宇航员的照片上"),
    "chelsea": ("over a photo of a tabby cat", "一张虎斑猫的照片上"),
    "coffee": ("over a photo of a cup of coffee", "一张咖啡杯的照片上"),
    "rocket": ("over a photo of a rocket on its launch pad", "一张火箭发射台的照片上"),
    "hubble_deep_field": ("against a starry deep-space sky", "星空背景上"),
    "brick": ("against a grey brick wall", "灰色砖墙前"),
    "grass": ("on a patch of grass", "草地上"),
    "gravel": ("on gravel ground", "碎石地面上"),
    "moon": ("on the grey lunar surface", "灰色的月球表面上"),
}


@dataclass
class Scene:
    image: np.ndarray  # [H, W, 3] uint8
    where_en: str
    where_zh: str
    source: str  # "photo:<name>" or "procedural:<kind>"


@dataclass(frozen=True)
class PhotoEntry:
    load: Callable[[], np.ndarray]
    where_en: str
    where_zh: str
    name: str


def _skimage_loader(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        image = getattr(skimage.data, name)()
        return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    return functools.cache(load)


def _file_loader(path: Path) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from qwenimage.images import load_image

        return np.asarray(load_image(path))
    return load


def _sidecar(path: Path) -> tuple[str, str]:
    note = path.with_suffix(".txt")
    if note.is_file():
        lines = [line.strip() for line in note.read_text(encoding="utf-8").splitlines() if line.strip()]
        if lines:
            return lines[0], lines[1] if len(lines) > 1 else lines[0]
    subject = " ".join(part for part in path.stem.replace("-", "_").split("_") if not part.isdigit())
    return f"over a photo of {subject}", f"一张{subject}的照片上"


@functools.cache
def photo_entries(folder: str | None, builtin: bool) -> tuple[PhotoEntry, ...]:
    entries = []
    if builtin:
        try:
            import skimage.data  # noqa: F401  (ships its photos inside the wheel)
            entries = [PhotoEntry(_skimage_loader(name), en, zh, name) for name, (en, zh) in BUILTIN_PHOTOS.items()]
        except ImportError:
            pass
    if folder:
        files = sorted(p for p in Path(folder).expanduser().rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
        entries += [PhotoEntry(_file_loader(p), *_sidecar(p), str(p)) for p in files]
    return tuple(entries)


def crop_to(rng: np.random.Generator, image: np.ndarray, width: int, height: int) -> np.ndarray:
    """A random crop of the photo with the canvas' aspect ratio (at least 60% of the largest), resized."""
    h, w = image.shape[:2]
    scale = min(w / width, h / height) * rng.uniform(0.6, 1.0)
    cw, ch = max(1, int(width * scale)), max(1, int(height * scale))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = np.ascontiguousarray(image[y:y + ch, x:x + cw])
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA if scale > 1 else cv2.INTER_CUBIC)


def _tinted(rng: np.random.Generator, width: int, height: int, rgb, amplitude: float, cells: int) -> np.ndarray:
    noise = smooth_noise(rng, width, height, cells) * amplitude + rng.normal(0, amplitude / 3, (height, width))
    return np.clip(np.asarray(rgb, np.float32) + noise[..., None], 0, 255)


def brick_wall(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    mortar = rng.uniform(150, 200)
    image = _tinted(rng, width, height, (mortar, mortar * 0.97, mortar * 0.92), 10, 8)
    brick_h = int(height * rng.uniform(0.06, 0.1))
    brick_w = int(brick_h * rng.uniform(2.2, 3.0))
    base = np.array([rng.uniform(140, 180), rng.uniform(55, 85), rng.uniform(40, 60)])
    for row, top in enumerate(range(0, height, brick_h)):
        offset = (brick_w // 2) * (row % 2)
        for left in range(-offset, width, brick_w):
            color = np.clip(base + rng.normal(0, 12, 3), 0, 255)
            cv2.rectangle(image, (left + 2, top + 2), (left + brick_w - 3, top + brick_h - 3), color.tolist(), -1)
    return image


def wooden_table(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    warp = smooth_noise(rng, width, height, 4) * 18
    rings = np.sin((ys + warp) / rng.uniform(3, 7)) * 0.5 + 0.5
    base = np.array([rng.uniform(120, 170), rng.uniform(75, 105), rng.uniform(40, 60)], np.float32)
    shade = 0.8 + 0.2 * rings + smooth_noise(rng, width, height, 12) * 0.05
    return np.clip(base * shade[..., None], 0, 255)


def concrete(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    grey = rng.uniform(110, 180)
    return _tinted(rng, width, height, (grey, grey, grey * 0.98), 14, 10)


def tiles(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    tone = np.array([rng.uniform(170, 235) for _ in range(3)], np.float32)
    image = _tinted(rng, width, height, tone, 6, 6)
    step = int(min(width, height) * rng.uniform(0.12, 0.25))
    for pos in range(0, max(width, height), step):
        cv2.line(image, (pos, 0), (pos, height), (tone * 0.7).tolist(), 2)
        cv2.line(image, (0, pos), (width, pos), (tone * 0.7).tolist(), 2)
    return image


def night_bokeh(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    image = np.zeros((height, width, 3), np.float32) + rng.uniform(10, 35, 3)
    for _ in range(int(rng.integers(25, 60))):
        center = (int(rng.integers(width)), int(rng.integers(height)))
        color = rng.uniform(60, 255, 3).tolist()
        cv2.circle(image, center, int(rng.integers(8, max(9, width // 10))), color, -1)
    return cv2.GaussianBlur(image, (0, 0), min(width, height) / 60)


def sky(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    top, bottom = np.array([60, 120, 200], np.float32), np.array([170, 210, 240], np.float32)
    image = (1 - t) * top + t * bottom + np.zeros((1, width, 1), np.float32)
    clouds = np.clip(smooth_noise(rng, width, height, 5) + 0.5 * smooth_noise(rng, width, height, 12), 0, None)
    return np.clip(image + clouds[..., None] * 60, 0, 255)


PROCEDURAL = {
    "brick": (brick_wall, "against a red brick wall", "红砖墙前"),
    "wood": (wooden_table, "on a wooden tabletop", "木质桌面上"),
    "concrete": (concrete, "against a concrete wall", "水泥墙前"),
    "tiles": (tiles, "against a tiled wall", "瓷砖墙前"),
    "bokeh": (night_bokeh, "in front of blurred city lights at night", "夜晚模糊的城市灯光前"),
    "sky": (sky, "against a blue sky with clouds", "蓝天白云下"),
}


def random_scene(rng: np.random.Generator, width: int, height: int, photos: tuple[PhotoEntry, ...],
                 photo_share: float = 0.6) -> Scene:
    if photos and rng.random() < photo_share:
        entry = photos[int(rng.integers(len(photos)))]
        return Scene(crop_to(rng, entry.load(), width, height), entry.where_en, entry.where_zh, f"photo:{entry.name}")
    kind = sorted(PROCEDURAL)[int(rng.integers(len(PROCEDURAL)))]
    make, where_en, where_zh = PROCEDURAL[kind]
    return Scene(make(rng, width, height).astype(np.uint8), where_en, where_zh, f"procedural:{kind}")
