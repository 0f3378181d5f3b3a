"""Legibility: offline OCR reads back what each strategy rendered (a few samples; the runner measures 200)."""

import numpy as np
import pytest

from qwenimage.ocr import OcrEngine, text_agreement
from qwenimage.synth import STRATEGIES, Discard, build_strategy

FLOOR = {"pure": 0.9, "compositional": 0.8, "complex": 0.8, "words": 0.9, "edit_pairs": 0.8}


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


def test_the_synth_check_counts_letter_case_unless_the_face_forces_capitals():
    from qwenimage.synth.worker import agreement

    assert agreement("Announced today", "Announced today") == 1.0
    assert agreement("Announced", "ANNOUNCED") < 0.2  # a caption in mixed case, an image in capitals: caught
    assert agreement("Announced", "ANNOUNCED", case_sensitive=False) == 1.0
    assert agreement("通义 千问", "通义千问") == 1.0 and agreement("ＡＢ", "AB") == 1.0  # spaces, full width


def test_the_engine_reads_upright_text_without_turning_lines_over(engine):
    """Our pictures are upright, so the 180-degree line classifier is off by default (it turned upright lines of
    the text-edit suite over: "push" read as "ysnd"); `upright=False` brings it back for text turned over."""
    from PIL import Image, ImageDraw

    from qwenimage.synth.fonts import FontLibrary

    fonts = FontLibrary.discover()
    face = next(f for f in fonts.faces if f.name == "DejaVu Sans Bold")
    image = Image.new("RGB", (320, 120), "white")
    ImageDraw.Draw(image).text((20, 30), "MONDAY", font=fonts.font(face, 48), fill="black")
    assert engine.upright and engine.read(image).text == "MONDAY"
    assert OcrEngine(upright=False).read(image.rotate(180)).text == "MONDAY"
