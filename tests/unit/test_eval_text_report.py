"""results.json, report.html and `eval compare` on runs scored with a fake OCR reader (no models)."""

import json

import numpy as np
import pytest
from PIL import Image

from qwenimage.eval.compare import compare_runs, format_comparison, write_comparison_html
from qwenimage.eval.report import write_report, write_results
from qwenimage.eval.suites import load_suite, select
from qwenimage.eval.text_run import TextEvalSettings, load_records, run_samples, start_run
from qwenimage.ocr import OcrLine, OcrResult

SAMPLES = select(load_suite("en-words"), 40) + select(load_suite("zh-chars"), 6)


class Reader:
    """Reads the expected text back when the image's green value is 1, a wrong text when it is 2, else nothing."""

    def read(self, image):
        red, green, _ = image.getpixel((0, 0))
        text = SAMPLES[red].texts[0] if green == 1 else "zzz" if green == 2 else None
        return OcrResult([OcrLine(text, [(0, 0), (4, 0), (4, 4), (0, 4)], 0.9)] if text else [])


def make_run(folder, good):
    """A scored run in which sample i reads right when good(i), wrong otherwise."""
    settings = TextEvalSettings(suites=["en-words", "zh-chars"], source="oracle")
    run = start_run(folder, settings, "qwenimage eval text --oracle --suite en-words,zh-chars", None)
    position = {s.id: i for i, s in enumerate(SAMPLES)}

    def generate(samples):
        return [Image.new("RGB", (24, 24), (position[s.id], 1 if good(position[s.id]) else 2, 0)) for s in samples]

    run_samples(SAMPLES, folder, Reader(), generate=generate, batch_size=8)
    records = load_records(folder, SAMPLES)
    return write_results(folder, run, records), records


def test_results_hold_every_suite_and_group_with_intervals(tmp_path):
    results, records = make_run(tmp_path, lambda i: i % 4 != 0)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["samples"] == len(SAMPLES) and list(saved["suites"]) == ["en-words", "zh-chars"]
    words = saved["suites"]["en-words"]
    assert words["n"] == 40 and words["metrics"]["exact_match"]["value"] == pytest.approx(30 / 40)
    assert words["metrics"]["exact_match"]["low"] < 0.75 < words["metrics"]["exact_match"]["high"]
    zh = saved["suites"]["zh-chars"]
    assert list(zh["groups"]) == ["tier:L1"] and zh["groups"]["tier:L1"]["n"] == 6
    assert saved["run"]["command"].startswith("qwenimage eval text")


def test_the_report_shows_table_chart_examples_and_command(tmp_path):
    results, records = make_run(tmp_path, lambda i: i % 4 != 0)
    page = write_report(tmp_path, results, records).read_text(encoding="utf-8")
    assert page.count("<svg") == 2 and "exact match" in page and "tier:L1" in page
    assert "qwenimage eval text --oracle --suite en-words,zh-chars" in page
    assert "en-words: best and worst" in page and page.count("<figure class='worst'>") == 4 + 2
    # 4 best + 4 worst of en-words; zh-chars has 6 samples, so 4 best and the 2 others as worst
    assert page.count("data:image/jpeg;base64,") == 8 + 6
    failed = [s.id for i, s in enumerate(SAMPLES[:40]) if i % 4 == 0]
    assert sum(i in page for i in failed) == 4 and "OCR: <i>zzz</i>" in page  # the worst, with their reading


def test_compare_finds_a_significant_improvement_on_shared_ids(tmp_path):
    make_run(tmp_path / "a", lambda i: i % 2 == 0)
    make_run(tmp_path / "b", lambda i: True)
    result = compare_runs(tmp_path / "a", tmp_path / "b")
    entry = result["suites"]["en-words"]
    assert entry["n"] == 40 and entry["difference"]["exact_match"]["difference"] == pytest.approx(0.5)
    assert entry["difference"]["exact_match"]["significant"]
    same = compare_runs(tmp_path / "b", tmp_path / "b")["suites"]["en-words"]["difference"]
    assert not any(d["significant"] for d in same.values())
    text = format_comparison(result)
    assert "significant" in text and "+0.500" in text
    write_comparison_html(tmp_path / "cmp.html", result)
    assert "en-words" in (tmp_path / "cmp.html").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="not an eval text run"):
        compare_runs(tmp_path / "a", tmp_path)


def test_pixel_drift_counts_only_the_pixels_outside_the_text(tmp_path):
    """Two runs of one prompt and seed: a change inside an OCR box (grown by TEXT_PAD) leaves the PSNR outside the
    text infinite; a change of the background by 16 levels everywhere gives 10 log10(255² / 16²) dB."""
    from qwenimage.eval.compare import TEXT_PAD, pixel_drift, text_boxes_mask

    box = [[10, 10], [20, 10], [20, 16], [10, 16]]
    record = {"image": "images/x.png", "ocr": {"lines": [{"text": "hi", "box": box, "score": 0.9}]}}
    mask = text_boxes_mask([record], (40, 32))
    assert mask.shape == (32, 40) and mask[10 - TEXT_PAD, 10 - TEXT_PAD] and not mask[10 - TEXT_PAD - 1, 10]
    assert mask.sum() == (10 + 2 * TEXT_PAD + 1) * (6 + 2 * TEXT_PAD + 1)

    def run(name, background, text_value):
        folder = tmp_path / name / "images"
        folder.mkdir(parents=True)
        pixels = np.full((32, 40, 3), background, np.uint8)
        pixels[10:17, 10:21] = text_value
        Image.fromarray(pixels).save(folder / "x.png")
        return tmp_path / name

    a, b, c = run("a", 200, 0), run("b", 200, 90), run("c", 216, 0)
    same_outside = pixel_drift([(a, record)], [(b, record)])
    assert same_outside["images"] == 1 and same_outside["psnr_outside_text"] == float("inf")
    assert same_outside["psnr_whole"] < 30
    shifted = pixel_drift([(a, record)], [(c, record)])
    assert shifted["psnr_outside_text"] == pytest.approx(10 * np.log10(255 ** 2 / 16 ** 2))
    assert pixel_drift([(a, {"image": "images/missing.png"})], [(b, record)]) is None
