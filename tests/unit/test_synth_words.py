"""The words strategy: held-out words never drawn, case kept in captions, fonts and layout options honoured."""

import re

import numpy as np
import pytest

from qwenimage.eval.suites import heldout_words
from qwenimage.synth import SynthConfig
from qwenimage.synth.strategies import build_strategy
from qwenimage.synth.words import WordsOptions


def strategy(**words):
    return build_strategy("words", SynthConfig(words=words))


def test_held_out_words_are_never_drawn_or_captioned():
    held = heldout_words("en-words")
    words = strategy(exclude_words="suite:en-words", phrase_share=0.5, temperature=0.0, vocab_size=3000)
    for seed in range(150):
        sample = words.render(np.random.default_rng(seed), 128, 128, "en")
        tokens = set(re.findall(r"[a-z]+", (sample.text + " " + sample.caption).lower()))
        assert not tokens & held, (seed, sample.text, tokens & held)


def test_without_exclusion_the_same_vocabulary_holds_held_out_words():
    """The test above could fail: held-out words are common words the unfiltered vocabulary draws."""
    from qwenimage.synth.words import english_word_list, read_word_set

    everything = set(english_word_list(3000, 0.0, frozenset()).words)
    filtered = set(english_word_list(3000, 0.0, read_word_set("suite:en-words")).words)
    assert everything & heldout_words("en-words") and not filtered & heldout_words("en-words")


def test_caption_quotes_the_text_with_its_case():
    words = strategy(case_share=1.0)
    cased = 0
    for seed in range(20):
        sample = words.render(np.random.default_rng(seed), 128, 128, "en")
        assert f'"{sample.text}"' in sample.caption
        cased += sample.text != sample.text.lower()
    assert cased == 20


def test_scene_captions_use_the_eval_wording_for_their_share():
    from qwenimage.eval.prompts import EN_WORD_TEMPLATES
    from qwenimage.synth.words import EN_CAPTIONS

    def wordings(share: float) -> list[str]:
        words = strategy(scene_captions=share)
        found = []
        for seed in range(40):
            sample = words.render(np.random.default_rng(seed), 128, 128, "en")
            assert f'"{sample.text}"' in sample.caption
            found.append(sample.caption.replace(f'"{sample.text}"', '"{}"'))
        return found

    scene = {template.replace("{text}", "{}") for template in EN_WORD_TEMPLATES}
    assert set(wordings(0.0)) <= set(EN_CAPTIONS)
    assert set(wordings(1.0)) <= scene
    assert 8 <= sum(w not in EN_CAPTIONS for w in wordings(0.5)) <= 32
    with pytest.raises(ValueError, match="scene_captions"):
        WordsOptions.from_dict({"scene_captions": 1.5})


def test_stage_one_layout_is_one_font_centred_black_on_white():
    words = strategy(fonts=["DejaVu Sans Bold"], jitter=0.0, colors=False)
    for seed in range(5):
        sample = words.render(np.random.default_rng(seed), 128, 128, "en")
        assert sample.fonts == ["DejaVu Sans Bold"]
        x0, y0, x1, y1 = sample.lines[0].box
        assert abs((x0 + x1) / 2 - 64) <= 2 and abs((y0 + y1) / 2 - 64) <= 2
        pixels = np.asarray(sample.image)
        assert pixels[0, 0].min() > 240 and pixels.min() < 40  # white paper, black ink


def test_chinese_and_mixed_texts():
    words = strategy()
    zh = words.render(np.random.default_rng(1), 128, 128, "zh")
    assert zh.language == "zh" and all("\u4e00" <= ch <= "\u9fff" for ch in zh.text)
    mixed = words.render(np.random.default_rng(2), 128, 128, "mixed")
    assert re.search(r"[A-Za-z]", mixed.text) and re.search(r"[\u4e00-\u9fff]", mixed.text)


def test_bad_options_name_the_problem():
    with pytest.raises(ValueError, match="unknown words options"):
        WordsOptions.from_dict({"jiter": 1})
    with pytest.raises(ValueError, match="jitter"):
        WordsOptions.from_dict({"jitter": 2})


def test_fixed_layout_puts_the_kth_letter_of_every_word_in_one_place():
    """Monospaced, one size, left-aligned: letter k starts at the same x in every word."""
    words = strategy(fonts=["DejaVu Sans Mono Bold"], font_size=24, align="left", jitter=0.0, colors=False,
                     case_share=0.0, max_chars=8, captions=['a sign that says "{text}"'])
    starts = set()
    for seed in range(12):
        sample = words.render(np.random.default_rng(seed), 128, 128, "en")
        assert sample.caption == f'a sign that says "{sample.text}"' and len(sample.text) <= 8
        ink = np.asarray(sample.image.convert("L")) < 128  # (128, 128) text pixels
        columns = np.flatnonzero(ink.any(axis=0))
        starts.add(int(columns[0]))
        x0, _, x1, _ = sample.lines[0].box
        assert x1 <= 128 and abs((x1 - x0) - 14.45 * len(sample.text)) <= 4  # 14.45 px per letter at 24 px
    assert max(starts) - min(starts) <= 3  # the first letter's ink starts 8% in (within a glyph's side bearing)


def test_vertical_jitter_moves_the_line_but_keeps_every_letters_column():
    """The fixed layout on any row: the first letter's column and the word's width stay, its row moves; without
    the option the same seeds draw the same pictures as before (no extra random draw)."""
    fixed = dict(fonts=["DejaVu Sans Mono Bold"], font_size=24, align="left", jitter=0.0, colors=False,
                 case_share=0.0, max_chars=8)
    moved, still = strategy(**fixed, vertical_jitter=1.0), strategy(**fixed)
    rows, starts = set(), set()
    for seed in range(12):
        sample = moved.render(np.random.default_rng(seed), 128, 128, "en")
        plain = still.render(np.random.default_rng(seed), 128, 128, "en")
        assert sample.text == plain.text
        (x0, y0, x1, _), (px0, py0, px1, _) = sample.lines[0].box, plain.lines[0].box
        assert (x0, x1) == (px0, px1)
        ink = np.asarray(sample.image.convert("L")) < 128  # (128, 128) text pixels
        starts.add(int(np.flatnonzero(ink.any(axis=0))[0]))
        rows.add(y0)
    assert max(starts) - min(starts) <= 3 and max(rows) - min(rows) > 40
    with pytest.raises(ValueError, match="vertical_jitter"):
        WordsOptions.from_dict({"vertical_jitter": 1.5})


def test_layout_and_caption_options_are_checked():
    with pytest.raises(ValueError, match="align"):
        WordsOptions.from_dict({"align": "right"})
    with pytest.raises(ValueError, match="text"):
        WordsOptions.from_dict({"captions": ['a sign that says "{}"']})
    with pytest.raises(ValueError, match="font_size"):
        WordsOptions.from_dict({"font_size": -3})
    assert WordsOptions.from_dict({"captions": 'the word "{text}"'}).captions == ('the word "{text}"',)


def test_a_word_too_wide_for_the_fixed_size_is_discarded_with_the_reason():
    from qwenimage.synth.sample import Discard

    words = strategy(fonts=["DejaVu Sans Mono Bold"], font_size=40, align="left", jitter=0.0, colors=False,
                     max_chars=12, case_share=0.0)
    reasons = set()
    for seed in range(30):
        try:
            words.render(np.random.default_rng(seed), 128, 128, "en")
        except Discard as discard:
            reasons.add(str(discard))
    assert any("does not fit" in r for r in reasons)


def test_focus_letters_raise_their_share_inside_words():
    """focus_share 1: every word holds a focus letter after its first; 0: many words hold none (the test could fail)."""
    def inner_hits(share: float) -> list[bool]:
        words = strategy(focus_letters="lm", focus_share=share, case_share=0.0, vocab_size=3000)
        texts = [words.text(np.random.default_rng(seed), "en", words.options) for seed in range(60)]
        return [any(ch in text[1:] for ch in "lm") for text in texts]

    assert all(inner_hits(1.0))
    assert sum(inner_hits(0.0)) < 45
    with pytest.raises(ValueError, match="focus_letters"):
        WordsOptions.from_dict({"focus_share": 0.5})
    with pytest.raises(ValueError, match="focus_letters"):
        WordsOptions.from_dict({"focus_share": 0.5, "focus_letters": "L"})


def test_size_jitter_shrinks_the_glyphs_but_keeps_the_pen_and_the_stream():
    """Sizes from 0.55 to 1.0 of the fixed one, the first letter still 8% in; the same seeds draw the same texts
    (the size's random draw is taken with or without the option)."""
    fixed = dict(fonts=["DejaVu Sans Mono Bold"], font_size=24, align="left", jitter=0.0, colors=False,
                 case_share=0.0, max_chars=8, vertical_jitter=1.0)
    sized, still = strategy(**fixed, size_jitter=1.0), strategy(**fixed)
    widths, starts = [], set()
    for seed in range(16):
        sample = sized.render(np.random.default_rng(seed), 128, 128, "en")
        plain = still.render(np.random.default_rng(seed), 128, 128, "en")
        assert sample.text == plain.text
        (x0, _, x1, _), (px0, _, px1, _) = sample.lines[0].box, plain.lines[0].box
        assert x1 - x0 <= px1 - px0
        widths.append((x1 - x0) / (px1 - px0))
        ink = np.asarray(sample.image.convert("L")) < 128  # (128, 128) text pixels
        starts.add(int(np.flatnonzero(ink.any(axis=0))[0]))
    assert min(widths) < 0.7 and max(widths) > 0.9 and min(widths) > 0.5
    assert max(starts) - min(starts) <= 3
    with pytest.raises(ValueError, match="size_jitter"):
        WordsOptions.from_dict({"size_jitter": -0.1})


def test_numbers_are_digits_prices_and_numbered_words_and_held_out_ones_are_never_drawn():
    """`number_share` teaches the digits and "$"; edit pairs hold out the text-edit suite's numbers ("$5", "room 12"
    and the digits "5", "12" as whole texts)."""
    import numpy as np

    from qwenimage.synth.config import SynthConfig
    from qwenimage.synth.edit_pairs import EditPairsStrategy
    from qwenimage.synth.words import NUMBER_WORDS, number_text

    rng = np.random.default_rng(0)
    texts = [number_text(rng, 8, frozenset({"$5", "12"})) for _ in range(400)]
    assert "$5" not in texts and "12" not in texts and all(len(t) <= 8 for t in texts)
    assert any(t.isdigit() for t in texts) and any(t.startswith("$") and t[1:].isdigit() for t in texts)
    assert any(t.rstrip("0123456789") in NUMBER_WORDS for t in texts if not t.isdigit() and t[0] != "$")
    assert set("".join(texts)) >= set("0123456789$")
    words = {"fonts": ["DejaVu Sans Mono Bold"], "font_size": 24, "align": "left", "jitter": 0.0, "colors": False,
             "phrase_share": 0.0, "case_share": 0.0, "max_chars": 8, "number_share": 1.0}
    strategy = EditPairsStrategy(SynthConfig(words=words, edit_pairs={"kinds": {"text": 1}, "layout": "words"}))
    drawn = {strategy.one_text(np.random.default_rng([7, i]), "en") for i in range(300)}
    assert not drawn & {"$5", "$9", "12", "48", "5", "9", "room12", "room48"}
    with pytest.raises(ValueError, match="number_share"):
        WordsOptions.from_dict({"number_share": 1.5})


def test_chinese_texts_from_an_alphabet_use_only_its_characters_and_edit_pairs_hold_out_the_suites_words():
    """`zh_top_chars` + `zh_extra_chars`: short strings drawn evenly from the alphabet; the text-edit suite's
    characters are in it ("suite:text-edit"), its Chinese words never appear in an edit pair."""
    from qwenimage.eval.text_edit_suite import PAIRS
    from qwenimage.synth.config import SynthConfig
    from qwenimage.synth.edit_pairs import EditPairsStrategy
    from qwenimage.synth.sample import Discard
    from qwenimage.synth.words import chinese_alphabet

    suite_chars = set("".join(text for pair in PAIRS["zh"] for text in pair))
    alphabet = chinese_alphabet(50, "suite:text-edit")
    assert len(set(alphabet)) == len(alphabet) and set(alphabet) >= suite_chars and "的" in alphabet
    assert 50 < len(alphabet) <= 50 + len(suite_chars) and chinese_alphabet(0, "口门") == "口门"
    words = {"fonts": ["Noto Sans CJK SC Bold"], "font_size": 40, "align": "left", "jitter": 0.0, "colors": False,
             "max_chars": 2, "zh_top_chars": 50, "zh_extra_chars": "suite:text-edit"}
    pairs = EditPairsStrategy(SynthConfig(words=words, edit_pairs={"kinds": {"text": 1}, "layout": "words"}))
    held = {text for pair in PAIRS["zh"] for text in pair if len(text) <= 2}
    texts, kept = [], 0
    for i in range(600):
        try:
            old, new = pairs.texts(np.random.default_rng([5, i]), "zh", "text")
        except Discard as error:  # a held-out word drawn (or twice the same text): the pair is discarded
            assert error.reason in ("suite_text", "same_text")
            continue
        kept += 1
        texts += [old, new]
    assert kept > 550 and not set(texts) & held
    assert set("".join(texts)) <= set(alphabet) and {len(t) for t in texts} == {1, 2}
    assert len(set("".join(texts))) > 0.9 * len(alphabet)                 # every character comes up
    with pytest.raises(ValueError, match="zh_extra_chars 'suite:en-words'"):
        chinese_alphabet(0, "suite:en-words")
    with pytest.raises(ValueError, match="zh_top_chars"):
        WordsOptions.from_dict({"zh_top_chars": -1})


def test_edit_pairs_can_ask_for_chinese_texts_in_the_english_wording():
    from qwenimage.synth.config import SynthConfig
    from qwenimage.synth.edit_pairs import EditPairsOptions, EditPairsStrategy

    words = {"fonts": ["Noto Sans CJK SC Bold"], "font_size": 32, "align": "left", "jitter": 0.0, "colors": False,
             "max_chars": 3, "zh_top_chars": 50}
    edit = {"kinds": {"text": 1}, "layout": "words", "wording": "en",
            "instructions": ['Change the text "{old}" to "{new}"']}
    sample = EditPairsStrategy(SynthConfig(words=words, edit_pairs=edit)).render(np.random.default_rng(3), 128, 128,
                                                                                 "zh")
    old, new = sample.extra["old_text"], sample.extra["new_text"]
    assert sample.language == "zh" and sample.instruction == f'Change the text "{old}" to "{new}"'
    assert sample.caption == f'a sign that says "{new}"' and not new.isascii()
    with pytest.raises(ValueError, match="wording 'fr'"):
        EditPairsOptions.from_dict({"wording": "fr"})
