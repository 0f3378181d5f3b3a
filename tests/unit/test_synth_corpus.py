"""Corpora: built-in Chinese/English text at three lengths, the long tail of characters, user corpora, config."""

import json

import numpy as np
import pytest

from qwenimage.synth import SynthConfig
from qwenimage.synth.corpus import Corpus, cut_text, detect_language, read_paragraphs
from qwenimage.synth.script import gb2312_tier, is_cjk
from qwenimage.synth.wordlists import read_word_file


@pytest.fixture(scope="module")
def corpus():
    return Corpus(SynthConfig())


def test_gb2312_tiers_have_the_standard_sizes():
    assert (len(gb2312_tier(1)), len(gb2312_tier(2))) == (3755, 3008)
    assert gb2312_tier(1).startswith("啊阿埃") and not set(gb2312_tier(1)) & set(gb2312_tier(2))


@pytest.mark.parametrize("language", ["zh", "en"])
def test_lengths_grow_from_word_to_paragraph(corpus, language):
    rng = np.random.default_rng(0)
    mean = {cls: np.mean([len(corpus.sample(rng, language, cls)) for _ in range(60)])
            for cls in ("word", "line", "paragraph")}
    assert mean["word"] < mean["line"] < mean["paragraph"]
    low = SynthConfig().lengths[language]["paragraph"][0]
    assert all(len(corpus.sample(rng, language, "paragraph")) >= low for _ in range(20))


def test_chinese_text_looks_like_text(corpus):
    rng = np.random.default_rng(1)
    paragraph = corpus.sample(rng, "zh", "paragraph")
    assert paragraph[-1] in "。！？" and "，" in paragraph
    assert sum(map(is_cjk, paragraph)) > 0.7 * len(paragraph)
    mixed = "".join(corpus.sample(rng, "mixed", "paragraph") for _ in range(10))
    assert any(ch.isascii() and ch.isalpha() for ch in mixed)


def test_rare_characters_reach_the_long_tail(corpus):
    rng = np.random.default_rng(2)
    seen = set("".join(corpus.sample(rng, "zh", "line") for _ in range(400)))
    level2 = seen & set(gb2312_tier(2))
    assert len(level2) >= 60, f"only {len(level2)} GB 2312 level-2 characters in 400 lines"


def test_max_chars_caps_the_length(corpus):
    rng = np.random.default_rng(3)
    for language in ("zh", "en"):
        assert all(len(corpus.sample(rng, language, "paragraph", 25)) <= 25 for _ in range(30))


def test_blocklisted_words_never_appear(corpus):
    blocked = set(read_word_file("blocklist_en.txt"))
    assert not blocked & set(corpus.english.words.words)
    zh_blocked = read_word_file("blocklist_zh.txt")
    assert not any(bad in word for word in corpus.chinese.vocab.words.words for bad in zh_blocked)


def test_user_corpora_txt_and_jsonl(tmp_path):
    text = "第一段中文内容，写在这里。第二句话！\n\n An English paragraph. With two sentences.\n"
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "来自 JSONL 的段落。"}, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    config = SynthConfig(corpus_files=(str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl")), corpus_weight=1.0)
    user = Corpus(config).user
    assert len(user.paragraphs["zh"]) == 2 and user.paragraphs["en"] == ["An English paragraph. With two sentences."]
    rng = np.random.default_rng(0)
    corpus = Corpus(config)
    assert corpus.sample(rng, "en", "line") in ("An English paragraph.", "With two sentences.")
    assert corpus.sample(rng, "en", "word") in "An English paragraph. With two sentences.".split()
    (tmp_path / "c.jsonl").write_text('{"txt": "no"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="c.jsonl:1"):
        read_paragraphs(tmp_path / "c.jsonl")


def test_helpers():
    assert detect_language("这是 some 中文") == "zh" and detect_language("plain English 文") == "en"
    assert cut_text("one two three four", 12, "en") == "one two"
    assert cut_text("第一句。第二句很长很长", 8, "zh") == "第一句。"


def test_config_from_dict_merges_lengths_and_refuses_unknown_keys():
    config = SynthConfig.from_dict({"lengths": {"zh": {"word": [2, 3]}}, "caption_languages": ["zh"]})
    assert config.lengths["zh"]["word"] == (2, 3) and config.lengths["zh"]["line"] == (5, 18)
    assert config.caption_languages == ("zh",)
    with pytest.raises(ValueError, match="unknown SynthConfig keys"):
        SynthConfig.from_dict({"font_dir": "x"})
    with pytest.raises(ValueError, match="length_weights"):
        SynthConfig(length_weights={"sentence": 1.0})
    assert SynthConfig().font_floor(1024, 768) == 24


def test_real_sentences_make_lines_and_paragraphs_within_their_spans():
    from qwenimage.synth.sentences import SentenceCorpus

    corpus = SentenceCorpus.load()
    rng = np.random.default_rng(0)
    for language, line, paragraph in (("zh", (5, 18), (30, 120)), ("en", (12, 48), (80, 320))):
        lines = [corpus.sample(rng, language, "line", line) for _ in range(30)]
        paragraphs = [corpus.sample(rng, language, "paragraph", paragraph) for _ in range(30)]
        assert all(len(t) <= line[1] for t in lines) and sum(bool(t) for t in lines) >= 25
        assert all(len(t) <= paragraph[1] for t in paragraphs) and sum(len(t) >= paragraph[0] for t in paragraphs) >= 25
        ends = "。！？" if language == "zh" else ".!?"
        assert all(t[-1] in ends for t in lines + paragraphs if t)  # whole sentences, never cut inside one
    english = " ".join(corpus.sample(rng, "en", "paragraph", (80, 320)) for _ in range(50)).lower()
    assert " the " in english  # real English, not a word salad of rare words
    without = SentenceCorpus.load(frozenset({"the"}))
    assert not any(" the " in f" {s.lower()} " for topic in without.topics["en"] for s in topic.sentences)


def test_the_corpus_mixes_real_sentences_in_by_sentence_weight():
    from qwenimage.synth.sentences import SentenceCorpus

    known = {s for topic in SentenceCorpus.load().topics["zh"] for s in topic.sentences}
    rng = np.random.default_rng(1)

    def real_share(weight: float) -> float:
        corpus = Corpus(SynthConfig(sentence_weight=weight))
        texts = [corpus.sample(rng, "zh", "line") for _ in range(60)]
        return sum(t in known for t in texts) / len(texts)

    assert real_share(0.0) == 0.0 and real_share(1.0) > 0.9 and 0.25 < real_share(0.5) < 0.75
