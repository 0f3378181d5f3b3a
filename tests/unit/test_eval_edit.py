"""Edit consistency: the text-edit suite's ground truth, scoring of pairs, shifts and colour drift, pair discovery."""

import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from qwenimage.eval.edit import EDIT_METRICS, load_pair, score_loaded, score_pairs
from qwenimage.eval.edit_pairs import read_pairs
from qwenimage.eval.pair_report import summarize
from qwenimage.eval.text_edit_suite import (TextEditSuiteConfig, build_text_edit_pairs, word_pair, write_suite)
from qwenimage.ocr import OcrEngine

CONFIG = TextEditSuiteConfig(n=2, size=256)  # one English pair, one Chinese pair


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text-edit")
    pairs = build_text_edit_pairs(CONFIG)
    write_suite(pairs, folder)
    return folder, pairs


def test_suite_pairs_differ_only_inside_their_region(suite):
    _, pairs = suite
    assert [pair.language for pair in pairs] == ["en", "zh"]
    for pair in pairs:
        source, edited = np.asarray(pair.source), np.asarray(pair.edited)
        changed = np.any(source != edited, axis=2)
        assert changed.any() and not (changed & ~pair.region).any()
        assert 0 < pair.region.mean() < 0.6
        assert f'"{pair.old_text}"' in pair.instruction or f"“{pair.old_text}”" in pair.instruction
        assert pair.new_text != pair.old_text and pair.new_text in pair.instruction


def test_suite_is_deterministic_and_follows_its_seed():
    again = build_text_edit_pairs(CONFIG, range(1))[0]
    first = build_text_edit_pairs(CONFIG, range(1))[0]
    assert np.array_equal(np.asarray(again.source), np.asarray(first.source))
    assert np.array_equal(np.asarray(again.edited), np.asarray(first.edited))
    other_seed = [word_pair(TextEditSuiteConfig(n=8, seed=7), i) for i in range(8)]
    assert other_seed != [word_pair(TextEditSuiteConfig(n=8), i) for i in range(8)]


def test_ground_truth_scored_against_itself_is_perfect_and_reads_the_new_text(suite):
    folder, pairs = suite
    records, thumbs = score_pairs(read_pairs(folder), OcrEngine(), progress=False)
    for record, pair in zip(records, pairs):
        assert record["psnr"] == math.inf and record["ssim"] == 1.0 and record["delta_e"] == 0.0
        assert record["shift_dx"] == 0.0 and record["shift_dy"] == 0.0
        assert record["new_text"] == pair.new_text
        assert record["ocr_exact"] == 1.0 and record["ocr_agreement"] == 1.0, record["ocr_reading"]
        assert len(thumbs[pair.id]) == 3
    summary = summarize(records, EDIT_METRICS)
    assert summary["psnr"]["value"] == math.inf and summary["ocr_exact"]["value"] == 1.0
    assert summary["ssim"]["low"] == summary["ssim"]["high"] == 1.0


def _with_edited(folder, tmp_path, change) -> list:
    """A copy of the suite whose edited images went through `change` ([H, W, 3] -> [H, W, 3])."""
    copy = tmp_path / "pairs"
    shutil.copytree(folder, copy)
    for path in copy.glob("*.edited.png"):
        Image.fromarray(change(np.asarray(Image.open(path).convert("RGB")))).save(path)
    return read_pairs(copy)


def test_a_shifted_edit_is_measured_and_lowers_the_scores(suite, tmp_path):
    pairs = _with_edited(suite[0], tmp_path, lambda image: np.roll(image, 3, axis=1))
    for pair in pairs:
        record = score_loaded(load_pair(pair))
        assert abs(record["shift_dx"] - 3.0) < 0.1 and abs(record["shift_dy"]) < 0.1
        assert record["psnr"] < 40 and record["ssim"] < 1.0
        assert record["reasons"]["ocr_exact"] == "OCR turned off"


def test_a_global_colour_change_is_colour_drift(suite, tmp_path):
    pairs = _with_edited(suite[0], tmp_path, lambda image: np.clip(image.astype(int) + [20, 0, -20], 0, 255)
                         .astype(np.uint8))
    records = [score_loaded(load_pair(pair)) for pair in pairs]
    assert all(r["delta_e"] > 1.0 and math.isfinite(r["psnr"]) for r in records)
    assert all(abs(r["shift"]) < 0.05 for r in records)
    # the summary pools squared errors: its PSNR is the PSNR of all outside pixels of all pairs together
    loaded = [load_pair(pair) for pair in pairs]
    outside = [(l.source[~l.region], l.edited[~l.region]) for l in loaded]
    pooled = peak_signal_noise_ratio(np.concatenate([s for s, _ in outside]), np.concatenate([e for _, e in outside]),
                                     data_range=255)
    summary = summarize(records, EDIT_METRICS)
    assert summary["psnr"]["value"] == pytest.approx(pooled, rel=1e-9)
    assert summary["delta_e"]["low"] <= summary["delta_e"]["value"] <= summary["delta_e"]["high"]
    assert summarize(records, EDIT_METRICS) == summary  # seeded bootstrap


def test_an_edited_image_of_another_size_is_resized_and_said_so(suite, tmp_path):
    pairs = _with_edited(suite[0], tmp_path, lambda image: np.asarray(Image.fromarray(image).resize((320, 320))))
    record = score_loaded(load_pair(pairs[0]))
    assert record["resized_from"] == [320, 320] and math.isfinite(record["psnr"])


def test_folder_convention_manifest_and_edited_override(suite, tmp_path):
    folder, pairs = suite
    plain = tmp_path / "plain"
    plain.mkdir()
    for pair in pairs:  # the file convention alone, no manifest and no texts
        for role in ("source", "edited"):
            shutil.copy(folder / f"{pair.id}.{role}.png", plain / f"{pair.id}.{role}.png")
    found = read_pairs(plain)
    assert [p.id for p in found] == [p.id for p in pairs] and all(p.mask is None and p.new_text is None for p in found)
    from_manifest = read_pairs(folder / "pairs.jsonl")
    assert [p.new_text for p in from_manifest] == [p.new_text for p in pairs]
    assert from_manifest[0].region == pairs[0].box
    other = tmp_path / "other"
    other.mkdir()
    for pair in pairs:
        shutil.copy(folder / f"{pair.id}.source.png", other / f"{pair.id}.png")  # an editor that did nothing
    overridden = read_pairs(folder, edited_dir=other)
    assert all(p.edited.parent == other for p in overridden)
    record = score_loaded(load_pair(overridden[0]))
    assert record["psnr"] == math.inf  # unchanged outside the region, too


def test_manifest_errors_name_the_line(tmp_path):
    manifest = tmp_path / "pairs.jsonl"
    manifest.write_text(json.dumps({"id": "a", "source": "a.png"}) + "\n")
    with pytest.raises(ValueError, match=r"pairs.jsonl:1: missing or empty 'edited'"):
        read_pairs(manifest)
    manifest.write_text(json.dumps({"id": "a", "source": "a.png", "edited": "b.png", "region": [5, 5, 2, 9]}) + "\n")
    with pytest.raises(ValueError, match=r"region \[5, 5, 2, 9\]"):
        read_pairs(manifest)


def test_another_editors_results_are_compared_with_the_ground_truth_inside_the_region(suite, tmp_path):
    """With edited_dir the manifest's edited image is the ground truth: PSNR / ΔE to it inside the region."""
    folder, pairs = suite
    copies, recoloured = tmp_path / "copies", tmp_path / "recoloured"
    copies.mkdir(), recoloured.mkdir()
    for pair in pairs:
        truth = np.asarray(pair.edited)
        Image.fromarray(truth).save(copies / f"{pair.id}.png")  # an editor that drew the ground truth
        tinted = truth.copy()
        tinted[pair.region] = np.clip(tinted[pair.region].astype(int) + [40, -40, 0], 0, 255)  # other ink and paint
        Image.fromarray(tinted).save(recoloured / f"{pair.id}.png")
    exact = [score_loaded(load_pair(p)) for p in read_pairs(folder, edited_dir=copies)]
    assert all(r["target_psnr"] == math.inf and r["target_delta_e"] == 0.0 for r in exact)
    tinted_pairs = read_pairs(folder, edited_dir=recoloured)
    assert all(p.target == folder / f"{p.id}.edited.png" for p in tinted_pairs)
    tinted = [score_loaded(load_pair(p)) for p in tinted_pairs]
    assert all(r["psnr"] == math.inf for r in tinted)  # outside the region the two editors agree
    assert all(15 < r["target_psnr"] < 40 and r["target_delta_e"] > 5 for r in tinted)
    summary = summarize(tinted, EDIT_METRICS)
    sse, count = sum(r["target_sse"] for r in tinted), sum(r["target_count"] for r in tinted)
    assert summary["target_psnr"]["value"] == pytest.approx(10 * math.log10(255 ** 2 * count / sse))
    plain = score_loaded(load_pair(read_pairs(folder)[0]))  # no other editor: the edited image is the truth
    assert plain["target_psnr"] is None and plain["reasons"]["target_psnr"] == "no ground truth"
    assert summarize([plain], EDIT_METRICS)["target_psnr"]["n"] == 0
    small = tmp_path / "small.png"
    Image.fromarray(np.asarray(pairs[0].edited)).resize((64, 64)).save(small)
    with pytest.raises(ValueError, match=r"ground truth .*small.png is 64x64"):
        load_pair(tinted_pairs[0].__class__(**{**vars(tinted_pairs[0]), "target": small}))


def test_ocr_reads_the_region_with_a_line_height_of_context_around_it():
    """The detector misses a line cropped tight to it: the crop keeps the region's height on each side (at least
    16 px), inside the picture."""
    from qwenimage.eval.edit import LoadedPair, ocr_crop

    edited = np.zeros((200, 300, 3), np.uint8)
    loaded = LoadedPair(pair=None, source=edited, edited=edited, region=None, box=(100, 90, 200, 120),
                        edited_size=(300, 200))
    assert ocr_crop(loaded).size == (100 + 2 * 30, 30 + 2 * 30)
    near_edge = LoadedPair(pair=None, source=edited, edited=edited, region=None, box=(5, 190, 60, 196),
                           edited_size=(300, 200))
    assert ocr_crop(near_edge).size == (60 + 16, 200 - 174)
