"""The spelling tokenizer: one token per character, the official template prefix lengths, transformers loading."""

import pytest
from transformers import AutoTokenizer

from qwenimage.text.char_tokenizer import (BYTE_CHARS, SPECIAL_TOKENS, save_char_tokenizer, split_even,
                                           system_chunks, system_segment)
from qwenimage.text.templates import EDIT_PLUS_TEMPLATE, EDIT_TEMPLATE, T2I_TEMPLATE, drop_count, token_ids


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    save_char_tokenizer(folder)
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def test_every_ascii_character_is_one_token(tokenizer):
    text = 'a sign that says "Hello, World!" 123'
    ids = token_ids(tokenizer, text)
    assert len(ids) == len(text)
    assert ids[0] == ord("a") and tokenizer.decode(ids) == text


def test_gb2312_characters_are_one_token_and_others_fall_back_to_bytes(tokenizer):
    assert len(token_ids(tokenizer, "通义千问")) == 4
    rare = "☃"  # not in GB 2312: its three UTF-8 bytes
    assert token_ids(tokenizer, rare) == list(rare.encode("utf-8"))
    assert tokenizer.decode(token_ids(tokenizer, "通义 ☃ ok")) == "通义 ☃ ok"


def test_unseen_words_spell_with_the_same_tokens_as_seen_ones(tokenizer):
    """What makes spelling generalise: a word's tokens are its letters, whatever the word."""
    assert token_ids(tokenizer, "harbor") == [token_ids(tokenizer, ch)[0] for ch in "harbor"]


@pytest.mark.parametrize("template", [T2I_TEMPLATE, EDIT_TEMPLATE, EDIT_PLUS_TEMPLATE], ids=lambda t: t.name)
def test_the_template_prefix_has_the_official_length(tokenizer, template):
    assert drop_count(template, tokenizer) == template.official_drop  # 34 / 64, what diffusers hard-codes


def test_only_the_whole_system_text_is_chunked(tokenizer):
    chunks = system_chunks()
    assert "".join(chunks["t2i"]) == system_segment(T2I_TEMPLATE)
    prompt = "Describe the image by detailing the color"  # part of the system text, inside a prompt
    assert len(token_ids(tokenizer, prompt)) == len(prompt)


def test_special_tokens_and_chat_template(tokenizer):
    for token in SPECIAL_TOKENS:
        assert token_ids(tokenizer, token) == [tokenizer.convert_tokens_to_ids(token)]
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.eos_token == "<|im_end|>"
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert chat.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_byte_table_is_a_bijection():
    assert len(set(BYTE_CHARS.values())) == 256


def test_split_even():
    assert split_even("abcdefg", 3) == ["abc", "de", "fg"]
    with pytest.raises(ValueError, match="cannot cut"):
        split_even("ab", 3)
