"""Synthetic text-rendering engine: images with exact text, boxes and a caption that quotes the text.

    from qwenimage.synth import build_strategy, Discard
    strategy = build_strategy("pure")                    # "pure" | "compositional" | "complex"
    sample = strategy.render(np.random.default_rng(0), 512, 512, "zh")   # SynthSample, or raises Discard
    sample.image, sample.text, sample.caption, sample.metadata()

Modules: corpus (texts: wordfreq vocabularies, GB 2312 tiers, user corpora), fonts (discovery, cmap coverage),
linebreak + layout + draw (wrapping with kinsoku, fitting, boxes), pure / compositional / complex (the three
strategies), captions, templates (JSON layouts in data/templates).
"""

from qwenimage.synth.config import SynthConfig
from qwenimage.synth.sample import Discard, SynthSample, TextBox
from qwenimage.synth.strategies import STRATEGIES, Strategy, build_strategy

__all__ = ["STRATEGIES", "Discard", "Strategy", "SynthConfig", "SynthSample", "TextBox", "build_strategy"]
