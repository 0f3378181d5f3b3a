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


@dataclass(frozen=True)
class EditPairsOptions:
    kinds: dict[str, float] = field(default_factory=lambda: {"text": 0.8, "color": 0.2})  # kind -> weight

    @classmethod
    def from_dict(cls, values: dict | None) -> "EditPairsOptions":
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown edit_pairs options {unknown}; known: {[f.name for f in fields(cls)]}")
        options = cls(**values)
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
            from qwenimage.eval.text_edit_suite import suite_words
            from qwenimage.synth.words import WordsStrategy

            excluded = tuple(sorted(set(self.config.exclude_words) | suite_words()))
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
        wording = "zh" if language == "zh" else "en"  # of the instruction and caption
        weights = np.array([self.options.kinds.get(k, 0.0) for k in KINDS])
        kind = KINDS[int(rng.choice(len(KINDS), p=weights / weights.sum()))]
        old, new = self.texts(rng, language, kind)
        photos = photo_entries(self.config.background_dir, self.config.builtin_photos)
        pair = render_pair(rng, width, old, new, self.fonts, photos, recolor=kind == "color")
        instruction = self.instruction(rng, wording, kind, old, new, pair["meta"])
        caption = self.caption(wording, new, pair["meta"]["medium"])
        box = tuple(int(v) for v in pair["box"])
        return SynthSample(
            image=pair["edited"], text=new, caption=caption, strategy=self.name, language=language,
            lines=[TextBox(new, box)], words=[TextBox(new, box)], fonts=[pair["meta"]["font"]], colors={},
            extra={**pair["meta"], "kind": kind, "old_text": old, "new_text": new, "region": list(box)},
            texts=[new], source=pair["source"], instruction=instruction)

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
