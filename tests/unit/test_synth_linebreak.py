"""Line breaking: the Chinese kinsoku rules hold for any paragraph and width; English breaks at spaces."""

import numpy as np
import pytest

from qwenimage.synth.compose import ChineseComposer
from qwenimage.synth.linebreak import break_units, word_spans, wrap_text
from qwenimage.synth.script import CLOSING, OPENING, gb2312_tier
from qwenimage.synth.wordlists import ChineseVocabulary, WordList

WORDS = ["我们", "今天", "天气", "很好", "公园", "红楼梦", "一本书", "走", "的", "学习", "AI", "芯片", "2024年"]


@pytest.fixture(scope="module")
def composer():
    """A small in-memory vocabulary: fast, and punctuation-heavy through the composer's decorations."""
    probs = np.full(len(WORDS), 1 / len(WORDS))
    vocab = ChineseVocabulary(WordList(WORDS, probs), [gb2312_tier(1)[:50]], {})
    return ChineseComposer(vocab, rare_char_rate=0.2)


def _measure(unit: str) -> float:
    return 0.5 if unit == " " else float(len(unit)) if unit.isascii() else 1.0


def test_no_line_starts_with_closing_or_ends_with_opening(composer):
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(400):
        text = composer.compose(rng, "paragraph", (20, 80))
        for width in (2, 3, 5, 8, 13):
            lines = wrap_text(text, width, _measure)
            assert "".join(lines).replace(" ", "") == text.replace(" ", "")
            for line in lines[1:]:
                assert line[0] not in CLOSING, (text, width, lines)
            for line in lines[:-1]:
                assert line[-1] not in OPENING, (text, width, lines)
            checked += len(lines)
    assert checked > 5000


def test_closing_marks_move_with_the_character_before_them():
    lines = wrap_text("他说好。我们走吧！", 3, _measure)
    assert lines[1][0] not in CLOSING
    assert "".join(lines) == "他说好。我们走吧！"
    assert break_units("好……的——走") == ["好", "……", "的", "——", "走"]


def test_english_breaks_only_at_spaces():
    text = "The quick brown fox jumps over the lazy dog again and again"
    for width in (6, 10, 17, 30):
        lines = wrap_text(text, width, _measure)
        assert " ".join(lines) == text
        assert all(line == line.strip() for line in lines)


def test_word_spans_keep_latin_words_and_split_ideographs():
    line = "他说：“今天”AI 芯片 is great，（注）"
    words = [line[s:e] for s, e in word_spans(line)]
    assert words == ["他", "说：", "“今", "天”", "AI", "芯", "片", "is", "great，", "（注）"]
