"""Fonts: discovery (system and user folders), style tags, glyph coverage from the cmap, and font picking.

    library = FontLibrary.discover(user_dirs=("my_fonts",))
    face = library.pick(rng, "通义千问", style="handwriting")   # raises Discard("missing_glyph") if none covers
    pil_font = library.font(face, 32)

A face is one font inside a file (.ttc collections hold several). Its charset (the cmap's code points) is
read once with fontTools and cached per face. Regional CJK variants other than simplified Chinese (JP, KR,
TC, HK, TW), bitmap-like "Sharp" faces, math fonts and very thin weights are skipped: the first draw Chinese
with foreign glyph shapes, the others render poorly.

Some faces draw lower-case letters as capitals (Humor Sans): `as_drawn(face, text)` gives the text as such a
face shows it (upper case), so that a sample's text and caption always match its image.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ImageFont

from qwenimage.synth.sample import Discard
from qwenimage.synth.script import gb2312_tier, is_cjk

log = logging.getLogger(__name__)

SYSTEM_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")
FONT_SUFFIXES = {".ttf", ".otf", ".ttc", ".otc"}
REFERENCE_SIZE = 100  # pixels; advances are measured once at this size
_SKIP = re.compile(r"\b(JP|KR|TC|HK|TW|Sharp|Math|ExtraLight|Thin|Light|Hairline)\b|Mono CJK|TW MBE")
_CURSIVE = ("dancing", "script", "brush")  # joined-up scripts: OCR reads them poorly, so they are drawn less often
_HANDWRITING = ("kai", "comic", "dancing", "humor", "script", "hand", "brush", "marker", "chalk", "楷")
_SERIF = ("serif", "ming", "song", "times", "宋")
_CJK_PROBE = gb2312_tier(1)[:600]
_LATIN_PROBE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,"
_X_HEIGHT = "acemnorsuvwxz"  # lower-case letters without ascenders or descenders
CAPITALS_RATIO = 0.9  # x-height / cap height at or above which a face draws lower case as capitals


@dataclass(frozen=True)
class FontFace:
    path: str
    index: int  # face index inside a collection (0 for single-face files)
    family: str
    style: str
    tags: frozenset[str]  # sans / serif / bold / italic / mono / kai / handwriting / cursive
    cjk: bool  # covers the common Chinese characters
    latin: bool  # covers basic Latin letters and digits

    @property
    def name(self) -> str:
        return f"{self.family} {self.style}"


def style_tags(family: str, style: str) -> frozenset[str]:
    name, style = family.lower(), style.lower()
    tags = set()
    if any(key in name for key in _HANDWRITING):
        tags.add("handwriting")
    if "kai" in name or "楷" in name:
        tags.add("kai")
    if any(key in name for key in _CURSIVE):
        tags.add("cursive")
    if "mono" in name:
        tags.add("mono")
    if "handwriting" not in tags:  # a script face is neither a sans nor a serif for picking
        tags.add("serif" if "sans" not in name and any(key in name for key in _SERIF) else "sans")
    if any(key in style for key in ("bold", "black", "heavy")):
        tags.add("bold")
    if any(key in style for key in ("italic", "oblique")):
        tags.add("italic")
    return frozenset(tags)


def _font_files(dirs: tuple[str, ...]) -> list[Path]:
    files = set()
    for folder in dirs:
        root = Path(folder).expanduser()
        if root.is_dir():
            files.update(p.resolve() for p in root.rglob("*") if p.suffix.lower() in FONT_SUFFIXES and p.is_file())
    return sorted(files)


def _read_faces(path: Path) -> list[tuple[FontFace, frozenset[int]]]:
    from fontTools.ttLib import TTCollection, TTFont

    fonts = TTCollection(str(path), lazy=True).fonts if path.suffix.lower() in {".ttc", ".otc"} \
        else [TTFont(str(path), lazy=True)]
    faces = []
    for index, font in enumerate(fonts):
        family = font["name"].getDebugName(16) or font["name"].getDebugName(1) or path.stem
        style = font["name"].getDebugName(17) or font["name"].getDebugName(2) or "Regular"
        if _SKIP.search(f"{family} {style}"):
            continue
        charset = frozenset(font.getBestCmap() or {})
        cjk = sum(ord(ch) in charset for ch in _CJK_PROBE) >= 0.98 * len(_CJK_PROBE)
        latin = all(ord(ch) in charset for ch in _LATIN_PROBE)
        tags = style_tags(family, style)
        if (cjk and "mono" not in tags) or (latin and not cjk):
            faces.append((FontFace(str(path), index, family, style, tags, cjk, latin), charset))
    return faces


@functools.cache
def discover_faces(dirs: tuple[str, ...]) -> tuple[tuple[FontFace, frozenset[int]], ...]:
    """Every usable face under `dirs` with its charset, in a stable order (path, index)."""
    found, names = [], set()
    for path in _font_files(dirs):
        try:
            faces = _read_faces(path)
        except Exception as err:  # a broken font file must not stop the engine
            log.warning("skipping font %s: %s", path, err)
            continue
        for face, charset in faces:
            if face.name not in names:  # the same family installed twice
                names.add(face.name)
                found.append((face, charset))
    return tuple(found)


class FontLibrary:
    """The faces to draw with; picks a face that covers a text and caches Pillow fonts per (face, size)."""

    def __init__(self, faces: tuple[tuple[FontFace, frozenset[int]], ...], cache_size: int = 256):
        if not faces:
            raise RuntimeError("no usable fonts found: install fonts-noto-cjk (see install.sh) or set font_dirs")
        self.faces = [face for face, _ in faces]
        self._charsets = {face: charset for face, charset in faces}
        self._fonts: OrderedDict = OrderedDict()
        self._cache_size = cache_size
        self._advances: dict[FontFace, dict[str, float]] = {}
        self._capitals: dict[FontFace, bool] = {}

    @classmethod
    def discover(cls, user_dirs: tuple[str, ...] = (), system: bool = True) -> "FontLibrary":
        dirs = tuple(user_dirs) + (SYSTEM_FONT_DIRS if system else ())
        return cls(discover_faces(dirs))

    def missing(self, face: FontFace, text: str) -> str:
        """The characters of `text` (whitespace aside) that `face` has no glyph for, in order."""
        charset = self._charsets[face]
        return "".join(dict.fromkeys(ch for ch in text if not ch.isspace() and ord(ch) not in charset))

    def covering(self, text: str, style: str = "any") -> list[FontFace]:
        """Faces that cover every character of `text`, restricted to `style` unless it is "any"."""
        chars = {ord(ch) for ch in text if not ch.isspace()}
        faces = [face for face in self.faces if chars <= self._charsets[face]]
        if style == "any":
            return faces
        if style != "handwriting":  # "bold" means a bold print face, not a bold script
            faces = [face for face in faces if "handwriting" not in face.tags]
        return [face for face in faces if style in face.tags]

    def pick(self, rng: np.random.Generator, text: str, style: str = "any") -> FontFace:
        """A face covering `text`, in `style` when one does; Discard("missing_glyph") when none covers it."""
        faces = self.covering(text, style) or self.covering(text)
        if not faces:
            best = min(self.faces, key=lambda face: len(self.missing(face, text)))
            raise Discard("missing_glyph", f"{self.missing(best, text)!r} not in any font (best: {best.name})")
        has_cjk = any(is_cjk(ch) for ch in text)
        weights = np.array([(0.3 if "italic" in face.tags else 1.0) * (0.3 if "cursive" in face.tags else 1.0)
                            * (0.25 if face.cjk and not has_cjk else 1.0) for face in faces])
        return faces[int(rng.choice(len(faces), p=weights / weights.sum()))]

    def advance(self, face: FontFace, unit: str) -> float:
        """Advance width of `unit` at REFERENCE_SIZE pixels (scale linearly for other sizes); cached."""
        cache = self._advances.setdefault(face, {})
        if unit not in cache:
            if len(cache) > 100_000:
                cache.clear()
            cache[unit] = self.font(face, REFERENCE_SIZE).getlength(unit)
        return cache[unit]

    def forces_capitals(self, face: FontFace) -> bool:
        """True for a face whose lower-case letters are drawn as capitals (Humor Sans): its x-height letters
        stand as tall as its capitals (ratio >= CAPITALS_RATIO; real lower case is ~0.7-0.8). Cached."""
        if face not in self._capitals:
            font, charset = self.font(face, REFERENCE_SIZE), self._charsets[face]
            heights = [[font.getbbox(ch)[3] - font.getbbox(ch)[1] for ch in letters if ord(ch) in charset]
                       for letters in (_X_HEIGHT, _X_HEIGHT.upper())]
            ratio = np.median(heights[0]) / max(1.0, np.median(heights[1])) if all(heights) else 0.0
            self._capitals[face] = bool(ratio >= CAPITALS_RATIO)
        return self._capitals[face]

    def as_drawn(self, face: FontFace, text: str) -> str:
        """`text` as `face` shows it: upper-cased when the face forces capitals, so that the sample's text and
        caption match the image; Discard("missing_glyph") if the face lacks an upper-case letter."""
        if not self.forces_capitals(face) or text.upper() == text:
            return text
        drawn = text.upper()
        missing = self.missing(face, drawn)
        if missing:
            raise Discard("missing_glyph", f"{missing!r} (upper case) not in {face.name}")
        return drawn

    def line_extent(self, face: FontFace) -> float:
        """Ascent + descent of the face, in units of the font size."""
        ascent, descent = self.font(face, REFERENCE_SIZE).getmetrics()
        return (ascent + descent) / REFERENCE_SIZE

    def font(self, face: FontFace, size: int) -> ImageFont.FreeTypeFont:
        key = (face, int(size))
        if key in self._fonts:
            self._fonts.move_to_end(key)
            return self._fonts[key]
        font = ImageFont.truetype(face.path, int(size), index=face.index, layout_engine=ImageFont.Layout.BASIC)
        self._fonts[key] = font
        if len(self._fonts) > self._cache_size:
            self._fonts.popitem(last=False)
        return font
