"""S3 caption handling: refusals and other invalid captions (English and Chinese), token length, fusing,
and the captioner's JSON, validated and repaired from canned answers (a random tiny model writes no JSON)."""

import pytest

from qwenimage.curate.captioner import CaptionFormatError, parse_captioner_json
from qwenimage.curate.captions import CaptionChecker, TokenCounter, choose_caption, fuse
from qwenimage.curate.config import S3Config
from qwenimage.curate.record import Caption

CHECKER = CaptionChecker(S3Config().invalid_patterns, S3Config().max_word_repeats)


@pytest.mark.parametrize("text, problem", [
    ("A red fox jumps over a fence at dawn.", None),
    ("一只红色的狐狸在黎明时分跳过篱笆。", None),
    ("I'm sorry, but I can't provide a caption for this image.", "invalid_caption"),
    ("Sorry, I cannot describe people in images.", "invalid_caption"),
    ("As an AI language model, I do not see images.", "invalid_caption"),
    ("抱歉，我无法描述这张图片。", "invalid_caption"),
    ("作为一个人工智能，我不能查看图片", "invalid_caption"),
    ("IMG_2041", "invalid_caption"), ("untitled", "invalid_caption"), ("<caption>", "invalid_caption"),
    ("", "empty_caption"), ("...!!", "empty_caption"),
    ("a cat cat cat cat cat cat cat cat on a mat", "repetitive_caption"),
])
def test_invalid_captions_are_named(text, problem):
    assert CHECKER.problem(text) == problem


def test_token_counts_use_the_qwen2_tokenizer():
    counter = TokenCounter()
    assert 0 < counter.count("a red fox") < counter.count("a red fox " * 20)


def test_fuse_and_choose():
    leaf = "A large green leaf in a pot."
    assert fuse("Monstera deliciosa", leaf) == "A large green leaf in a pot. (Monstera deliciosa)"
    assert fuse("green leaf", "A large green leaf in a pot.") == "A large green leaf in a pot."
    captions = [Caption("raw", "raw"), Caption("re", "recaption"), Caption("both", "fused")]
    assert choose_caption(captions, "auto").source == "fused"
    assert choose_caption(captions[:2], "auto").source == "recaption"
    assert choose_caption(captions[:1], "recaption") is None


GOOD = {"Caption": "A poster that reads \"SALE\".", "Image Type": "poster", "Image Style": "flat design",
        "Watermark List": ["shutterstock"], "Abnormal Element": "no"}


@pytest.mark.parametrize("answer", [
    '{"Caption": "A poster that reads \\"SALE\\".", "Image Type": "poster", "Image Style": "flat design", '
    '"Watermark List": ["shutterstock"], "Abnormal Element": "no"}',
    'Sure! Here is the JSON:\n```json\n{"caption": "A poster that reads \\"SALE\\".", "image_type": "poster", '
    '"image style": "flat design", "watermark list": "shutterstock", "abnormal element": "No",}\n```\nHope it helps.',
    "{'Caption': 'A poster that reads \"SALE\".', 'Image Type': 'poster', 'Image Style': 'flat design', "
    "'Watermark List': ['shutterstock'], 'Abnormal Element': False}",
])
def test_captioner_answers_are_repaired(answer):
    assert parse_captioner_json(answer).to_json() == GOOD


@pytest.mark.parametrize("answer, message", [
    ("I cannot help with that.", "no JSON object"),
    ('{"Caption": "x", "Image Type": "photo"', "unterminated"),
    ('{"Caption": "", "Image Type": "photo", "Image Style": "real"}', "Caption"),
    ('{"Caption": "x", "Image Type": "photo", "Image Style": "real", "Abnormal Element": "maybe"}', "yes or no"),
    ('{"Caption": "x" "Image Type": "photo"}', "not valid JSON"),
])
def test_broken_captioner_answers_raise(answer, message):
    with pytest.raises(CaptionFormatError, match=message):
        parse_captioner_json(answer)
