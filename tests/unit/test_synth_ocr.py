"""Legibility: offline OCR reads back what each strategy rendered (a few samples; the runner measures 200)."""

import numpy as np
import pytest

from qwenimage.ocr import OcrEngine, text_agreement
from qwenimage.synth import STRATEGIES, Discard, build_strategy

FLOOR = {"pure": 0.9, "compositional": 0.8, "complex": 0.8}


@pytest.fixture(scope="module")
def engine():
    return OcrEngine()


@pytest.mark.parametrize("name", STRATEGIES)
def test_ocr_reads_the_rendered_text(engine, name):
    strategy = build_strategy(name)
    scores = []
    for seed, language in enumerate(("zh", "en", "mixed")):
        try:
            sample = strategy.render(np.random.default_rng(seed), 512, 512, language)
        except Discard:
            continue
        scores.append(text_agreement(sample.text, engine.read(sample.image).text))
    assert len(scores) >= 2 and np.mean(scores) >= FLOOR[name], scores
