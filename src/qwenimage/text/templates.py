"""Chat templates that wrap a prompt for Qwen2.5-VL, and the number of leading tokens to drop.

The reference drops a fixed number of leading hidden states: everything up to and including the user-turn
header `<|im_start|>user\\n` (the system turn). We compute that count from the tokenizer instead of trusting
a constant, and check it against the official value when the tokenizer is the official Qwen2 one.
Everything after the header is kept: vision tokens, "Picture i:" labels, the prompt, and the closing
`<|im_end|>\\n<|im_start|>assistant\\n`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from qwenimage.text.errors import TemplateError

logger = logging.getLogger(__name__)

USER_TURN = "<|im_start|>user\n"
IMAGE_PAD = "<|image_pad|>"
IMAGE_BLOCK = "<|vision_start|>" + IMAGE_PAD + "<|vision_end|>"

# Token ids of the Qwen2 / Qwen2.5-VL vocabulary; a tokenizer that has them is taken to be the official one.
OFFICIAL_SPECIAL_IDS = {"<|im_start|>": 151644, "<|im_end|>": 151645, "<|vision_start|>": 151652,
                        "<|vision_end|>": 151653, IMAGE_PAD: 151655}

_T2I_SYSTEM = ("Describe the image by detailing the color, shape, size, texture, quantity, text, spatial "
               "relationships of the objects and background:")
_EDIT_SYSTEM = ("Describe the key features of the input image (color, shape, size, texture, objects, background), "
                "then explain how the user's text instruction should alter or modify the image. Generate a new "
                "image that meets the user's requirements while maintaining consistency with the original input "
                "where appropriate.")


def _chat(system: str, user: str) -> str:
    return f"<|im_start|>system\n{system}<|im_end|>\n{USER_TURN}{user}<|im_end|>\n<|im_start|>assistant\n"


def picture_labels(num_images: int) -> str:
    """Edit-Plus image blocks: 'Picture 1: <block>Picture 2: <block>...' with no separator."""
    return "".join(f"Picture {i}: {IMAGE_BLOCK}" for i in range(1, num_images + 1))


@dataclass(frozen=True)
class PromptTemplate:
    """A chat template with one `{}` slot for the user text.

    `num_images`: images the template itself holds (1 for Edit); None means any number, each announced by a
    "Picture i:" label in front of the prompt (Edit-Plus). `official_drop` is the reference's
    `prompt_template_encode_start_idx`.
    """

    name: str
    text: str
    official_drop: int
    num_images: int | None = 0

    def __post_init__(self) -> None:
        if self.text.count("{}") != 1 or self.text.count(USER_TURN) != 1:
            raise TemplateError(f"template {self.name!r} needs exactly one '{{}}' and one user turn")
        if self.text.index(USER_TURN) > self.text.index("{}"):
            raise TemplateError(f"template {self.name!r}: the '{{}}' slot must follow the user-turn header")

    @property
    def dropped_text(self) -> str:
        """The template text whose hidden states are dropped: the system turn and the user-turn header."""
        return self.text[: self.text.index(USER_TURN) + len(USER_TURN)]

    @property
    def closing_text(self) -> str:
        """The template text after the prompt (kept in the embeddings)."""
        return self.text[self.text.index("{}") + 2:]

    def format(self, prompt: str, num_images: int | None = None) -> str:
        """The full text for one prompt; `num_images` must match the template (Edit-Plus: any >= 1)."""
        expected = self.num_images if num_images is None else num_images
        if self.num_images is None:
            if expected is None or expected < 1:
                raise TemplateError(f"template {self.name!r} needs the number of images (>= 1), got {num_images}")
            prompt = picture_labels(expected) + prompt
        elif expected != self.num_images:
            raise TemplateError(f"template {self.name!r} holds {self.num_images} image(s), got {num_images}")
        return self.text.format(prompt)


T2I_TEMPLATE = PromptTemplate("t2i", _chat(_T2I_SYSTEM, "{}"), official_drop=34, num_images=0)
EDIT_TEMPLATE = PromptTemplate("edit", _chat(_EDIT_SYSTEM, IMAGE_BLOCK + "{}"), official_drop=64, num_images=1)
EDIT_PLUS_TEMPLATE = PromptTemplate("edit_plus", _chat(_EDIT_SYSTEM, "{}"), official_drop=64, num_images=None)


def token_ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def is_official_tokenizer(tokenizer) -> bool:
    """True for the Qwen2 tokenizer that Qwen2.5-VL ships (its special tokens sit at the official ids)."""
    return all(tokenizer.convert_tokens_to_ids(tok) == idx for tok, idx in OFFICIAL_SPECIAL_IDS.items())


def drop_count(template: PromptTemplate, tokenizer) -> int:
    """Leading tokens to drop for `template`, computed with `tokenizer`.

    For the official tokenizer the value must equal the reference's constant (34 or 64), otherwise the
    template text here has drifted from the reference and a TemplateError says so. Other tokenizers (tiny
    test vocabularies) give other counts, which are used as computed.
    """
    count = len(token_ids(tokenizer, template.dropped_text))
    if count == template.official_drop:
        return count
    if is_official_tokenizer(tokenizer):
        raise TemplateError(f"template {template.name!r}: the official tokenizer gives {count} prefix tokens, "
                            f"the reference drops {template.official_drop}; the template text has drifted")
    logger.info("template %r: non-official tokenizer, dropping %d prefix tokens (official: %d)",
                template.name, count, template.official_drop)
    return count
