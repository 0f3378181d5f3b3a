"""Prompt templates and the number of leading tokens they drop, with the real Qwen2 tokenizer."""

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from qwenimage.text.errors import TemplateError
from qwenimage.text.templates import (EDIT_PLUS_TEMPLATE, EDIT_TEMPLATE, IMAGE_BLOCK, T2I_TEMPLATE, PromptTemplate,
                                      drop_count, is_official_tokenizer, picture_labels, token_ids)
from tests.fixtures.tiny_pipeline import load_qwen_tokenizer


@pytest.fixture(scope="module")
def qwen_tokenizer():
    return load_qwen_tokenizer()


@pytest.fixture(scope="module")
def small_bpe_tokenizer():
    """A near character-level BPE: special tokens at other ids and other prefix lengths than the official."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
    backend = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=280, special_tokens=specials, show_progress=False)
    backend.train_from_iterator(["a tiny corpus that shares few merges with the templates"], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, additional_special_tokens=specials[1:],
                                   pad_token="<|endoftext|>")


@pytest.mark.parametrize("template, official", [(T2I_TEMPLATE, 34), (EDIT_TEMPLATE, 64), (EDIT_PLUS_TEMPLATE, 64)])
def test_drop_counts_match_the_reference_with_the_real_tokenizer(qwen_tokenizer, template, official):
    assert is_official_tokenizer(qwen_tokenizer)
    assert drop_count(template, qwen_tokenizer) == official == template.official_drop


def test_dropped_part_ends_at_the_user_turn_and_keeps_the_vision_block(qwen_tokenizer):
    ids = token_ids(qwen_tokenizer, EDIT_TEMPLATE.format("make it blue"))
    kept = qwen_tokenizer.convert_ids_to_tokens(ids[drop_count(EDIT_TEMPLATE, qwen_tokenizer):])
    assert kept[:3] == ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>"]
    assert kept[-5:] == ["<|im_end|>", "Ċ", "<|im_start|>", "assistant", "Ċ"]


def test_drifted_template_is_an_error_for_the_official_tokenizer(qwen_tokenizer):
    drifted = PromptTemplate("drifted", T2I_TEMPLATE.text.replace("Describe the image", "Please describe the image"),
                             official_drop=34)
    with pytest.raises(TemplateError, match="official tokenizer gives 35 prefix tokens, the reference drops 34"):
        drop_count(drifted, qwen_tokenizer)


def test_other_tokenizers_use_the_computed_count(small_bpe_tokenizer):
    assert not is_official_tokenizer(small_bpe_tokenizer)
    count = drop_count(T2I_TEMPLATE, small_bpe_tokenizer)
    assert count == len(small_bpe_tokenizer(T2I_TEMPLATE.dropped_text)["input_ids"]) != 34


def test_edit_plus_labels_each_picture_without_separator():
    assert picture_labels(2) == f"Picture 1: {IMAGE_BLOCK}Picture 2: {IMAGE_BLOCK}"
    text = EDIT_PLUS_TEMPLATE.format("swap them", num_images=2)
    assert text == EDIT_PLUS_TEMPLATE.text.format(picture_labels(2) + "swap them")
    assert EDIT_PLUS_TEMPLATE.dropped_text == EDIT_TEMPLATE.dropped_text


def test_prompt_braces_are_kept_verbatim():
    assert "{x} {}" in T2I_TEMPLATE.format("{x} {}")


@pytest.mark.parametrize("template, num_images", [(T2I_TEMPLATE, 1), (EDIT_TEMPLATE, 2), (EDIT_PLUS_TEMPLATE, 0),
                                                  (EDIT_PLUS_TEMPLATE, None)])
def test_wrong_number_of_images_is_an_error(template, num_images):
    with pytest.raises(TemplateError):
        template.format("x", num_images)


def test_template_needs_one_slot_after_the_user_turn():
    with pytest.raises(TemplateError):
        PromptTemplate("bad", "<|im_start|>user\nno slot", official_drop=0)
    with pytest.raises(TemplateError):
        PromptTemplate("bad", "{}<|im_start|>user\n", official_drop=0)
