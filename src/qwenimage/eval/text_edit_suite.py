"""The `text-edit` suite: synthetic (source, edited) pairs with a known edited region, built with the synth engine.

Each pair is one scene (a photo or procedural surface) with a medium on it (shop sign, chalkboard, screen,
...) that carries one text; the edited image is the same scene with another text in the same font, size,
colour, warp and lighting. Everything but the text is drawn from the same random numbers, so the two
images differ only inside the region (the padded, warped bounds of both texts). The instruction asks for
the change: 'Change the text "OPEN" to "CLOSED"'.

    pairs = build_text_edit_pairs(TextEditSuiteConfig(n=8, size=512))
    write_suite(pairs, "suites/text-edit")      # ID.source.png, ID.edited.png, ID.mask.png, pairs.jsonl

Version 1, seed 1212: pair i is in language `languages[i % len(languages)]`, its word pair is drawn from a
list shuffled by the seed, and its scene from the generator seeded with (seed, i); the same config gives
the same images on the same machine (same fonts and photos).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from qwenimage.synth.colors import BY_NAME, pick_contrasting
from qwenimage.synth.compositional import medium_size
from qwenimage.synth.draw import draw_block
from qwenimage.synth.fonts import FontLibrary
from qwenimage.synth.layout import fit_block, place_block
from qwenimage.synth.media import MEDIA
from qwenimage.synth.sample import Box, Discard
from qwenimage.synth.scenes import photo_entries, random_scene
from qwenimage.synth.warp import composite, homography, light, random_quad, warp_box

SUITE_NAME = "text-edit"
SUITE_VERSION = 1
SUITE_SEED = 1212
MANIFEST = "pairs.jsonl"
MAX_ATTEMPTS = 20

EN_PAIRS = (
    ("OPEN", "CLOSED"), ("PUSH", "PULL"), ("SALE", "SOLD OUT"), ("HOT", "COLD"), ("STOP", "GO"),
    ("EXIT", "ENTRANCE"), ("YES", "NO"), ("DAY", "NIGHT"), ("SUMMER", "WINTER"), ("COFFEE", "TEA"),
    ("Monday", "Friday"), ("Welcome", "Goodbye"), ("NORTH", "SOUTH"), ("EAST", "WEST"), ("BUY", "SELL"),
    ("FAST", "SLOW"), ("FULL", "EMPTY"), ("BREAD", "CAKE"), ("MILK", "JUICE"), ("SMALL", "LARGE"),
    ("LOST", "FOUND"), ("START", "FINISH"), ("GOOD MORNING", "GOOD NIGHT"), ("NO PARKING", "NO SMOKING"),
    ("Happy Birthday", "Happy Holidays"), ("Kitchen", "Garden"), ("TICKETS", "TOILETS"), ("LIBRARY", "MUSEUM"),
    ("Apples", "Lemons"), ("RENT", "FOR SALE"), ("Room 12", "Room 48"), ("$5", "$9"),
)
ZH_PAIRS = (
    ("营业中", "休息中"), ("出口", "入口"), ("欢迎光临", "谢谢惠顾"), ("春天", "秋天"), ("早安", "晚安"),
    ("咖啡", "奶茶"), ("左转", "右转"), ("禁止停车", "禁止吸烟"), ("新年快乐", "生日快乐"), ("上海", "北京"),
    ("东门", "西门"), ("特价", "新品"), ("图书馆", "博物馆"), ("面包店", "水果店"), ("售票处", "洗手间"),
    ("八折", "五折"),
)
PAIRS = {"en": EN_PAIRS, "zh": ZH_PAIRS}
INSTRUCTIONS = {"en": 'Change the text "{old}" to "{new}"', "zh": "把文字“{old}”改为“{new}”"}
MEDIA_KEYS = ("shop_sign", "wooden_sign", "chalkboard", "whiteboard", "screen", "cardboard", "paper", "sticky_note")
PRINT_STYLES = ("bold", "sans", "serif")  # handwriting is left out: the ground truth must read back by OCR


@dataclass(frozen=True)
class TextEditSuiteConfig:
    n: int = 48
    size: int = 512  # square images, a multiple of 16 (the pipeline's token step)
    languages: tuple[str, ...] = ("en", "zh")
    seed: int = SUITE_SEED

    def __post_init__(self):
        object.__setattr__(self, "languages", tuple(self.languages))
        if self.n < 1:
            raise ValueError(f"text-edit suite: n = {self.n}, need at least 1 pair")
        if self.size < 128 or self.size % 16:
            raise ValueError(f"text-edit suite: size = {self.size}, need a multiple of 16 of at least 128")
        bad = [lang for lang in self.languages if lang not in PAIRS]
        if bad or not self.languages:
            raise ValueError(f"text-edit suite: languages {list(self.languages)}, choose from {sorted(PAIRS)}")


@dataclass
class TextEditPair:
    id: str
    source: Image.Image
    edited: Image.Image  # the ground truth
    region: np.ndarray  # [H, W] bool, True where the edit may change pixels
    box: Box  # bounds of the region, x1/y1 exclusive
    old_text: str
    new_text: str
    language: str
    meta: dict = field(default_factory=dict)  # scene, medium, font, size

    @property
    def instruction(self) -> str:
        return INSTRUCTIONS[self.language].format(old=self.old_text, new=self.new_text)

    def mask(self) -> Image.Image:
        return Image.fromarray(self.region.astype(np.uint8) * 255, "L")

    def manifest_row(self) -> dict:
        return {"id": self.id, "source": f"{self.id}.source.png", "edited": f"{self.id}.edited.png",
                "mask": f"{self.id}.mask.png", "old_text": self.old_text, "new_text": self.new_text,
                "region": list(self.box), "instruction": self.instruction, "language": self.language,
                "suite": SUITE_NAME, "version": SUITE_VERSION, **self.meta}


def suite_texts() -> frozenset[str]:
    """Every text of the suite's word pairs, lower-cased (both directions): training pairs leave them out."""
    return frozenset(text.lower() for pairs in PAIRS.values() for pair in pairs for text in pair)


def suite_words() -> frozenset[str]:
    """The lower-case Latin words of the suite's English texts ("good night" -> good, night)."""
    return frozenset(word for text in suite_texts() for word in re.findall(r"[a-z]+", text))


def word_pair(config: TextEditSuiteConfig, index: int) -> tuple[str, str, str]:
    """(language, old, new) of pair `index`: the seed shuffles each list and decides each pair's direction."""
    language = config.languages[index % len(config.languages)]
    pairs = PAIRS[language]
    order = np.random.default_rng([config.seed, len(pairs)]).permutation(len(pairs))
    turn = index // len(config.languages)
    old, new = pairs[int(order[turn % len(pairs)])]
    flip = np.random.default_rng([config.seed, index, 1]).random() < 0.5
    return (language, new, old) if flip else (language, old, new)


def _fitted_blocks(fonts: FontLibrary, face, texts: tuple[str, str], box: Box, floor: int, ceiling: int | None):
    """Both texts on one line at one size: the largest at which the wider of the two fits the box (and, when given,
    at most `ceiling` px)."""
    width, height = box[2] - box[0], box[3] - box[1]
    top = int(height * 0.8) if ceiling is None else min(int(height * 0.8), ceiling)
    sizes = (floor, max(floor, top))
    fitted = [fit_block(fonts, face, text, width, height, sizes, 1.2, max_lines=1) for text in texts]
    if any(block is None for block in fitted):
        raise Discard("text_too_long", f"{texts} do not fit {box} at {floor} px")
    size = min(block.size for block in fitted)
    return [fit_block(fonts, face, text, width, height, (size, size), 1.2, max_lines=1) for text in texts]


def _padded_union(boxes: list[Box], pad: int, limit: tuple[int, int]) -> Box:
    x0, y0 = min(b[0] for b in boxes) - pad, min(b[1] for b in boxes) - pad
    x1, y1 = max(b[2] for b in boxes) + pad, max(b[3] for b in boxes) + pad
    return (max(x0, 0), max(y0, 0), min(x1, limit[0]), min(y1, limit[1]))


def _face(rng: np.random.Generator, fonts: FontLibrary, text: str, faces: list | None):
    """The print face of a pair: one of the suite's print styles, or one of `faces` that covers `text`. The style
    is drawn either way, so the random numbers after it do not depend on `faces`."""
    style = PRINT_STYLES[int(rng.integers(len(PRINT_STYLES)))]
    if faces is None:
        return fonts.pick(rng, text, style)
    covering = [face for face in faces if not fonts.missing(face, text)]
    if not covering:
        raise Discard("missing_glyph", f"none of the fonts {[face.name for face in faces]} covers {text!r}")
    return covering[int(rng.integers(len(covering)))]


def render_pair(rng: np.random.Generator, size: int, old: str, new: str, fonts: FontLibrary, photos,
                recolor: bool = False, faces: list | None = None, max_font_size: int | None = None) -> dict:
    """Source and edited images of one scene, and the region where they may differ; may raise Discard.
    `recolor`: the edited text is drawn in another readable colour (meta names both), drawn last from `rng`,
    so the suite's pairs (recolor False) keep their random numbers. `faces`: the fonts to draw the texts in
    (default: any print face of the library). `max_font_size`: a ceiling on the glyph size in px (default: as
    large as the medium allows; the floor, 1/24 of the side, wins over it)."""
    scene = random_scene(rng, size, size, photos)
    kind = {k.key: k for k in MEDIA}[MEDIA_KEYS[int(rng.integers(len(MEDIA_KEYS)))]]
    mw, mh = medium_size(rng, kind, size, size)
    surface = kind.make(rng, mw, mh)
    face = _face(rng, fonts, old + new, faces)
    picked = pick_contrasting(rng, surface.tones, [BY_NAME[name] for name in surface.inks])
    if picked is None:
        raise Discard("low_contrast", surface.name_en)
    blocks = _fitted_blocks(fonts, face, (old, new), surface.text_box, floor=max(12, size // 24),
                            ceiling=max_font_size)
    light_seed, shadow_seed = (int(s) for s in rng.integers(2 ** 62, size=2))
    matrix = homography((mw, mh), random_quad(rng, (mw, mh), (size, size), 4.0, 0.04))
    inks = [picked, picked]
    if recolor:
        inks[1] = pick_contrasting(rng, surface.tones, exclude=[picked[0].en])
        if inks[1] is None:
            raise Discard("low_contrast", f"no second colour readable on {surface.name_en}")
    images, ink = [], []
    for block, (_, rgb) in zip(blocks, inks):
        rgba = Image.fromarray(surface.rgba.copy(), "RGBA")
        origins = place_block(block, fonts, surface.text_box, "center", "middle")
        lines, _ = draw_block(ImageDraw.Draw(rgba), fonts.font(face, block.size), block, origins, (*rgb, 255))
        ink += [line.box for line in lines]
        lit = light(np.random.default_rng(light_seed), np.asarray(rgba))
        images.append(composite(np.random.default_rng(shadow_seed), scene.image, lit, matrix))  # [H, W, 3]
    local = _padded_union(ink, max(2, blocks[0].size // 6), (mw, mh))
    box, _ = warp_box(local, matrix, (size, size))
    box = _padded_union([box], 2, (size, size))
    region = np.zeros((size, size), bool)
    region[box[1]:box[3], box[0]:box[2]] = True
    if np.any(np.any(images[0] != images[1], axis=2) & ~region):
        raise Discard("region_leak", "the texts changed pixels outside the region")
    meta = {"scene": scene.source, "medium": kind.key, "font": face.name, "font_size": blocks[0].size}
    if recolor:
        meta.update(old_color=inks[0][0].en, new_color=inks[1][0].en)
    return {"source": Image.fromarray(images[0]), "edited": Image.fromarray(images[1]), "region": region,
            "box": box, "meta": meta}


def build_pair(config: TextEditSuiteConfig, index: int, fonts: FontLibrary, photos) -> TextEditPair:
    language, old, new = word_pair(config, index)
    for attempt in range(MAX_ATTEMPTS):
        try:
            rendered = render_pair(np.random.default_rng([config.seed, index, 0, attempt]), config.size, old, new,
                                   fonts, photos)
            return TextEditPair(f"te-{index:04d}", old_text=old, new_text=new, language=language, **rendered)
        except Discard:
            continue
    raise ValueError(f"text-edit pair {index} ({old!r} -> {new!r}) failed {MAX_ATTEMPTS} renders at size "
                     f"{config.size}: try another size")


def build_text_edit_pairs(config: TextEditSuiteConfig, indices: range | None = None) -> list[TextEditPair]:
    fonts = FontLibrary.discover()
    photos = photo_entries(None, True)
    return [build_pair(config, index, fonts, photos) for index in (indices or range(config.n))]


def save_image(image: Image.Image, path: Path) -> None:
    """PNG through a temporary file and a rename: a killed job never leaves half an image."""
    tmp = path.with_name(path.name + ".tmp")
    image.save(tmp, format="PNG")
    tmp.replace(path)


def write_suite(pairs: list[TextEditPair], folder: str | Path) -> Path:
    """Write ID.source.png, ID.edited.png (ground truth), ID.mask.png and pairs.jsonl (last); returns the manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for pair in pairs:
        save_image(pair.source, folder / f"{pair.id}.source.png")
        save_image(pair.edited, folder / f"{pair.id}.edited.png")
        save_image(pair.mask(), folder / f"{pair.id}.mask.png")
    rows = [pair.manifest_row() for pair in pairs]
    manifest = folder / MANIFEST
    tmp = manifest.with_name(manifest.name + ".tmp")
    tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    tmp.replace(manifest)
    return manifest
