"""Text-edit training data and the mini edit model (issue 18): the edit_pairs synth strategy, its shards as TI2I
records, the 128x128 edit area of an edit pipeline folder."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from qwenimage.eval.suites import heldout_words
from qwenimage.eval.text_edit_suite import suite_texts, suite_words
from qwenimage.synth.config import SynthConfig
from qwenimage.synth.edit_pairs import EditPairsOptions, EditPairsStrategy
from qwenimage.synth.sample import Discard
from qwenimage.synth.wordlists import find_words

SIZE = 128
WORDS = {"max_chars": 10, "phrase_share": 0.2, "case_share": 0.5}


def rendered(kind: str, count: int, seed: int = 0):
    """`count` pairs of one kind, each from the first attempt that is not discarded."""
    strategy = EditPairsStrategy(SynthConfig(edit_pairs={"kinds": {kind: 1.0}}, words=WORDS))
    samples, attempt = [], 0
    while len(samples) < count:
        try:
            samples.append(strategy.render(np.random.default_rng([seed, attempt]), SIZE, SIZE, "en"))
        except Discard:
            pass
        attempt += 1
    return samples


def outside(sample) -> np.ndarray:
    """[H, W] True outside the pair's region box."""
    x0, y0, x1, y1 = sample.extra["region"]
    keep = np.ones((SIZE, SIZE), bool)
    keep[y0:y1, x0:x1] = False
    return keep


@pytest.mark.parametrize("kind", ["text", "color"])
def test_pairs_differ_only_inside_the_region_and_quote_the_new_text(kind):
    for sample in rendered(kind, 3, seed=1):
        source, edited = np.asarray(sample.source), np.asarray(sample.image)  # [H, W, 3]
        assert source.shape == edited.shape == (SIZE, SIZE, 3)
        assert np.array_equal(source[outside(sample)], edited[outside(sample)])  # PSNR outside: infinite
        assert not np.array_equal(source, edited)
        new = sample.extra["new_text"]
        assert f'"{new}"' in sample.instruction and f'"{new}"' in sample.caption
        if kind == "text":
            assert new.lower() != sample.extra["old_text"].lower()
        else:
            assert new == sample.extra["old_text"] and sample.extra["new_color"] != sample.extra["old_color"]
            assert sample.extra["new_color"] in sample.instruction


def test_no_held_out_or_text_edit_suite_word_is_drawn():
    banned = set(heldout_words("suite:en-words")) | suite_words()
    assert {"open", "closed", "juice", "night"} <= suite_words()
    for sample in rendered("text", 6, seed=2):
        texts = (sample.extra["old_text"], sample.extra["new_text"])
        assert not find_words(" ".join(texts), banned), texts
        assert not {t.lower() for t in texts} & suite_texts()


def test_bad_options_name_the_value():
    with pytest.raises(ValueError, match="txt"):
        EditPairsOptions.from_dict({"kinds": {"txt": 1.0}})
    with pytest.raises(ValueError, match="bogus"):
        EditPairsStrategy(SynthConfig(edit_pairs={"bogus": 1}))
    with pytest.raises(ValueError, match="-1"):
        EditPairsOptions.from_dict({"kinds": {"text": -1.0}})
    with pytest.raises(ValueError, match="128x96"):
        EditPairsStrategy(SynthConfig()).render(np.random.default_rng(0), 128, 96, "en")


def edit_job(count: int = 4):
    from qwenimage.synth.job import SynthJob

    return SynthJob(count=count, strategies={"edit_pairs": 1}, languages={"en": 1}, width=SIZE, height=SIZE, seed=7,
                    shard_size=2, verify_fraction=0.0, synth={"words": WORDS, "edit_pairs": {"kinds": {"text": 1}}})


def test_written_shards_are_ti2i_records_and_a_second_run_writes_nothing(tmp_path):
    from qwenimage.synth.runner import RunOptions, run_job
    from qwenimage.train.records import read_records

    out, options = tmp_path / "pairs", RunOptions(progress=False, report_samples=0)
    first = run_job(edit_job(), out, options)
    assert first["written"] == 4 and first["run"]["shards_rendered"] == 2
    records = read_records([out])
    assert len(records) == 4
    for record in records:
        assert "ti2i" in record.tasks() and record.source.size == record.image.size == (SIZE, SIZE)
        assert record.instruction and record.caption and record.text in record.instruction
    shards = sorted(out.glob("synth-*.tar"))
    stamps = [os.stat(p).st_mtime_ns for p in shards]
    second = run_job(edit_job(), out, options)
    assert second["run"]["shards_rendered"] == 0 and second["run"]["shards_skipped"] == 2
    assert [os.stat(p).st_mtime_ns for p in shards] == stamps
    with pytest.raises(ValueError, match="different synth job"):
        run_job(edit_job(count=6), out, options)


def test_a_job_json_without_the_edit_pairs_option_still_resumes(tmp_path):
    """Synth folders written before SynthConfig.edit_pairs existed are the same job when it stays default."""
    from qwenimage.synth.job import SynthJob
    from qwenimage.synth.runner import JOB_FILE, RunOptions, run_job

    job, out = SynthJob(count=2, strategies={"pure": 1}, width=64, height=64, shard_size=2, verify_fraction=0.0), \
        tmp_path / "old"
    run_job(job, out, RunOptions(progress=False, report_samples=0))
    stored = json.loads((out / JOB_FILE).read_text())
    del stored["synth_config"]["edit_pairs"]
    (out / JOB_FILE).write_text(json.dumps(stored))
    assert run_job(job, out, RunOptions(progress=False, report_samples=0))["run"]["shards_rendered"] == 0


def test_a_tar_sample_with_a_source_but_no_instruction_is_a_bad_record(tmp_path):
    import io
    import tarfile

    from qwenimage.train.records import read_sources

    png = io.BytesIO()
    Image.new("RGB", (16, 16)).save(png, format="PNG")
    with tarfile.open(tmp_path / "synth-000000.tar", "w") as tar:
        members = (("k.png", png.getvalue()), ("k.source.png", png.getvalue()), ("k.json", b'{"caption": "x"}'))
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    records, bad = read_sources([tmp_path])
    assert not records and "instruction" in bad[0].reason


def test_the_mini_edit_variant_edits_at_128_pixels(tmp_path):
    from qwenimage.mini.ship import default_model_dir, edit_variant, verify_folder
    from qwenimage.pipelines.loading import EDIT_STYLES, _model_index, check_requests, size_limits
    from qwenimage.pipelines.request import GenerationRequest
    from qwenimage.pipelines.tasks import target_size
    from qwenimage.train.data import pipeline_edit_area

    folder = edit_variant(default_model_dir(verify=False), tmp_path / "edit")
    verify_folder(folder)
    index = _model_index(folder)
    assert EDIT_STYLES[index["_class_name"]] == "edit" and index["processor"][1] == "Qwen2VLProcessor"
    assert size_limits(folder).edit_area == pipeline_edit_area(folder) == SIZE * SIZE
    image = tmp_path / "sign.png"
    Image.new("RGB", (SIZE, SIZE), "white").save(image)
    request = GenerationRequest(prompt='change the text to "CLOSED"', images=[image])
    check_requests(folder, [request])
    assert target_size(request, size_limits(folder), 16, (SIZE, SIZE)) == (SIZE, SIZE)
    wide = edit_variant(folder, tmp_path / "edit-256", edit_side=256)  # small signs: edits at 256x256
    verify_folder(wide)
    assert size_limits(wide).edit_area == pipeline_edit_area(wide) == 256 * 256
    assert target_size(request, size_limits(wide), 16, (SIZE, SIZE)) == (256, 256)
    with pytest.raises(ValueError, match="edit side 250 is out of range"):
        edit_variant(folder, tmp_path / "bad", edit_side=250)


def test_assemble_writes_the_minis_text_focus_with_its_chinese_geometry(tmp_path):
    from qwenimage.cli.main import main
    from qwenimage.mini.build import MINI_TEXT_FOCUS_CJK
    from qwenimage.mini.ship import assemble_pipeline, default_model_dir, edit_variant, verify_folder
    from qwenimage.pipelines.loading import model_settings
    from qwenimage.pipelines.text_focus import TextFocus

    base = default_model_dir(verify=False)
    out = tmp_path / "snap"
    assert main(["mini", "assemble", "--base", str(base), "--transformer", str(base / "transformer"),
                 "--out", str(out), "--text-focus"]) == 0
    verify_folder(out)  # the manifest is written after the settings
    focus = TextFocus.from_settings(model_settings(out))
    chinese = focus.for_text("营业中")
    assert focus.for_text("open") is focus and chinese.font == MINI_TEXT_FOCUS_CJK["font"]
    assert (chinese.font_size, chinese.max_chars, chinese.paper) == (32, 3, focus.paper)  # the rest inherited
    plain = assemble_pipeline(base, base / "transformer", tmp_path / "plain")  # without: the base's settings
    assert model_settings(plain) == model_settings(base)
    wide = edit_variant(base, tmp_path / "edit-256", edit_side=256)  # the 128-px geometry does not hold there
    with pytest.raises(ValueError, match="128x128 canvas.* 65536 pixels"):
        assemble_pipeline(wide, base / "transformer", tmp_path / "bad", text_focus=model_settings(out)["text_focus"])
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.tmp").exists()


def test_edit_area_out_of_range_names_the_value():
    from qwenimage.pipelines.sizes import SizeLimits

    with pytest.raises(ValueError, match="edit_area 100 "):
        SizeLimits(edit_area=100)


def test_the_edit_style_shows_the_vl_model_the_condition_area():
    from qwenimage.text.encoder import EDIT_STYLES, edit_style

    assert edit_style("edit", SIZE * SIZE).vl_area == SIZE * SIZE
    assert edit_style("edit_plus", SIZE * SIZE) == EDIT_STYLES["edit_plus"]


MONO = {"fonts": ["DejaVu Sans Mono Bold"], "font_size": 24, "align": "left", "jitter": 0.0, "colors": False,
        "phrase_share": 0.0, "case_share": 0.0, "max_chars": 8}


def test_the_words_layout_draws_both_texts_on_one_letter_grid_and_uses_the_given_wordings():
    wordings = ['Change the text to "{new}"', 'Change the text "{old}" to "{new}"']
    strategy = EditPairsStrategy(SynthConfig(words=MONO, edit_pairs={"kinds": {"text": 1}, "layout": "words",
                                                                     "instructions": wordings}))
    seen = set()
    for seed in range(6):
        sample = strategy.render(np.random.default_rng(seed), SIZE, SIZE, "en")
        source, edited = np.asarray(sample.source), np.asarray(sample.image)  # [H, W, 3]
        assert np.array_equal(source[outside(sample)], edited[outside(sample)]) and not np.array_equal(source, edited)
        old, new = sample.extra["old_text"], sample.extra["new_text"]
        assert sample.caption == f'a sign that says "{new}"'
        assert sample.instruction in {w.format(old=old, new=new) for w in wordings}
        seen.add(sample.instruction.startswith('Change the text to'))
        # the same pen position and baseline: the ink of both starts in the same column, within one text line
        ink = [np.nonzero((image < 128).any(axis=2)) for image in (source, edited)]  # (rows, cols) of dark pixels
        assert abs(ink[0][1].min() - ink[1][1].min()) <= 3
        assert abs(np.median(ink[0][0]) - np.median(ink[1][0])) <= 4
    assert seen == {True, False}


def test_bad_layout_or_wordings_name_the_value():
    with pytest.raises(ValueError, match="'grid'"):
        EditPairsOptions.from_dict({"layout": "grid"})
    with pytest.raises(ValueError, match="Change it"):
        EditPairsOptions.from_dict({"instructions": ["Change it"]})
    with pytest.raises(ValueError, match="colour"):
        EditPairsOptions.from_dict({"instructions": ['Make "{new}" {colour}']})
    strategy = EditPairsStrategy(SynthConfig(words=MONO, edit_pairs={"kinds": {"color": 1}, "layout": "words"}))
    with pytest.raises(ValueError, match="text edits only"):
        strategy.render(np.random.default_rng(0), SIZE, SIZE, "en")


def test_a_word_list_draws_only_its_words():
    listed = heldout_words("suite:en-words")
    words = {**MONO, "exclude_words": "", "word_list": "suite:en-words"}
    strategy = EditPairsStrategy(SynthConfig(words=words, edit_pairs={"kinds": {"text": 1}, "layout": "words"}))
    for seed in range(5):
        sample = strategy.render(np.random.default_rng(seed), SIZE, SIZE, "en")
        assert {sample.extra["old_text"], sample.extra["new_text"]} <= listed
    with pytest.raises(ValueError, match="no word"):
        from qwenimage.synth.words import listed_word_list

        listed_word_list("suite:en-words", frozenset(listed))


def test_with_size_jitter_both_texts_of_a_pair_share_one_glyph_size_and_pen():
    """Glyph sizes 13-24 px across pairs; within a pair the source's and the edit's texts are drawn at one size from
    one pen column (the size is drawn before the text), and the pair's metadata names that size."""
    words = {**MONO, "size_jitter": 1.0, "vertical_jitter": 1.0}
    strategy = EditPairsStrategy(SynthConfig(words=words, edit_pairs={"kinds": {"text": 1}, "layout": "words"}))
    sizes = set()
    for seed in range(10):
        sample = strategy.render(np.random.default_rng(seed), SIZE, SIZE, "en")
        old, new = sample.extra["old_text"], sample.extra["new_text"]
        size = sample.extra["font_size"]
        sizes.add(size)
        source, edited = np.asarray(sample.source), np.asarray(sample.image)  # [H, W, 3]
        ink = [np.nonzero((image < 128).any(axis=2))[1] for image in (source, edited)]  # columns of dark pixels
        assert abs(ink[0].min() - ink[1].min()) <= 3
        # DejaVu Sans Mono advances 0.602 of the size a letter: each text's ink spans about len - 1 advances + a glyph
        for text, cols in zip((old, new), ink):
            assert abs((cols.max() - cols.min()) - 0.602 * size * len(text)) <= 0.602 * size
    assert min(sizes) <= 17 and max(sizes) >= 21 and min(sizes) >= 13 and max(sizes) <= 24


def test_the_scene_layout_draws_in_the_given_fonts_and_keeps_the_suites_draws_without_them():
    mono = "DejaVu Sans Mono Bold"
    strategy = EditPairsStrategy(SynthConfig(words={**WORDS, "fonts": [mono]}, edit_pairs={"kinds": {"text": 1}}))
    drawn = []
    for attempt in range(12):
        try:
            drawn.append(strategy.render(np.random.default_rng([5, attempt]), SIZE, SIZE, "en"))
        except Discard:
            pass
    assert len(drawn) >= 3 and {sample.extra["font"] for sample in drawn} == {mono}
    # without fonts: any print face, as the text-edit suite draws
    fonts = {sample.extra["font"] for sample in rendered("text", 6, seed=3)}
    assert len(fonts) > 1, fonts
    with pytest.raises(ValueError, match="No Such Font"):
        EditPairsStrategy(SynthConfig(words={"fonts": ["No Such Font"]})).scene_faces()


def test_the_scene_layout_caps_the_glyph_size_at_the_given_range():
    def sizes(options: dict) -> list[int]:
        strategy = EditPairsStrategy(SynthConfig(words=WORDS, edit_pairs={"kinds": {"text": 1}, **options}))
        drawn = []
        for attempt in range(16):
            try:
                drawn.append(strategy.render(np.random.default_rng([8, attempt]), 256, 256, "en").extra["font_size"])
            except Discard:
                pass
        return drawn

    free, capped = sizes({}), sizes({"font_sizes": [16, 20]})
    assert len(free) >= 4 and len(capped) >= 4
    assert max(free) > 20  # the media fit larger glyphs than the cap at 256 px
    assert max(capped) <= 20 and min(capped) >= 12  # at most the cap; the floor (1/24 of the side) still holds
    for bad in ([20, 16], [16], 16, [5, 10], [16.5, 20]):
        with pytest.raises(ValueError, match="font_sizes"):
            EditPairsOptions.from_dict({"font_sizes": bad})
