"""Strategy 4, words: one word or a short phrase, large and legible, on a plain background, with a caption that
asks for exactly that text. The data of the small model's curriculum (one font and a fixed layout -> size and
position jitter -> fonts and colours -> phrases and Chinese), chosen by `SynthConfig.words` options:

    SynthConfig(words={"fonts": ["DejaVu Sans Bold"], "jitter": 0.0, "colors": False})   # stage 1
    SynthConfig(words={"jitter": 1.0, "colors": True, "phrase_share": 0.3})              # later stages

Words come from the English / Chinese vocabularies (wordfreq) minus `exclude_words` (a file of words, or
"suite:NAME" for an evaluation suite's held-out list), so a model trained on them is measured on words it never
saw. English words keep the case the caption quotes (lower, Capitalised or UPPER).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image, ImageDraw

from qwenimage.synth.backgrounds import random_background, solid
from qwenimage.synth.base import StrategyBase
from qwenimage.synth.colors import BY_NAME, min_contrast, pick_contrasting, to_hex
from qwenimage.synth.sample import Discard, SynthSample, TextBox
from qwenimage.synth.wordlists import chinese_vocabulary, chinese_words, english_words, gb2312_tier, WordList

# Captions: the same phrasing as the evaluation suites' prompts (a scene that carries the quoted text).
EN_CAPTIONS = ('a sign that says "{}"', 'a shop sign that says "{}"', 'the word "{}"', 'a poster with the text "{}"',
               'a label that reads "{}"', 'a card with "{}" written on it', 'a banner reading "{}"',
               'text "{}" on a plain background', 'a sticker that says "{}"', 'a title that reads "{}"')
ZH_CAPTIONS = ('写着"{}"的招牌', '一张写有"{}"的海报', '文字"{}"', '标签上写着"{}"', 'a sign that says "{}"',
               'the text "{}"')
_EN_WORD = re.compile(r"^[a-z]{2,12}$")


@dataclass(frozen=True)
class WordsOptions:
    fonts: tuple[str, ...] = ()  # "Family Style" names to draw with; empty: any non-handwriting face
    jitter: float = 1.0  # 0: centred at a fixed size; 1: size 0.55-1.0 of the largest and any position
    # the line's height moves (0: centred; 1: anywhere) while its size and its pen's x stay: with a fixed layout
    # the k-th letter keeps its column on any row (edits of signs at other heights); jitter above it wins
    vertical_jitter: float = 0.0
    # the glyph size shrinks by up to 45% (0: the fixed or fitted size; 1: 0.55-1.0 of it) while, left-aligned,
    # the pen's x stays: both pictures of an edit pair share the size and place; jitter above it wins
    size_jitter: float = 0.0
    colors: bool = True  # False: black on white
    phrase_share: float = 0.0  # share of 2-3 word phrases (English) / 2-4 character words (Chinese)
    case_share: float = 0.2  # share of Capitalised or UPPER English words
    # share of English texts that are numbers: 1-4 digits, a price ("$5", "$19") or a word and a number ("room12"),
    # so a model learns the digits and "$" (the text-edit suite's own numbers excluded in edit pairs)
    number_share: float = 0.0
    max_chars: int = 12  # longest text (characters, spaces included)
    vocab_size: int = 30000  # most frequent words kept
    temperature: float = 0.3  # word probability ~ frequency ** temperature
    exclude_words: str = "suite:en-words"  # a word file or suite:NAME; "" keeps every word
    scene_captions: float = 0.0  # share of English captions in the evaluation prompts' scene wording
    captions: tuple[str, ...] = ()  # English caption templates with "{text}"; empty: the built-in wordings
    font_size: int = 0  # fixed font size in pixels; 0: the largest that fits (a letter's size then varies)
    align: str = "center"  # "center", or "left": the text starts at a fixed margin (a letter's place is fixed)
    focus_letters: str = ""  # letters to practise: `focus_share` of English words hold one of them after the first
    focus_share: float = 0.0  # share of English words drawn from the focus list (words with a focus letter inside)
    # English words drawn from this list only, uniformly (a word file, 'words:PATH' or a held-out suite such as
    # 'suite:en-words': how evaluation data is drawn from held-out words); "": the frequency vocabulary
    word_list: str = ""
    # Chinese texts as strings of 1..`max_chars` characters drawn evenly from an alphabet (so a small model meets
    # each glyph often): the `zh_top_chars` most frequent characters of the vocabulary plus `zh_extra_chars`
    # (literal characters, or "suite:text-edit": the characters of that suite's Chinese texts, whose words stay
    # held out in edit pairs); both empty: words of the frequency vocabulary
    zh_top_chars: int = 0
    zh_extra_chars: str = ""

    @classmethod
    def from_dict(cls, values: dict | None) -> "WordsOptions":
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown words options {unknown}; known: {sorted(known)}")
        for name in ("fonts", "captions"):
            if name in values:
                values[name] = (values[name],) if isinstance(values[name], str) else tuple(values[name])
        options = cls(**values)
        shares = ("jitter", "vertical_jitter", "size_jitter", "phrase_share", "case_share", "scene_captions",
                  "focus_share", "number_share")
        if not all(0 <= getattr(options, name) <= 1 for name in shares):
            raise ValueError(f"words options: {', '.join(shares)} must lie in [0, 1], got {values}")
        bad = [c for c in options.captions if "{text}" not in c]
        if bad:
            raise ValueError(f"words options: every caption template needs a {{text}} slot, got {bad}")
        if options.align not in ("center", "left"):
            raise ValueError(f"words options: align must be 'center' or 'left', got {options.align!r}")
        if options.focus_share and not re.fullmatch(r"[a-z]+", options.focus_letters):
            raise ValueError(f"words options: focus_share needs focus_letters (lower-case a-z), "
                             f"got {options.focus_letters!r}")
        if options.zh_top_chars < 0:
            raise ValueError(f"words options: zh_top_chars must be >= 0, got {options.zh_top_chars}")
        if options.font_size < 0:
            raise ValueError(f"words options: font_size must be >= 0 pixels (0: fit), got {options.font_size}")
        return options


def read_word_set(spec: str) -> frozenset[str]:
    """Lower-case words to leave out: a word file or an evaluation suite's held-out list ("suite:en-words")."""
    if not spec:
        return frozenset()
    from qwenimage.eval.suites import heldout_words

    return frozenset(heldout_words(spec))


@functools.cache
def english_word_list(vocab_size: int, temperature: float, exclude: frozenset[str]) -> WordList:
    kept = [(w, f) for w, f in english_words() if _EN_WORD.match(w) and w not in exclude][:vocab_size]
    weights = np.asarray([f for _, f in kept]) ** temperature
    return WordList([w for w, _ in kept], weights / weights.sum())


@functools.cache
def listed_word_list(spec: str, exclude: frozenset[str]) -> WordList:
    """The lower-case words of a word file or held-out suite (`read_word_set`), minus `exclude`, equally likely."""
    words = sorted(w for w in read_word_set(spec) if _EN_WORD.match(w) and w not in exclude)
    if not words:
        raise ValueError(f"words options: word_list {spec!r} holds no word of 2-12 letters a-z outside the "
                         "excluded ones")
    return WordList(words, np.full(len(words), 1.0 / len(words)))


@functools.cache
def focus_word_list(vocab_size: int, temperature: float, exclude: frozenset[str], letters: str) -> WordList:
    """The words of `english_word_list` holding one of `letters` after their first letter (where a glyph sits between
    neighbours: the place a small model gets a letter's height or shape wrong), with their relative weights."""
    words = english_word_list(vocab_size, temperature, exclude)
    keep = [i for i, w in enumerate(words.words) if any(ch in w[1:] for ch in letters)]
    if not keep:
        raise ValueError(f"words options: no word of the vocabulary holds any of {letters!r} after its first letter")
    probs = words.probs[keep]
    return WordList([words.words[i] for i in keep], probs / probs.sum())


@functools.cache
def chinese_alphabet(top_chars: int, extra: str) -> str:
    """The `top_chars` most frequent GB 2312 characters of the Chinese vocabulary (by their words' frequency) and
    the `extra` ones (literal, or "suite:text-edit" for that suite's Chinese characters), in that order, once each."""
    if extra.startswith("suite:"):
        if extra != "suite:text-edit":
            raise ValueError(f"words options: zh_extra_chars {extra!r}: the only suite with Chinese texts is "
                             "'suite:text-edit'")
        from qwenimage.eval.text_edit_suite import PAIRS

        extra = "".join(text for pair in PAIRS["zh"] for text in pair)
    counts: dict[str, float] = {}
    if top_chars:
        for word, freq in chinese_words(frozenset(gb2312_tier(1) + gb2312_tier(2))):
            for ch in word:
                counts[ch] = counts.get(ch, 0.0) + freq
    top = sorted(counts, key=lambda ch: -counts[ch])[:top_chars]
    alphabet = "".join(dict.fromkeys(top + [ch for ch in extra if not ch.isspace()]))
    if not alphabet:
        raise ValueError("words options: the Chinese alphabet is empty (zh_top_chars 0 and no zh_extra_chars)")
    return alphabet


def number_text(rng: np.random.Generator, max_chars: int, excluded: frozenset[str] = frozenset()) -> str:
    """A number as signs show it: 1-4 digits, a price ("$" and 1-3 digits) or a short word and 1-2 digits ("room12",
    no space: one word), at most `max_chars` long and not one of `excluded` (held-out texts such as "$5")."""
    for _ in range(50):
        form = rng.random()
        digits = lambda count: "".join(str(d) for d in rng.integers(0, 10, count))  # noqa: E731
        if form < 0.4:
            text = digits(int(rng.integers(1, 5)))
        elif form < 0.7:
            text = "$" + digits(int(rng.integers(1, 4)))
        else:
            text = str(rng.choice(NUMBER_WORDS)) + digits(int(rng.integers(1, 3)))
        if len(text) <= max_chars and text not in excluded:
            return text
    raise Discard("number_excluded", f"no number outside the excluded texts in 50 draws (max_chars {max_chars})")


NUMBER_WORDS = ("room", "gate", "no", "bus", "door", "floor", "aisle", "track", "exit", "lot", "unit", "bay")


class WordsStrategy(StrategyBase):
    name = "words"

    @property
    def options(self) -> WordsOptions:
        return WordsOptions.from_dict(self.config.words)

    def text(self, rng: np.random.Generator, language: str, options: WordsOptions) -> str:
        if language == "zh" and (options.zh_top_chars or options.zh_extra_chars):
            alphabet = chinese_alphabet(options.zh_top_chars, options.zh_extra_chars)
            count = int(rng.integers(1, options.max_chars + 1))
            return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), count))
        if language == "zh":
            vocab = chinese_vocabulary(self.config.vocab_size, options.temperature)
            for _ in range(20):
                word = vocab.words.sample(rng)
                if (len(word) <= 2 or rng.random() < options.phrase_share) and len(word) <= options.max_chars:
                    return word
            return word[:2]
        excluded = read_word_set(options.exclude_words) | frozenset(self.config.exclude_words)  # + --exclude-words
        if options.number_share and rng.random() < options.number_share:
            return number_text(rng, options.max_chars, excluded)
        if options.word_list:
            words = listed_word_list(options.word_list, excluded)
        elif options.focus_share and rng.random() < options.focus_share:
            words = focus_word_list(options.vocab_size, options.temperature, excluded, options.focus_letters)
        else:
            words = english_word_list(options.vocab_size, options.temperature, excluded)
        count = 1 + int(rng.integers(1, 3)) if rng.random() < options.phrase_share else 1
        for _ in range(20):
            text = " ".join(words.sample_many(rng, count))
            if len(text) <= options.max_chars:
                break
        else:
            text = words.sample(rng)[: options.max_chars]
        if rng.random() < options.case_share:
            text = text.upper() if rng.random() < 0.4 else text[:1].upper() + text[1:]
        return text

    def face(self, rng: np.random.Generator, text: str, options: WordsOptions):
        if options.fonts:
            faces = [f for f in self.fonts.faces if f.name in options.fonts and not self.fonts.missing(f, text)]
            if not faces:
                raise Discard("missing_glyph", f"none of the fonts {list(options.fonts)} covers {text!r}")
            return faces[int(rng.integers(len(faces)))]
        return self.pick_face(rng, text, ("sans", "serif", "bold")[int(rng.integers(3))])

    def render(self, rng: np.random.Generator, width: int, height: int, language: str) -> SynthSample:
        options = self.options
        if language == "mixed":  # an English word and a Chinese one, side by side
            text = f"{self.text(rng, 'en', options)} {self.text(rng, 'zh', options)[:2]}"
        else:
            language = "zh" if language == "zh" else "en"
            text = self.text(rng, language, options)
        return self.draw_text(rng, width, height, language, text)

    def draw_text(self, rng: np.random.Generator, width: int, height: int, language: str, text: str) -> SynthSample:
        """The sample of a given text: face, background, colour, size and place drawn from `rng` (so two texts drawn
        from equally seeded generators share everything the text does not change: the edit pairs' `words` layout)."""
        options = self.options
        face = self.face(rng, text, options)
        if options.colors:
            background = random_background(rng, width, height)
            picked = pick_contrasting(rng, background.tones)
            if picked is None:
                raise Discard("low_contrast", background.name_en)
            color, rgb = picked
        else:
            background, color = solid(rng, width, height, BY_NAME["white"]), BY_NAME["black"]
            rgb = color.rgb
        image = Image.fromarray(background.image)
        box, size = self._draw(ImageDraw.Draw(image), rng, face, text, width, height, rgb, options)
        caption = self.caption(rng, language, text, options)
        line = TextBox(text, box)
        words = [line] if language == "zh" else self._word_boxes(text, box, face)
        return SynthSample(
            image=image, text=text, caption=caption, strategy=self.name, language=language, lines=[line],
            words=words, fonts=[face.name], colors={"background": background.hex, "text": to_hex(rgb)},
            extra={"background": background.name_en, "text_color": color.en, "jitter": options.jitter,
                   "font_size": size, "contrast": round(min_contrast(rgb, background.tones), 2)},
            texts=[text])

    @staticmethod
    def caption(rng: np.random.Generator, language: str, text: str, options: WordsOptions) -> str:
        """A caption quoting `text`. With `scene_captions`, that share of English captions uses the scene wording
        of the evaluation prompts ('a neon sign that reads "..."'): the words stay held out, the phrasing is the
        one a user (and the en-words suite) asks with."""
        if language == "zh":
            return str(rng.choice(ZH_CAPTIONS)).format(text)
        if options.captions:
            return str(rng.choice(options.captions)).format(text=text)
        if options.scene_captions and rng.random() < options.scene_captions:
            from qwenimage.eval.prompts import EN_WORD_TEMPLATES

            return str(rng.choice(EN_WORD_TEMPLATES)).format(text=text)
        return str(rng.choice(EN_CAPTIONS)).format(text)

    def _draw(self, draw: ImageDraw.ImageDraw, rng: np.random.Generator, face, text: str, width: int, height: int,
              rgb, options: WordsOptions) -> tuple[tuple[int, int, int, int], int]:
        """Draw `text` on one line; returns its pixel box and font size. Size: `font_size`, or the largest that
        fits 84% of the width and 40% of the height; scaled down by up to 45% with jitter (`size_jitter`: the size
        alone). Position: centred (or, with `align: left`, starting at the pen position 8% of the width in, so the k-th
        letter of a monospaced font always lands in the same place), moved anywhere with jitter;
        `vertical_jitter` moves it up or down only."""
        jitter = options.jitter
        if options.font_size:
            size = options.font_size
        else:
            x0, y0, x1, y1 = self.fonts.font(face, 100).getbbox(text)
            size = 100 * min(0.84 * width / max(1, x1 - x0), 0.4 * height / max(1, y1 - y0))
        size = max(6, int(size * (1.0 - 0.45 * max(jitter, options.size_jitter) * rng.random())))
        font = self.fonts.font(face, size)
        x0, y0, x1, y1 = font.getbbox(text)
        free_x, free_y = width - (x1 - x0), height - (y1 - y0)
        if options.align == "left":  # the pen starts at the margin; jitter moves it right only
            margin = round(0.08 * width)
            room = width - margin - x1 - 1
            if room < 0 or free_y < 2:
                raise Discard("text_too_long", f"{text!r} at {size} px does not fit {width}x{height} left-aligned")
            px = x0 + margin + rng.random() * jitter * room
            _, line_y0, _, line_y1 = font.getbbox("Hgjy")  # centre the font's line box: one baseline for all words
        else:
            if free_x < 2 or free_y < 2:
                raise Discard("text_too_long", f"{text!r} at {size} px does not fit {width}x{height}")
            px = free_x / 2 + (rng.random() - 0.5) * jitter * (free_x - 4)
            line_y0, line_y1 = y0, y1
        free_line = height - (line_y1 - line_y0)
        py = free_line / 2 + (rng.random() - 0.5) * max(jitter, options.vertical_jitter) * (free_line - 4)
        left, top = int(round(px - x0)), int(round(py - line_y0))
        draw.text((left, top), text, font=font, fill=tuple(rgb))
        return (left + x0, top + y0, left + x1, top + y1), size

    def _word_boxes(self, text: str, box: tuple[int, int, int, int], face) -> list[TextBox]:
        """Word boxes of a one-line Latin text: the line box cut in proportion to advance widths."""
        parts = text.split(" ")
        if len(parts) == 1:
            return [TextBox(text, box)]
        total = max(1.0, self.fonts.advance(face, text))
        out, x = [], float(box[0])
        for i, part in enumerate(parts):
            start = x
            x += (box[2] - box[0]) * self.fonts.advance(face, part) / total
            out.append(TextBox(part, (int(start), box[1], int(round(x)), box[3])))
            if i < len(parts) - 1:
                x += (box[2] - box[0]) * self.fonts.advance(face, " ") / total
        return out

