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

STRATEGIES = ("pure", "compositional", "complex")


class Strategy(Protocol):
    name: str

    def render(self, rng: np.random.Generator, width: int, height: int, language: str) -> SynthSample: ...


def build_strategy(name: str, config: SynthConfig | None = None) -> Strategy:
    if name == "pure":
        from qwenimage.synth.pure import PureStrategy

        return PureStrategy(config)
    if name == "compositional":
        from qwenimage.synth.compositional import CompositionalStrategy

        return CompositionalStrategy(config)
    if name == "complex":
        from qwenimage.synth.complex import ComplexStrategy

        return ComplexStrategy(config)
    raise ValueError(f"unknown strategy {name!r}; choose from {STRATEGIES}")
