"""The three rendering strategies behind one protocol.

    strategy = build_strategy("pure", SynthConfig())
    sample = strategy.render(np.random.default_rng(seed), 512, 512, "zh")   # may raise Discard

`render` depends only on the generator and its arguments: the same seed gives byte-identical images on the
same machine (same fonts and photos). Strategies load their fonts, corpora and photos lazily, once per
process, and pickle as their config alone.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from qwenimage.synth.config import SynthConfig
from qwenimage.synth.sample import SynthSample

STRATEGIES = ("pure", "compositional", "complex", "words", "edit_pairs")


class Strategy(Protocol):
    name: str

    def render(self, rng: np.random.Generator, width: int, height: int, language: str) -> SynthSample: ...


def build_strategy(name: str, config: SynthConfig | None = None) -> Strategy:
    strategy = _build_strategy(name, config)
    excluded = frozenset(config.exclude_words) if config is not None else frozenset()
    return WithoutWords(strategy, excluded) if excluded else strategy


class WithoutWords:
    """A strategy whose samples never show an excluded word: a sample that does (a name, a button label, a
    month drawn by a template slot) is discarded as "excluded_word" and the runner renders another attempt."""

    def __init__(self, inner: Strategy, excluded: frozenset[str]):
        self.inner, self.excluded = inner, excluded
        self.name = inner.name

    def render(self, rng: np.random.Generator, width: int, height: int, language: str) -> SynthSample:
        from qwenimage.synth.sample import Discard
        from qwenimage.synth.wordlists import find_words

        sample = self.inner.render(rng, width, height, language)
        found = find_words("\n".join([sample.text, *sample.texts]), self.excluded)
        if found:
            raise Discard("excluded_word", ", ".join(sorted(set(found))))
        return sample


def _build_strategy(name: str, config: SynthConfig | None) -> Strategy:
    if name == "pure":
        from qwenimage.synth.pure import PureStrategy

        return PureStrategy(config)
    if name == "compositional":
        from qwenimage.synth.compositional import CompositionalStrategy

        return CompositionalStrategy(config)
    if name == "complex":
        from qwenimage.synth.complex import ComplexStrategy

        return ComplexStrategy(config)
    if name == "words":
        from qwenimage.synth.words import WordsStrategy

        return WordsStrategy(config)
    if name == "edit_pairs":
        from qwenimage.synth.edit_pairs import EditPairsStrategy

        return EditPairsStrategy(config)
    raise ValueError(f"unknown strategy {name!r}; choose from {STRATEGIES}")
