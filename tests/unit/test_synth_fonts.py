"""Fonts: a text with a character no font has is discarded (never tofu); picking honours coverage and style."""

from pathlib import Path

import numpy as np
import pytest

from qwenimage.synth import Discard, SynthConfig, build_strategy
from qwenimage.synth.fonts import FontLibrary, style_tags

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@pytest.fixture(scope="module")
def library():
    return FontLibrary.discover()


def test_system_fonts_cover_chinese_and_latin(library):
    assert any(face.cjk for face in library.faces)
    assert any(face.latin and not face.cjk for face in library.faces)
    assert not any(" JP" in face.family or " KR" in face.family for face in library.faces)


@pytest.mark.parametrize("text", ["私用区\ue000字符", "tofu \U000f0000", "unassigned \u0378"])
def test_uncovered_character_is_discarded(library, text):
    with pytest.raises(Discard) as caught:
        library.pick(np.random.default_rng(0), text)
    assert caught.value.reason == "missing_glyph"


def test_picked_face_covers_every_character(library):
    rng = np.random.default_rng(1)
    for text in ["通义千问 Qwen-Image，生成“图片”！", "Hello, world 2024", "鬲孬噩丨禺丿匕"]:
        for style in ("any", "sans", "serif", "bold", "handwriting"):
            face = library.pick(rng, text, style)
            assert library.missing(face, text) == ""


def test_a_latin_only_font_folder_cannot_render_chinese(tmp_path):
    if not DEJAVU.exists():
        pytest.skip("fonts-dejavu-core is not installed")
    (tmp_path / DEJAVU.name).symlink_to(DEJAVU)
    only_latin = FontLibrary.discover((str(tmp_path),), system=False)
    assert [face.family for face in only_latin.faces] == ["DejaVu Sans"]
    assert only_latin.pick(np.random.default_rng(0), "plain text").family == "DejaVu Sans"
    with pytest.raises(Discard, match="missing_glyph"):
        only_latin.pick(np.random.default_rng(0), "中文")


def test_a_paragraph_with_a_missing_glyph_is_discarded_by_the_strategy(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("这是一个普通的段落，只有一个字符\ue000没有字体能画出来。\n", encoding="utf-8")
    config = SynthConfig(corpus_files=(str(corpus),), corpus_weight=1.0, length_weights={"paragraph": 1.0})
    strategy = build_strategy("pure", config)
    for seed in range(3):
        with pytest.raises(Discard) as caught:
            strategy.render(np.random.default_rng(seed), 256, 256, "zh")
        assert caught.value.reason == "missing_glyph"


@pytest.mark.parametrize("family, style, expected, absent", [
    ("Noto Serif CJK SC", "Bold", {"serif", "bold"}, {"sans"}),
    ("Noto Sans CJK SC", "Regular", {"sans"}, {"serif", "bold"}),
    ("AR PL UKai CN", "Book", {"kai", "handwriting"}, {"sans", "serif"}),
    ("Dancing Script", "Regular", {"handwriting", "cursive"}, {"sans"}),
    ("DejaVu Sans Mono", "Oblique", {"sans", "mono", "italic"}, set()),
])
def test_style_tags_from_names(family, style, expected, absent):
    tags = style_tags(family, style)
    assert expected <= tags and not (absent & tags)


HUMOR = Path("/usr/share/fonts/truetype/humor-sans")


def test_only_a_face_that_draws_lower_case_as_capitals_is_found_to_force_them(library):
    forced = [face.family for face in library.faces if library.forces_capitals(face)]
    if HUMOR.is_dir():
        assert forced == ["Humor Sans"]
    assert not any(library.forces_capitals(face) for face in library.faces if face.cjk)


@pytest.mark.parametrize("strategy", ["pure", "compositional", "complex"])
def test_a_humor_sans_sample_quotes_its_text_in_the_case_it_is_drawn(strategy):
    if not HUMOR.is_dir():
        pytest.skip("fonts-humor-sans is not installed")
    config = SynthConfig(font_dirs=(str(HUMOR),), system_fonts=False, handwriting_share=1.0)
    sample = build_strategy(strategy, config).render(np.random.default_rng(4), 512, 512, "en")
    assert sample.fonts == ["Humor Sans Regular"] and sample.extra["capitals_forced"] is True
    assert any(ch.isalpha() for ch in sample.text) and sample.text == sample.text.upper()
    assert sample.caption_quotes_text() and all(unit == unit.upper() for unit in sample.texts)


def test_case_preserving_faces_keep_the_corpus_case():
    dejavu = DEJAVU.parent
    config = SynthConfig(font_dirs=(str(dejavu),), system_fonts=False, length_weights={"line": 1.0})
    samples = [build_strategy("pure", config).render(np.random.default_rng(seed), 512, 512, "en") for seed in range(4)]
    assert all(s.extra["capitals_forced"] is False for s in samples)
    assert any(ch.islower() for s in samples for ch in s.text)
