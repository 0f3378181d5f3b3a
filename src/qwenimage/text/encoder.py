"""`ConditionEncoder`: Qwen2.5-VL turns prompts (and, for edits, condition images) into the MMDiT's text stream.

Extraction, as in the reference: the last hidden state (after the final norm), the real tokens of each sample
(by attention mask), minus the template's system turn, right-padded with zeros to the batch's longest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torch import nn
from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

from qwenimage.text.embeddings import PromptEmbeddings, gather_valid_tokens
from qwenimage.text.errors import ImageError, PromptError
from qwenimage.images import EDIT_AREA, EDIT_PLUS_VL_AREA, resize_to_area
from qwenimage.text.processor import EncoderInputs, VisionTextProcessor, load_image_processor
from qwenimage.text.templates import (EDIT_PLUS_TEMPLATE, EDIT_TEMPLATE, T2I_TEMPLATE, PromptTemplate, drop_count,
                                      token_ids)
from qwenimage.weights.errors import CheckpointError
from qwenimage.weights.load import find_weight_files, read_shapes

TEXT_ENCODER_WEIGHTS = "model.safetensors"  # transformers' name (sharded: model.safetensors.index.json)
MAX_TEXT_TOKENS = 1024  # the reference's tokenizer_max_length: prompt + closing template tokens
DEFAULT_MAX_SEQUENCE_LENGTH = 512


@dataclass(frozen=True)
class EditStyle:
    """How an edit variant shows its condition images to the VL model."""

    template: PromptTemplate
    vl_area: int  # each image is resized to about this many pixels (multiples of 32) before the VL processor


EDIT_STYLES = {
    "edit": EditStyle(EDIT_TEMPLATE, EDIT_AREA),  # Qwen-Image-Edit: one image inside the template
    "edit_plus": EditStyle(EDIT_PLUS_TEMPLATE, EDIT_PLUS_VL_AREA),  # Edit-2509/2511: "Picture i:" blocks
}


def edit_style(name: str, area: int = EDIT_AREA) -> EditStyle:
    """The edit style `name` for a model whose condition images are resized to `area` pixels: "edit" shows the VL
    model that same image (as the reference does at 1024x1024), "edit_plus" keeps its own 384x384 VL copy."""
    style = _edit_style(name)
    return EditStyle(style.template, area) if name == "edit" else style


class ConditionEncoder(nn.Module):
    """Qwen2.5-VL (transformers' base model, no LM head) + tokenizer + image processor."""

    def __init__(self, model: nn.Module, tokenizer, image_processor=None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.processor = VisionTextProcessor(tokenizer, image_processor)
        templates = (T2I_TEMPLATE, EDIT_TEMPLATE, EDIT_PLUS_TEMPLATE)
        self.drop = {t.name: drop_count(t, tokenizer) for t in templates}
        self.closing_tokens = {t.name: len(token_ids(tokenizer, t.closing_text)) for t in templates}

    @classmethod
    def from_pretrained(cls, pipeline_folder: str | Path, dtype: torch.dtype | None = None,
                        device: str | torch.device = "cpu") -> ConditionEncoder:
        """Load `text_encoder/`, `tokenizer/` and (if present) `processor/` of a diffusers pipeline folder.

        `dtype=None` keeps the checkpoint's dtype. Without `processor/` (text-to-image folders) the image
        processor uses Qwen2.5-VL's defaults. Local files only.
        """
        folder = Path(pipeline_folder)
        for sub in ("text_encoder", "tokenizer"):
            if not (folder / sub).is_dir():
                raise FileNotFoundError(f"{folder}: no {sub}/ folder; expected a diffusers Qwen-Image pipeline folder")
        vl_model = _load_vl_model(folder / "text_encoder", dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
        processor_folder = folder / "processor"
        image_processor = load_image_processor(processor_folder if processor_folder.is_dir() else None)
        return cls(vl_model.model, tokenizer, image_processor).to(device)  # the LM head is dropped here

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def hidden_size(self) -> int:
        return self.model.config.text_config.hidden_size

    def encode_prompts(self, prompts: str | Sequence[str],
                       max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH) -> PromptEmbeddings:
        """Text-to-image conditioning: [B, S_txt <= max_sequence_length, D]."""
        prompts = _as_prompt_list(prompts)
        if not 1 <= max_sequence_length <= MAX_TEXT_TOKENS:
            raise PromptError(f"max_sequence_length must be in 1..{MAX_TEXT_TOKENS}, got {max_sequence_length}")
        self._check_lengths(prompts, T2I_TEMPLATE)
        inputs = self.processor([T2I_TEMPLATE.format(p) for p in prompts])
        return self._encode(inputs, T2I_TEMPLATE).truncate(max_sequence_length)

    def encode_edit(self, prompts: str | Sequence[str], images: Sequence[Sequence[Image.Image]],
                    style: str | EditStyle = "edit") -> PromptEmbeddings:
        """Edit conditioning: images[i] are the condition images of prompts[i] (one for "edit", one or more
        for "edit_plus"), resized here to the style's VL area. Not truncated, like the reference."""
        prompts = _as_prompt_list(prompts)
        style = _edit_style(style)
        _check_image_lists(prompts, images, style.template)
        self._check_lengths(prompts, style.template)
        texts = [style.template.format(p, len(ims)) for p, ims in zip(prompts, images)]
        vl_images = [resize_to_area(im, style.vl_area) for ims in images for im in ims]
        return self._encode(self.processor(texts, vl_images), style.template)

    def prompt_ids(self, prompt: str) -> torch.Tensor:
        """[S] token ids of one text-to-image prompt inside its template (what `encode_ids` takes): lets a data
        producer tokenize while the trainer runs a text encoder that is being trained."""
        self._check_lengths([prompt], T2I_TEMPLATE)
        return self.processor([T2I_TEMPLATE.format(prompt)]).input_ids[0]

    def encode_ids(self, ids: Sequence[torch.Tensor]) -> PromptEmbeddings:
        """Text-to-image conditioning from `prompt_ids` outputs, with gradients (joint training of the text
        encoder): B x [S_b] -> [B, S_txt, D]. Right-padded here; padding is masked out of attention."""
        longest = max(len(i) for i in ids)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(ids), longest), pad, dtype=torch.long)  # [B, S]
        attention_mask = torch.zeros(len(ids), longest, dtype=torch.long)  # [B, S]
        for row, sample in enumerate(ids):
            input_ids[row, : len(sample)] = sample
            attention_mask[row, : len(sample)] = 1
        inputs = EncoderInputs(input_ids, attention_mask).to(self.device, self.dtype)
        hidden = self.model(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask).last_hidden_state
        return gather_valid_tokens(hidden, inputs.attention_mask, self.drop[T2I_TEMPLATE.name])  # [B, S_txt, D]

    @torch.no_grad()
    def _encode(self, inputs: EncoderInputs, template: PromptTemplate) -> PromptEmbeddings:
        inputs = inputs.to(self.device, self.dtype)
        out = self.model(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask,
                         pixel_values=inputs.pixel_values, image_grid_thw=inputs.image_grid_thw)
        hidden = out.last_hidden_state  # [B, S, D], after the final RMSNorm
        return gather_valid_tokens(hidden, inputs.attention_mask, self.drop[template.name])

    def _check_lengths(self, prompts: list[str], template: PromptTemplate) -> None:
        limit = MAX_TEXT_TOKENS - self.closing_tokens[template.name]
        for i, prompt in enumerate(prompts):
            count = len(token_ids(self.tokenizer, prompt))
            if count > limit:
                raise PromptError(f"prompt {i} is {count} tokens long; the text encoder takes at most {limit} "
                                  f"({MAX_TEXT_TOKENS} minus {self.closing_tokens[template.name]} template tokens)")


def _load_vl_model(folder: Path, dtype: torch.dtype | None) -> nn.Module:
    """Qwen2.5-VL from `folder`; a checkpoint that lacks weights (other than the unused LM head) is an error
    instead of transformers' silent random initialisation."""
    check_weight_files(folder)
    vl_model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        str(folder), dtype=dtype or "auto", local_files_only=True, output_loading_info=True)
    missing = sorted(k for k in info["missing_keys"] if not k.startswith("lm_head."))
    bad = missing + sorted(str(k) for k in info["mismatched_keys"])
    if bad:
        raise CheckpointError(f"{folder}: {len(bad)} text-encoder weight(s) missing or of the wrong shape, "
                              f"e.g. {', '.join(bad[:3])}")
    return vl_model


def check_weight_files(folder: Path) -> int:
    """Read the safetensors headers of the text encoder (no tensor data) and return the tensor count: a missing
    shard or a truncated or corrupt file raises the CheckpointError the transformer and the VAE give.
    A folder with only PyTorch .bin files is left to transformers (0)."""
    has_safetensors = any(folder.glob("*.safetensors")) or any(folder.glob("*.safetensors.index.json"))
    if not has_safetensors and any(folder.glob("*.bin")):
        return 0
    return len(read_shapes(find_weight_files(folder, name=TEXT_ENCODER_WEIGHTS)))


def _edit_style(style: str | EditStyle) -> EditStyle:
    if isinstance(style, EditStyle):
        return style
    if style not in EDIT_STYLES:
        raise PromptError(f"unknown edit style {style!r}; choose one of {sorted(EDIT_STYLES)}")
    return EDIT_STYLES[style]


def _as_prompt_list(prompts: str | Sequence[str]) -> list[str]:
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise PromptError("no prompts given")
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
    if bad:
        raise PromptError(f"prompts must be strings; prompt {bad[0]} is {type(prompts[bad[0]]).__name__}")
    return prompts


def _check_image_lists(prompts: list[str], images: Sequence[Sequence[Image.Image]], template: PromptTemplate) -> None:
    if len(images) != len(prompts):
        raise ImageError(f"got {len(prompts)} prompt(s) but {len(images)} image list(s); pass one list per prompt")
    for i, ims in enumerate(images):
        if isinstance(ims, Image.Image):
            raise ImageError(f"images[{i}] is a single image; pass a list of images per prompt")
        wanted = template.num_images
        if (wanted is None and len(ims) < 1) or (wanted is not None and len(ims) != wanted):
            need = "at least 1" if wanted is None else str(wanted)
            raise ImageError(f"prompt {i} has {len(ims)} image(s); the {template.name!r} template takes {need}")
