"""A spelling tokenizer in the Qwen2 format: one token per character, so a small model can render words it
never saw.

With Qwen2's 151k-token BPE almost every common English word is a single token, and an untrained token
carries no spelling. This tokenizer keeps Qwen2's machinery (byte-level BPE in `tokenizer.json`, the
`Qwen2Tokenizer` class, the special tokens and the chat template) and changes only the vocabulary:

- every byte is a token (ids 0..255), so any text encodes, one token per ASCII character;
- every GB 2312 character (hanzi levels 1 and 2, full-width punctuation) is one token;
- no merges: the pre-tokenizer cuts text into single characters, and `ignore_merges` maps a character that is
  in the vocabulary straight to its token (others fall back to their UTF-8 bytes);
- the system turns of the prompt templates are cut into fixed chunks, each one token, so that the template
  prefix is exactly as long as with the official tokenizer (34 tokens for text-to-image, 64 for edits):
  pipelines that hard-code those drop lengths (diffusers') then drop the same prefix as ours. Only the
  complete system text is chunked: a prompt that contains part of it still tokenizes character by character.

    tokenizer = build_char_tokenizer()          # a transformers Qwen2Tokenizer
    tokenizer.save_pretrained("model/tokenizer")
"""

from __future__ import annotations

import re

from qwenimage.text.templates import EDIT_TEMPLATE, T2I_TEMPLATE, USER_TURN, PromptTemplate

# The Qwen2 / Qwen2.5-VL special and control tokens, in the official order (their official ids are 151643+).
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
CONTROL_TOKENS = ("<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                  "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>")

# Qwen2's chat template (tokenizer_config.json), kept so chat-style callers format prompts as usual.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

_TEMPLATES = (T2I_TEMPLATE, EDIT_TEMPLATE)


def _bytes_to_unicode() -> dict[int, str]:
    """Byte-level BPE's reversible byte -> printable character table (the GPT-2 / Qwen2 convention)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHARS = _bytes_to_unicode()


def _byte_level(text: str) -> str:
    return "".join(BYTE_CHARS[b] for b in text.encode("utf-8"))


def gb2312_characters() -> list[str]:
    """Every character GB 2312 encodes as two bytes (symbols, kana, Greek, Cyrillic and 6,763 hanzi)."""
    chars = []
    for row in range(0xA1, 0xF8):
        for col in range(0xA1, 0xFF):
            try:
                chars.append(bytes((row, col)).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return chars


def system_segment(template: PromptTemplate) -> str:
    """The text between `<|im_start|>` and `<|im_end|>` of the template's system turn ('system\\n...')."""
    prefix = template.dropped_text
    start = prefix.index("<|im_start|>") + len("<|im_start|>")
    return prefix[start:prefix.index("<|im_end|>")]


def _fixed_prefix_tokens(template: PromptTemplate) -> int:
    """Tokens of the dropped prefix outside the system segment: <|im_start|>, <|im_end|>, '\\n', and the
    user-turn header (<|im_start|> + one token per character of 'user\\n')."""
    return 3 + 1 + (len(USER_TURN) - len("<|im_start|>"))


def split_even(text: str, pieces: int) -> list[str]:
    """`text` cut into `pieces` consecutive chunks whose lengths differ by at most one."""
    if not 1 <= pieces <= len(text):
        raise ValueError(f"cannot cut {len(text)} characters into {pieces} chunks")
    base, extra = divmod(len(text), pieces)
    chunks, start = [], 0
    for i in range(pieces):
        end = start + base + (1 if i < extra else 0)
        chunks.append(text[start:end])
        start = end
    return chunks


def system_chunks() -> dict[str, list[str]]:
    """template name -> the chunks of its system segment, sized so the prefix has the official length."""
    return {t.name: split_even(system_segment(t), t.official_drop - _fixed_prefix_tokens(t)) for t in _TEMPLATES}


def _pre_tokenizer_pattern() -> str:
    segments = sorted({system_segment(t) for t in _TEMPLATES}, key=len, reverse=True)
    return "|".join(re.escape(s) for s in segments) + r"|[\s\S]"


def _chunk_pattern(chunks: dict[str, list[str]]) -> str:
    ordered = sorted({c for cs in chunks.values() for c in cs}, key=len, reverse=True)
    return "|".join(re.escape(c) for c in ordered)


def build_char_tokenizer():
    """The spelling tokenizer as a transformers `Qwen2Tokenizer` (saved with `save_pretrained`)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for b in range(256):
        vocab[BYTE_CHARS[b]] = b
    for ch in gb2312_characters():
        vocab.setdefault(_byte_level(ch), len(vocab))
    chunks = system_chunks()
    for cs in chunks.values():
        for chunk in cs:
            vocab.setdefault(_byte_level(chunk), len(vocab))

    core = Tokenizer(BPE(vocab=vocab, merges=[], dropout=None, unk_token=None, continuing_subword_prefix="",
                         end_of_word_suffix="", fuse_unk=False, byte_fallback=False, ignore_merges=True))
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_pre_tokenizer_pattern()), behavior="isolated"),  # system text | one char
        pre_tokenizers.Split(Regex(_chunk_pattern(chunks)), behavior="isolated"),  # system text -> chunks
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    core.add_tokens([AddedToken(t, special=False, normalized=False) for t in CONTROL_TOKENS])

    wrapped = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                      additional_special_tokens=list(SPECIAL_TOKENS[1:]),
                                      clean_up_tokenization_spaces=False, model_max_length=131072)
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def save_char_tokenizer(folder) -> None:
    """Write the tokenizer so `Qwen2Tokenizer.from_pretrained(folder)` (and AutoTokenizer) load it."""
    import json
    from pathlib import Path

    folder = Path(folder)
    build_char_tokenizer().save_pretrained(str(folder))
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False))
