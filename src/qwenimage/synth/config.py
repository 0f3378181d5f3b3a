"""SynthConfig: where the synthetic text engine takes its text, fonts and backgrounds from, and how long texts are.

    config = SynthConfig.from_dict({"corpus_files": ["my_corpus.jsonl"], "length_weights": {"paragraph": 1}})

Lengths are counted in characters (spaces included) and come in three curriculum classes: "word", "line"
and "paragraph". `length_weights` picks the class of each sample; set one weight to train one class.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

LENGTH_CLASSES = ("word", "line", "paragraph")
LANGUAGES = ("zh", "en", "mixed")


def _default_lengths() -> dict[str, dict[str, tuple[int, int]]]:
    return {
        "zh": {"word": (1, 4), "line": (5, 18), "paragraph": (30, 120)},
        "en": {"word": (2, 16), "line": (12, 48), "paragraph": (80, 320)},
    }


def _default_length_weights() -> dict[str, float]:
    return {"word": 0.25, "line": 0.35, "paragraph": 0.4}


@dataclass(frozen=True)
class SynthConfig:
    corpus_files: tuple[str, ...] = ()  # user corpora: .txt (one paragraph a line) or .jsonl ({"text": ...})
    corpus_weight: float = 0.5  # share of texts drawn from the user corpora when there are any
    sentence_weight: float = 0.5  # share of the other lines and paragraphs taken from real sentences (synth.sentences)
    font_dirs: tuple[str, ...] = ()  # user font folders, searched recursively
    system_fonts: bool = True  # also use the fonts under /usr/share/fonts and friends
    background_dir: str | None = None  # user photos for compositional rendering (searched recursively)
    builtin_photos: bool = True  # the photos that ship with scikit-image
    template_dir: str | None = None  # extra complex-rendering templates (*.json), added to the shipped ones
    extra_chars_file: str | None = None  # rare characters to inject beyond GB 2312 (UTF-8 text, any layout)
    lengths: dict[str, dict[str, tuple[int, int]]] = field(default_factory=_default_lengths)
    length_weights: dict[str, float] = field(default_factory=_default_length_weights)
    caption_languages: tuple[str, ...] = ("en", "zh")
    vocab_size: int = 60000  # most frequent words kept per language
    word_temperature: float = 0.5  # word probability ~ frequency ** temperature (1 = natural, 0 = uniform)
    rare_char_rate: float = 0.3  # chance per Chinese clause of a word built around a uniformly drawn character
    handwriting_share: float = 0.25  # share of pure/compositional samples in handwriting or kai fonts
    min_font_px: int = 16  # smallest text height in pixels, for a 512-pixel short side (scales with it)
    exclude_words: tuple[str, ...] = ()  # English words never drawn, as whole words in any case (eval held-out)
    words: dict = field(default_factory=dict)  # options of the words strategy (synth/words.py: WordsOptions)
    edit_pairs: dict = field(default_factory=dict)  # options of the edit_pairs strategy (synth/edit_pairs.py)

    def __post_init__(self):
        for name in ("corpus_files", "font_dirs", "caption_languages"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.exclude_words, str):
            raise ValueError(f"SynthConfig.exclude_words = {self.exclude_words!r}: give a list of words")
        excluded = {word.strip().lower() for word in self.exclude_words if word.strip()}
        object.__setattr__(self, "exclude_words", tuple(sorted(excluded)))
        lengths = {lang: {cls: tuple(rng) for cls, rng in by_class.items()} for lang, by_class in self.lengths.items()}
        object.__setattr__(self, "lengths", lengths)
        self._validate()

    def _validate(self):
        for lang in ("zh", "en"):
            for cls in LENGTH_CLASSES:
                low, high = self.lengths.get(lang, {}).get(cls, (0, 0))
                if not 1 <= low <= high:
                    raise ValueError(f"SynthConfig.lengths[{lang!r}][{cls!r}] = {(low, high)}: need 1 <= low <= high")
        unknown = set(self.length_weights) - set(LENGTH_CLASSES)
        if unknown or sum(self.length_weights.values()) <= 0 or min(self.length_weights.values()) < 0:
            raise ValueError(f"SynthConfig.length_weights = {self.length_weights}: non-negative weights over "
                             f"{LENGTH_CLASSES} with a positive sum")
        bad = set(self.caption_languages) - {"en", "zh"}
        if bad or not self.caption_languages:
            raise ValueError(f"SynthConfig.caption_languages = {self.caption_languages}: use 'en' and/or 'zh'")
        for name in ("corpus_weight", "sentence_weight", "rare_char_rate", "handwriting_share", "word_temperature"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"SynthConfig.{name} = {getattr(self, name)}: must lie in [0, 1]")
        if self.min_font_px < 6 or self.vocab_size < 100:
            raise ValueError(f"SynthConfig: min_font_px = {self.min_font_px} (>= 6), "
                             f"vocab_size = {self.vocab_size} (>= 100)")

    @classmethod
    def from_dict(cls, values: dict | None) -> "SynthConfig":
        """Build from a plain dict (YAML/JSON); unknown keys are an error naming them."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SynthConfig keys {unknown}; known keys: {sorted(known)}")
        if "lengths" in values:  # a partial override keeps the other defaults
            merged = _default_lengths()
            for lang, by_class in values["lengths"].items():
                merged.setdefault(lang, {}).update(by_class)
            values["lengths"] = merged
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def font_floor(self, width: int, height: int) -> int:
        """Smallest font size for a canvas: min_font_px at a 512 short side, scaled linearly."""
        return max(6, round(self.min_font_px * min(width, height) / 512))
