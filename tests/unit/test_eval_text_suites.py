"""The prompt suites: the shipped JSONL files equal a rebuild, their contents follow the documented rules,
word-file suites, held-out words and selection."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

import qwenimage.eval
from qwenimage.eval import prompts
from qwenimage.eval.suite_build import zh_char_tiers
from qwenimage.eval.suites import (EN_WORD_TEMPLATES, SUITES, en_word_prompt, heldout_words, load_suite, read_words,
                                   select, suite_jsonl, write_suites)
from qwenimage.synth.script import gb2312_tier

HELDOUT = Path(qwenimage.eval.__file__).parent / "data" / "en_words_heldout.txt"


def test_the_shipped_suites_equal_a_rebuild(tmp_path):
    written = write_suites(tmp_path)
    assert len(written) == len(SUITES)
    for path in written:
        assert path.read_text(encoding="utf-8") == suite_jsonl(load_suite(path.stem)), path.stem


def test_en_words_asks_for_exactly_the_heldout_words_in_file_order():
    samples = load_suite("en-words")
    words = read_words(HELDOUT)
    assert len(words) == 250 and [s.texts for s in samples] == [(w,) for w in words]
    assert heldout_words("en-words") == heldout_words("suite:en-words") == set(words)
    assert heldout_words(HELDOUT) == set(words)


@pytest.mark.parametrize("name", list(SUITES))
def test_every_suite_quotes_its_texts_with_unique_ids_and_a_fifth_dev_split(name):
    samples = load_suite(name)
    assert len({s.id for s in samples}) == len(samples) >= 80
    assert all(re.fullmatch(rf"{name}-\d{{4}}", s.id) for s in samples)
    for sample in samples:
        quoted = re.findall(r'"([^"]+)"|“([^”]+)”', sample.prompt)
        assert [a or b for a, b in quoted] == list(sample.texts), sample.id
        assert sample.language in ("en", "zh") and sample.size[0] % 16 == 0
    dev = sum(s.split == "dev" for s in samples)
    assert dev == round(0.2 * len(samples))


def test_held_out_suites_use_only_held_out_words_and_regions_count_two_to_five():
    held = set(read_words(HELDOUT))
    for name in ("en-phrases", "multi-region"):
        assert heldout_words(name) <= held
    regions = [len(s.texts) for s in load_suite("multi-region")]
    assert sorted(set(regions)) == [2, 3, 4, 5]
    assert all(2 <= len(s.texts[0].split()) <= 4 for s in load_suite("en-phrases"))
    with pytest.raises(ValueError, match="not built from held-out words"):
        heldout_words("long-text")


def test_zh_chars_tiers_follow_gb2312_and_the_rare_tier_lies_outside_it():
    tiers = zh_char_tiers()
    assert len(tiers["L1"]) == 3755 and len(tiers["L2"]) == 3008
    assert not set(tiers["L3"]) & set(gb2312_tier(1) + gb2312_tier(2)) and len(tiers["L3"]) >= 100
    for sample in load_suite("zh-chars"):
        tier = sample.tags[0].split(":")[1]
        assert len(sample.texts[0]) == 1 and sample.texts[0] in tiers[tier]


def test_template_wording_never_uses_a_held_out_word():
    held = set(read_words(HELDOUT))
    for template in EN_WORD_TEMPLATES:
        wording = set(re.findall(r"[a-z]+", template.replace("{text}", "").lower()))
        assert not wording & held, template
    assert en_word_prompt("harbor", 1) == 'the word "harbor" written on a poster'
    assert en_word_prompt("harbor", 13) == en_word_prompt("harbor", 1)
    drawn = {en_word_prompt("x", np.random.default_rng(seed)) for seed in range(40)}
    assert len(drawn) > 5 and drawn <= {t.format(text="x") for t in prompts.EN_WORD_TEMPLATES}


def test_a_word_file_builds_an_en_words_style_suite(tmp_path):
    path = tmp_path / "Seen Words.txt"
    path.write_text("# trained words\napple\n\nzebra\napple\n", encoding="utf-8")
    samples = load_suite(f"words:{path}")
    assert [s.id for s in samples] == ["words-seen-words-0000", "words-seen-words-0001"]
    assert [s.texts for s in samples] == [("apple",), ("zebra",)]
    assert all(any(s.prompt == t.format(text=s.texts[0]) for t in EN_WORD_TEMPLATES) for s in samples)
    assert heldout_words(f"words:{path}") == {"apple", "zebra"}
    (tmp_path / "bad.txt").write_text("two words\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.txt:1"):
        load_suite(f"words:{tmp_path / 'bad.txt'}")


def test_unknown_suites_and_bad_selections_are_errors_naming_the_value():
    with pytest.raises(ValueError, match="unknown suite 'en-wrods'"):
        load_suite("en-wrods")
    with pytest.raises(ValueError, match="nope"):
        heldout_words("suite:nope")
    samples = load_suite("en-words")
    assert [s.id for s in select(samples, 3)] == ["en-words-0000", "en-words-0001", "en-words-0002"]
    assert all(s.split == "dev" for s in select(samples, split="dev"))
    with pytest.raises(ValueError, match="0"):
        select(samples, 0)
    assert json.loads(suite_jsonl(samples[:1]))["texts"] == ["should"]


def test_reword_puts_every_expected_text_in_one_wording_and_keeps_the_rest():
    from qwenimage.eval.suites import reword

    samples = select(load_suite("en-words"), 20)
    assert len({s.prompt.replace(f'"{s.texts[0]}"', "") for s in samples}) > 1  # the suite's own wordings vary
    fixed = reword(samples, 'a sign that says "{text}"')
    assert [s.prompt for s in fixed] == [f'a sign that says "{s.texts[0]}"' for s in samples]
    assert [(s.id, s.texts, s.size, s.split) for s in fixed] == [(s.id, s.texts, s.size, s.split) for s in samples]
    with pytest.raises(ValueError, match="slot"):
        reword(samples, "a sign")
    with pytest.raises(ValueError, match="one-text"):
        reword(select(load_suite("multi-region"), 2), '"{text}"')


def test_eval_text_records_the_template_and_refuses_to_resume_with_another(tmp_path):
    from qwenimage.eval.text_run import TextEvalSettings, start_run

    settings = TextEvalSettings(suites=["en-words"], source="oracle", template='a sign that says "{text}"')
    assert start_run(tmp_path, settings, "cmd", 2)["settings"]["template"] == 'a sign that says "{text}"'
    with pytest.raises(ValueError, match="template"):
        start_run(tmp_path, TextEvalSettings(suites=["en-words"], source="oracle"), "cmd", 2)
