"""Text metrics and their aggregates: normalisation, matching rules, edit distance against a brute-force
reference (rapidfuzz over every substring), bootstrap intervals and the paired difference."""

import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from qwenimage.eval.metrics import compact, found_as_tokens, normalize, score_sample, substring_distance, tokens
from qwenimage.eval.stats import METRICS, aggregate, paired_difference


def test_normalisation_ignores_case_punctuation_width_and_spacing():
    assert normalize("  HeLLo,   World!! ") == "hello world"
    assert normalize("ＯＰＥＮ　２４／７") == "open 24 7"  # full width -> half width, slash is punctuation
    assert tokens("“通义千问”AI芯片") == ["通", "义", "千", "问", "ai", "芯", "片"]
    assert compact("Don't stop!") == "dontstop"


def test_substring_distance_equals_the_best_substring_by_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(60):
        pattern = "".join(rng.choice(list("abc"), int(rng.integers(1, 6))))
        text = "".join(rng.choice(list("abcd"), int(rng.integers(0, 9))))
        brute = min(Levenshtein.distance(pattern, text[i:j]) for i in range(len(text) + 1)
                    for j in range(i, len(text) + 1))
        assert substring_distance(pattern, text) == brute


@pytest.mark.parametrize("expected, reading, found", [
    ("hello world", "HELLO WORLD!", True),
    ("hello world", "helloworld", True),  # OCR dropped the space
    ("hello", "hel lo", True),  # OCR split the word
    ("book", "books", False),  # not a whole word
    ("book", "facebook page", False),
    ("通义", "欢迎来到通义千问", True),  # every ideograph is a token
    ("open", "", False),
])
def test_exact_match_is_a_run_of_whole_tokens(expected, reading, found):
    assert found_as_tokens(tokens(expected), tokens(reading)) is found
    assert score_sample([expected], reading).texts[0].exact is found


def test_one_wrong_character_costs_one_over_the_length():
    word = "research"
    wrong = word[:3] + "x" + word[4:]
    right_score, wrong_score = score_sample([word], word), score_sample([word], wrong)
    assert right_score.texts[0].exact and right_score.texts[0].ned == 1.0
    assert not wrong_score.texts[0].exact
    assert wrong_score.texts[0].ned == pytest.approx(1 - 1 / len(word))
    assert wrong_score.chars_matched == len(word) - 1 and wrong_score.chars_read == len(word)


def test_regions_are_scored_independently_against_the_whole_reading():
    score = score_sample(["grand opening", "free coffee", "today"], "GRAND OPENING\nfree cofee\nnothing else")
    exact = [t.exact for t in score.texts]
    assert exact == [True, False, False]
    assert score.texts[1].ned == pytest.approx(1 - 1 / len("freecoffee"))
    assert score.texts[1].words_matched == 1 and score.texts[1].words == 2
    assert not score.all_exact


def test_chinese_character_precision_and_recall_count_multisets():
    score = score_sample(["通义千问"], "通义千千问问啊")
    assert (score.chars_matched, score.chars_expected, score.chars_read) == (4, 4, 7)
    metrics = aggregate([score])
    assert metrics["char_recall"].value == 1.0 and metrics["char_precision"].value == pytest.approx(4 / 7)
    assert metrics["char_f1"].value == pytest.approx(2 * (4 / 7) / (1 + 4 / 7))


def test_aggregates_divide_sums_and_intervals_bracket_them():
    scores = [score_sample(["alpha"], "alpha")] * 30 + [score_sample(["beta", "gamma"], "beta")] * 10
    metrics = aggregate(scores)
    assert set(metrics) == set(METRICS)
    assert metrics["exact_match"].value == pytest.approx((30 + 10) / (30 + 20))  # texts, not samples
    assert metrics["sample_accuracy"].value == pytest.approx(30 / 40)
    for interval in metrics.values():
        assert interval.low <= interval.value <= interval.high and interval.n == 40
    assert metrics["exact_match"].high - metrics["exact_match"].low > 0.05  # a mixed set has a real interval
    nothing = aggregate([score_sample(["word"], "")] * 5)
    assert all(m.value == 0.0 and m.high == 0.0 for m in nothing.values())


def test_paired_difference_flags_a_real_change_and_not_a_tie():
    rng = np.random.default_rng(1)
    words = [f"w{i}x" for i in range(60)]
    a = [score_sample([w], w if rng.random() < 0.5 else "") for w in words]
    same = paired_difference(a, a)
    assert same["exact_match"]["difference"] == 0 and not same["exact_match"]["significant"]
    better = [score_sample([w], w) for w in words]
    diff = paired_difference(a, better)
    assert diff["exact_match"]["difference"] > 0.3 and diff["exact_match"]["significant"]
    assert diff["exact_match"]["low"] > 0
    with pytest.raises(ValueError):
        paired_difference(a, better[:3])
