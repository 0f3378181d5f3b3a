"""The harness against known answers with the real OCR (rapidocr, ~0.4 s an image): plain synth-engine renders
of en-words words read back (30 of the 250 words, to stay fast), pure noise scores nothing, and one changed
character fails exact match and costs exactly 1/len of 1 - NED."""

import numpy as np
import pytest
from PIL import Image

from qwenimage.eval.generation import oracle_generator
from qwenimage.eval.metrics import score_sample
from qwenimage.eval.stats import aggregate
from qwenimage.eval.suites import load_suite, select
from qwenimage.eval.text_run import TextEvalSettings, load_records, record_score, run_samples, start_run
from qwenimage.ocr import OcrEngine

SIZE = 128  # px: words are drawn at up to 0.3 x 128 = 38 px, which rapidocr reads well


@pytest.fixture(scope="module")
def ocr():
    return OcrEngine()


def test_synth_renders_of_en_words_score_at_least_097(tmp_path, ocr):
    samples = select(load_suite("en-words"), 30)
    settings = TextEvalSettings(suites=["en-words"], source="oracle", size=(SIZE, SIZE))
    start_run(tmp_path, settings, "test", 30)
    run_samples(samples, tmp_path, ocr, generate=oracle_generator(settings), batch_size=8)
    metrics = aggregate([record_score(r) for r in load_records(tmp_path, samples)])
    assert metrics["exact_match"].value >= 0.97 and metrics["word_accuracy"].value >= 0.97
    assert metrics["ned"].value >= 0.98


def test_pure_noise_scores_nothing(ocr):
    rng = np.random.default_rng(0)
    samples = select(load_suite("en-words"), 2)
    noise = [Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)) for _ in samples]
    scores = [score_sample(s.texts, ocr.read(image).text) for s, image in zip(samples, noise)]
    metrics = aggregate(scores)
    assert metrics["exact_match"].value <= 0.01 and metrics["word_accuracy"].value <= 0.01


@pytest.mark.parametrize("word", ["research", "family"])
def test_one_changed_character_fails_exact_match_and_costs_one_over_len(word, ocr):
    from qwenimage.eval.oracle import render_texts

    middle = len(word) // 2
    changed = word[:middle] + "x" + word[middle + 1:]
    right = score_sample([word], ocr.read(render_texts([word], SIZE, SIZE)).text).texts[0]
    wrong = score_sample([word], ocr.read(render_texts([changed], SIZE, SIZE)).text).texts[0]
    assert right.exact and right.ned == 1.0
    assert not wrong.exact and wrong.ned == pytest.approx(right.ned - 1 / len(word))
