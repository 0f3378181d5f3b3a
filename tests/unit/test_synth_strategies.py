"""The three strategies: determinism, captions quoting the text, boxes on the ink, metadata, pickling."""

import json
import pickle

import numpy as np
import pytest

from qwenimage.synth import STRATEGIES, Discard, build_strategy
from qwenimage.synth.colors import MIN_CONTRAST

SIZE = 256


@pytest.fixture(scope="module")
def strategies():
    return {name: build_strategy(name) for name in STRATEGIES}


def render(strategy, seed, language="zh", size=SIZE):
    for attempt in range(20):  # a seed may be discarded (e.g. text too long): take the next one
        try:
            return strategy.render(np.random.default_rng(seed * 100 + attempt), size, size, language)
        except Discard:
            continue
    raise AssertionError("20 discards in a row")


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_gives_identical_bytes_and_metadata(strategies, name):
    first = strategies[name].render(np.random.default_rng(7), SIZE, SIZE, "en") if name != "compositional" \
        else render(strategies[name], 7, "en")
    rebuilt = build_strategy(name)
    second = rebuilt.render(np.random.default_rng(7), SIZE, SIZE, "en") if name != "compositional" \
        else render(rebuilt, 7, "en")
    assert first.image.tobytes() == second.image.tobytes()
    assert first.metadata() == second.metadata()
    other = render(strategies[name], 8, "en")
    assert other.image.tobytes() != first.image.tobytes()


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("language", ["zh", "en", "mixed"])
def test_caption_quotes_every_text_and_text_matches_lines(strategies, name, language):
    for seed in range(3):
        sample = render(strategies[name], seed, language)
        assert sample.caption_quotes_text(), (sample.caption, sample.texts)
        assert sample.text == "\n".join(line.text for line in sample.lines) or name == "complex"
        squeeze = lambda s: "".join(s.split())  # noqa: E731
        assert sorted(squeeze(sample.text)) == sorted(squeeze("".join(sample.texts)))
        assert sample.strategy == name and sample.language == language
        json.dumps(sample.metadata(), ensure_ascii=False)


@pytest.mark.parametrize("name", STRATEGIES)
def test_boxes_lie_inside_the_image_and_on_the_ink(strategies, name):
    for seed in range(4):
        sample = render(strategies[name], seed, ("zh", "en")[seed % 2])
        gray = np.asarray(sample.image.convert("L"), dtype=np.float32)
        for item in sample.lines + sample.words:
            x0, y0, x1, y1 = item.box
            assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE, item
        for line in sample.lines:
            x0, y0, x1, y1 = line.box
            assert gray[y0:y1, x0:x1].std() > 8, f"no ink in the box of {line.text!r}"


def test_pure_line_boxes_hold_every_text_pixel(strategies):
    """On solid backgrounds every pixel that differs from the background lies in a line box (1 px slack)."""
    checked = 0
    for seed in range(40):
        sample = render(strategies["pure"], seed, ("zh", "en")[seed % 2])
        if "gradient" in sample.extra["background"] or "paper" in sample.extra["background"]:
            continue
        pixels = np.asarray(sample.image)
        ink = np.any(pixels != pixels[0, 0], axis=2)
        for x0, y0, x1, y1 in (line.box for line in sample.lines):
            ink[max(0, y0 - 1):y1 + 1, max(0, x0 - 1):x1 + 1] = False
        assert not ink.any(), f"seed {seed}: ink outside the line boxes at {np.argwhere(ink)[:3].tolist()}"
        checked += 1
    assert checked >= 5


def test_pure_text_contrast_is_at_least_4_5(strategies):
    for seed in range(30):
        sample = render(strategies["pure"], seed, ("zh", "en")[seed % 2])
        assert sample.extra["contrast"] >= MIN_CONTRAST


def test_compositional_keeps_the_warped_quads(strategies):
    sample = render(strategies["compositional"], 3, "zh")
    assert len(sample.extra["line_quads"]) == len(sample.lines)
    assert len(sample.extra["word_quads"]) == len(sample.words)
    assert sample.extra["medium"] and sample.extra["scene"]


def test_complex_caption_quotes_every_slot(strategies):
    sample = render(strategies["complex"], 5, "en")
    assert len(sample.texts) == len(sample.extra["slots"]) >= 2
    for slot in sample.extra["slots"]:
        assert f'"{slot["text"]}"' in sample.caption or f"“{slot['text']}”" in sample.caption


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategies_pickle_as_their_config(strategies, name):
    clone = pickle.loads(pickle.dumps(strategies[name]))
    assert clone.config == strategies[name].config
    reason = pickle.loads(pickle.dumps(Discard("missing_glyph", "x")))
    assert (reason.reason, reason.detail) == ("missing_glyph", "x")


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy"):
        build_strategy("fancy")


def test_user_photos_and_their_sidecar_descriptions(tmp_path):
    from PIL import Image

    from qwenimage.synth import SynthConfig

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("on a noisy test pattern\n一张噪声测试图上\n", encoding="utf-8")
    config = SynthConfig(background_dir=str(tmp_path), builtin_photos=False, caption_languages=("en",))
    strategy = build_strategy("compositional", config)
    scenes = [render(strategy, seed, "en") for seed in range(12)]
    photos = [s for s in scenes if s.extra["scene"].startswith("photo:")]
    assert photos and all("on a noisy test pattern" in s.caption for s in photos)
    assert all(s.extra["scene"].startswith(("photo:", "procedural:")) for s in scenes)
