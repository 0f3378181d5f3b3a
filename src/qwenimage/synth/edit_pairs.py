"""Strategy 5, edit_pairs: TI2I training pairs, one scene rendered twice with one change and an instruction
that says what changed. The scenes are the `text-edit` evaluation suite's (eval/text_edit_suite.py:
`render_pair`: a photo or surface with a sign, chalkboard, screen, ... on it; the two renders share every random
number but the text), so the pairs differ only inside the padded text region, like the suite's.

    SynthConfig(edit_pairs={"kinds": {"text": 0.8, "color": 0.2}}, words={"max_chars": 10})

Kinds: "text" (another text: 'Change the text "MILK" to "JUICE"') and "color" (the same text in another colour:
'Make the text "MILK" red'). `sample.image` is the edited image, `sample.source` the source; the caption
describes the edited image, so a pair also serves text-to-image. Texts come from the words strategy
(`synth.words` options: held-out words excluded, "suite:en-words" by default) minus every text of the
text-edit suite's word pairs, so the suite measures edits to words the model never trained on.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field, fields

import numpy as np

from qwenimage.synth.base import StrategyBase
from qwenimage.synth.sample import Discard, SynthSample, TextBox

KINDS = ("text", "color")
# the official edit style: an imperative that quotes the texts; every wording quotes the new text
TEXT_INSTRUCTIONS = {
    "en": ('Change the text "{old}" to "{new}"', 'Replace "{old}" with "{new}"', 'Change the text to "{new}"',
           'Make the sign say "{new}"', 'Replace the text "{old}" with "{new}"',
           'Edit the text so it reads "{new}"', 'Change "{old}" to "{new}"', 'Write "{new}" instead of "{old}"'),
    "zh": ("把文字“{old}”改为“{new}”", "将“{old}”替换为“{new}”", "把文字改成“{new}”", "让招牌上写“{new}”"),
}
COLOR_INSTRUCTIONS = {
    "en": ('Make the text "{old}" {color}', 'Change the color of the text "{old}" to {color}',
           'Recolor "{old}" in {color}', 'Make "{old}" {color}'),
    "zh": ("把文字“{old}”改成{color}", "将“{old}”的颜色改为{color}"),
}


LAYOUTS = ("scene", "words")


@dataclass(frozen=True)
class EditPairsOptions:
    kinds: dict[str, float] = field(default_factory=lambda: {"text": 0.8, "color": 0.2})  # kind -> weight
    # "scene": the text-edit suite's scenes (in the `synth.words.fonts` when given, else any print face); "words":
    # the words strategy's picture (`synth.words` options: font, size, place, colours), drawn twice from one seed,
    # so with its fixed layout the new text's k-th letter lands where the text-to-image model draws it
    layout: str = "scene"
    # English text-edit wordings with "{new}" (and optionally "{old}"); empty: the built-in ones
    instructions: tuple[str, ...] = ()
    # scene layout: [lo, hi] px, a ceiling on the glyph size drawn per pair from that range (the text still shrinks
    # to fit its medium), e.g. the sizes a model already spells at; empty: as large as the medium allows (the suite's)
    font_sizes: tuple[int, ...] = ()
    # "en": the English wordings (and `instructions`) for texts in any language, e.g. Chinese texts for a model that
    # learnt to edit from English instructions ('Change the text "秋地" to "该"'); "": each language's own
    wording: str = ""

    @classmethod
    def from_dict(cls, values: dict | None) -> "EditPairsOptions":
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown edit_pairs options {unknown}; known: {[f.name for f in fields(cls)]}")
        if "instructions" in values:
            wordings = values["instructions"]
            values["instructions"] = (wordings,) if isinstance(wordings, str) else tuple(wordings)
        if "font_sizes" in values:
            sizes = values["font_sizes"]
            values["font_sizes"] = (sizes,) if isinstance(sizes, (int, float)) else tuple(sizes or ())
        options = cls(**values)
        if options.layout not in LAYOUTS:
            raise ValueError(f"edit_pairs options: layout {options.layout!r}, choose from {list(LAYOUTS)}")
        bad = [t for t in options.instructions if "{new}" not in t or set(re.findall(r"{(\w*)}", t)) - {"new", "old"}]
        if bad:
            raise ValueError(f"edit_pairs options: every instruction needs a {{new}} slot (and may have {{old}}), "
                             f"got {bad}")
        sizes = options.font_sizes
        if sizes and not (len(sizes) == 2 and all(isinstance(v, int) for v in sizes) and 6 <= sizes[0] <= sizes[1]):
            raise ValueError(f"edit_pairs options: font_sizes {list(sizes)}, need [lo, hi] whole pixels, 6 <= lo <= hi")
        if options.wording not in ("", "en"):
            raise ValueError(f"edit_pairs options: wording {options.wording!r}, choose '' (each language's own) "
                             "or 'en'")
        kinds = options.kinds
        bad = sorted(set(kinds) - set(KINDS))
        if bad:
            raise ValueError(f"edit_pairs options: unknown kind(s) {bad} in kinds {kinds}; choose from {list(KINDS)}")
        if any(not w >= 0 for w in kinds.values()) or not sum(kinds.values()) > 0:
            raise ValueError(f"edit_pairs options: kinds {kinds} need weights >= 0 with a positive sum")
        return options


class EditPairsStrategy(StrategyBase):
    name = "edit_pairs"

    def __init__(self, config=None):
        super().__init__(config)
        self.options = EditPairsOptions.from_dict(self.config.edit_pairs)
        self._words = None

    @property
    def words(self):
        """The words strategy that draws the texts, with the text-edit suite's words excluded as well."""
        if self._words is None:
            from qwenimage.eval.text_edit_suite import suite_texts, suite_words
            from qwenimage.synth.words import WordsStrategy

            # the suite's numbers are held out too: "$5", "room 12" / "room12" and their digits ("12", "5")
            numbers = {t for t in suite_texts() if t.isascii() and not t.isalpha()}
            numbers |= {t.replace(" ", "") for t in numbers} | {d for t in numbers for d in re.findall(r"\d+", t)}
            excluded = tuple(sorted(set(self.config.exclude_words) | suite_words() | numbers))
            self._words = WordsStrategy(dataclasses.replace(self.config, exclude_words=excluded))
        return self._words

    def texts(self, rng: np.random.Generator, language: str, kind: str) -> tuple[str, str]:
        """(old, new): two texts that differ (any case) for a text edit, the same one for a colour edit."""
        from qwenimage.eval.text_edit_suite import suite_texts

        old = self.one_text(rng, language)
        new = old
        if kind == "text":
            for _ in range(10):
                new = self.one_text(rng, language)
                if new.lower() != old.lower():
                    break
            else:
                raise Discard("same_text", old)
        held = [t for t in suite_texts() if not t.isascii() and any(t in text for text in (old, new))]
        if held:  # Chinese texts of the suite (English ones are out of the vocabulary already)
            raise Discard("suite_text", ", ".join(held))
        return old, new

    def one_text(self, rng: np.random.Generator, language: str) -> str:
        """A text of the words strategy; "mixed": an English word and a Chinese one, side by side, as there."""
        options = self.words.options
        if language == "mixed":
            return f"{self.words.text(rng, 'en', options)} {self.words.text(rng, 'zh', options)[:2]}"
        return self.words.text(rng, language, options)

    def render(self, rng: np.random.Generator, width: int, height: int, language: str) -> SynthSample:
        from qwenimage.eval.text_edit_suite import render_pair
        from qwenimage.synth.scenes import photo_entries

        if width != height:
            raise ValueError(f"edit_pairs renders square scenes, got {width}x{height}")
        language = language if language in ("zh", "mixed") else "en"
        wording = self.options.wording or ("zh" if language == "zh" else "en")  # of the instruction and caption
        weights = np.array([self.options.kinds.get(k, 0.0) for k in KINDS])
        kind = KINDS[int(rng.choice(len(KINDS), p=weights / weights.sum()))]
        old, new = self.texts(rng, language, kind)
        if self.options.layout == "words":
            if kind != "text":
                raise ValueError("edit_pairs options: the words layout has text edits only; set kinds: {text: 1}")
            pair = self.words_pair(rng, width, height, language, old, new)
        else:
            photos = photo_entries(self.config.background_dir, self.config.builtin_photos)
            sizes = self.options.font_sizes
            ceiling = int(rng.integers(sizes[0], sizes[1] + 1)) if sizes else None
            pair = render_pair(rng, width, old, new, self.fonts, photos, recolor=kind == "color",
                               faces=self.scene_faces(), max_font_size=ceiling)
        if kind == "text" and self.options.instructions and wording == "en":
            instruction = str(rng.choice(self.options.instructions)).format(old=old, new=new)
        else:
            instruction = self.instruction(rng, wording, kind, old, new, pair["meta"])
        caption = self.caption(wording, new, pair["meta"]["medium"])
        box = tuple(int(v) for v in pair["box"])
        return SynthSample(
            image=pair["edited"], text=new, caption=caption, strategy=self.name, language=language,
            lines=[TextBox(new, box)], words=[TextBox(new, box)], fonts=[pair["meta"]["font"]], colors={},
            extra={**pair["meta"], "kind": kind, "old_text": old, "new_text": new, "region": list(box)},
            texts=[new], source=pair["source"], instruction=instruction)

    def scene_faces(self) -> list | None:
        """The fonts of the scene layout: the words options' `fonts` when given (e.g. the one the model spells in),
        else None (any print face, as the text-edit suite draws)."""
        names = self.words.options.fonts
        if not names:
            return None
        faces = [face for face in self.fonts.faces if face.name in names]
        if not faces:
            raise ValueError(f"edit_pairs: none of the fonts {list(names)} is installed")
        return faces

    def words_pair(self, rng: np.random.Generator, width: int, height: int, language: str, old: str,
                   new: str) -> dict:
        """Source and edited pictures of the words strategy from one seed (background, face, colour and place are
        the same draws; with a fixed font size and pen position the letters of both texts share one grid), and the
        region: the union of both text boxes, padded by 2 pixels."""
        seed = int(rng.integers(2 ** 62))
        source, edited = (self.words.draw_text(np.random.default_rng(seed), width, height, language, text)
                          for text in (old, new))
        boxes = [source.lines[0].box, edited.lines[0].box]
        box = (max(0, min(b[0] for b in boxes) - 2), max(0, min(b[1] for b in boxes) - 2),
               min(width, max(b[2] for b in boxes) + 2), min(height, max(b[3] for b in boxes) + 2))
        meta = {"scene": f"words:{source.extra['background']}", "medium": "sign", "font": source.fonts[0],
                "font_size": source.extra["font_size"]}  # the edited text's too: the size is drawn before the text
        return {"source": source.image, "edited": edited.image, "box": box, "meta": meta}

    @staticmethod
    def caption(language: str, text: str, medium: str) -> str:
        """The edited image's caption: 'a shop sign that says "DUST"' (its medium, from the suite's media)."""
        if language == "zh":
            return f'写着"{text}"的招牌'
        return f'a {medium.replace("_", " ")} that says "{text}"'

    @staticmethod
    def instruction(rng: np.random.Generator, language: str, kind: str, old: str, new: str, meta: dict) -> str:
        if kind == "text":
            return str(rng.choice(TEXT_INSTRUCTIONS[language])).format(old=old, new=new)
        from qwenimage.synth.colors import BY_NAME

        color = BY_NAME[meta["new_color"]]
        return str(rng.choice(COLOR_INSTRUCTIONS[language])).format(
            old=old, color=color.zh if language == "zh" else color.en)
