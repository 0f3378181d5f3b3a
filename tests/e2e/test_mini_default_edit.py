"""The shipped default model (qwenimage-mini) edits as well as it draws: `qwenimage edit` without --model rewrites
the word on a sign in the layout the model writes (held-out words, the text-edit suite's instruction wording) and
leaves the rest of the picture alone. docs/mini has the measured figures (n=50); this guards a few edits."""

import json

import numpy as np
import pytest

from qwenimage.cli.main import main
from qwenimage.eval.edit import score_pairs
from qwenimage.eval.edit_pairs import EditPair
from qwenimage.mini.ship import SHIPPED_DIR
from qwenimage.synth.config import SynthConfig
from qwenimage.synth.edit_pairs import EditPairsStrategy

pytestmark = pytest.mark.skipif(not (SHIPPED_DIR / "model_index.json").is_file(), reason="no default model shipped")

# configs/synth/mini_edit_pairs_mono_eval.yaml: the en-words suite's held-out words in the text-to-image layout
WORDS = {"fonts": ["DejaVu Sans Mono Bold"], "font_size": 24, "align": "left", "jitter": 0.0, "colors": False,
         "phrase_share": 0.0, "case_share": 0.0, "max_chars": 8, "exclude_words": "", "word_list": "suite:en-words"}
EDITS = {"kinds": {"text": 1}, "layout": "words", "instructions": ['Change the text "{old}" to "{new}"']}


def edit_and_score(tmp_path, cases, *options) -> list[dict]:
    """`qwenimage edit` (the default model, seed 0) on each (id, source image, instruction, new text, region box),
    then the eval harness's scores of the results: OCR of the new text, PSNR outside the region."""
    from qwenimage.ocr import OcrEngine

    pairs = []
    for case_id, image, instruction, new_text, region in cases:
        source = tmp_path / f"{case_id}.source.png"
        image.save(source)
        out = tmp_path / case_id
        argv = ["edit", "--image", str(source), "--prompt", instruction, *options, "--seed", "0", "--out", str(out)]
        assert main(argv) == 0
        (edited,) = sorted(out.glob("*.png"))
        pairs.append(EditPair(case_id, source, edited, new_text=new_text, region=tuple(region)))
    records, _ = score_pairs(pairs, OcrEngine(), progress=False)
    return records


def suite_cases(n: int, size: int, language: str) -> list[tuple]:
    """The text-edit suite's first n pairs in one language, as edit_and_score's cases."""
    from qwenimage.eval.text_edit_suite import TextEditSuiteConfig, build_text_edit_pairs

    pairs = build_text_edit_pairs(TextEditSuiteConfig(n=n, size=size, languages=(language,)))
    return [(pair.id, pair.source, pair.instruction, pair.new_text, pair.box) for pair in pairs]


def test_the_default_model_is_an_edit_pipeline_with_edit_defaults():
    index = json.loads((SHIPPED_DIR / "model_index.json").read_text())
    assert index["_class_name"] == "QwenImageEditPipeline" and "processor" in index
    settings = json.loads((SHIPPED_DIR / "qwenimage.json").read_text())
    assert settings["edit_defaults"] == {"true_cfg_scale": 1.0} and settings["defaults"]["true_cfg_scale"] == 4.0


@pytest.mark.parametrize("colors, rows, count, min_agreement, median_psnr",
                         [(False, 0.0, 3, 0.6, 25.0), (True, 0.0, 5, 0.5, 18.0), (True, 1.0, 5, 0.6, 21.0)])
def test_edit_with_the_default_model_writes_the_new_word_and_keeps_the_rest(tmp_path, monkeypatch, colors, rows,
                                                                             count, min_agreement, median_psnr):
    """White-page signs (stop 33), since stop 34 coloured, gradient and paper ones (docs/mini: 25 dB outside the
    word on n=50; the ink's colour is not kept and dark backgrounds fail, so the bar is lower there), and since
    stop 35 signs at any height (`rows`: the word on its own row; 1 - NED 0.71, 25 dB outside on n=50; stop 34's
    model wrote on its one row: 0.37, 18 dB; on these five pairs 0.30 and 18.8 dB, stop 35's 0.48 and 22.7 dB, stop
    36's 0.81 and 23.4 dB)."""
    monkeypatch.delenv("QWENIMAGE_MODEL", raising=False)
    words = {**WORDS, "colors": colors, "vertical_jitter": rows}
    strategy = EditPairsStrategy(SynthConfig(words=words, edit_pairs=EDITS))
    cases = []
    for index in range(count):
        sample = strategy.render(np.random.default_rng([33, index]), 128, 128, "en")
        cases.append((f"p{index}", sample.source, sample.instruction, sample.extra["new_text"], sample.extra["region"]))
    records = edit_and_score(tmp_path, cases)
    agreement = [r["ocr_agreement"] for r in records]
    assert np.mean(agreement) >= min_agreement, [(r["new_text"], r["ocr_reading"]) for r in records]
    psnrs = [float(r["psnr"]) for r in records]
    assert np.median(psnrs) >= median_psnr and min(psnrs) >= 10, psnrs  # stop 33's model: 9 dB on coloured signs


def test_text_focus_edits_the_suites_photos_with_the_default_model(tmp_path, monkeypatch):
    """`qwenimage edit --text-focus` on the text-edit suite's scenes at 256 px (photos, other fonts, tilted signs,
    words 30-110 px): OCR finds the old word, the model rewrites it on its own 128-px sign, the result goes back in
    the sign's colours. docs/mini (stop 40): 0.96 exact, 1 - NED 0.96, 35.4 dB outside on the suite's 28 English
    pairs; these six (TOILETS, MILK, WINTER, Apples, NO, NORTH) all read exactly there. Without --text-focus the
    default model reads none of the suite's new words (1 - NED 0.05)."""
    monkeypatch.delenv("QWENIMAGE_MODEL", raising=False)
    cases = suite_cases(n=8, size=256, language="en")[2:]
    records = edit_and_score(tmp_path, cases, "--text-focus")
    agreement = [r["ocr_agreement"] for r in records]
    assert np.mean(agreement) >= 0.75, [(r["new_text"], r["ocr_reading"]) for r in records]
    psnrs = [float(r["psnr"]) for r in records]
    assert np.median(psnrs) >= 25 and min(psnrs) >= 18, psnrs


def test_text_focus_edits_the_suites_chinese_signs_with_the_default_model(tmp_path, monkeypatch):
    """`qwenimage edit --text-focus` on the text-edit suite's Chinese pairs at 512 px: the changed characters are
    redrawn in 32-px glyphs on the model's sign (qwenimage.json's `text_focus.cjk`), the others stay the source's.
    docs/mini (stop 43): the 96-character run reads most of the suite's characters; these six (休息中, 面包店, 早安,
    新品, 上海, 秋天) are the suite's first Chinese pairs. Stop 40's model, which had never seen a glyph, read none."""
    monkeypatch.delenv("QWENIMAGE_MODEL", raising=False)
    cases = suite_cases(n=6, size=512, language="zh")
    records = edit_and_score(tmp_path, cases, "--text-focus")
    agreement = [r["ocr_agreement"] for r in records]
    readings = [(r["new_text"], r["ocr_reading"]) for r in records]
    assert np.mean(agreement) >= 0.4 and max(agreement) == 1.0, readings
    psnrs = [float(r["psnr"]) for r in records]
    assert np.median(psnrs) >= 35 and min(psnrs) >= 25, psnrs
