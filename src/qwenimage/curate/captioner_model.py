"""Loading Qwen2.5-VL for captioning and generating answers (imports torch and transformers on use).

Accepted folders: a Qwen2.5-VL model folder (config.json, weights, tokenizer files, optional
preprocessor_config.json), or a Qwen-Image pipeline folder, whose text_encoder/ is Qwen2.5-VL-7B-Instruct.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from qwenimage.curate.errors import SetupError
from qwenimage.text.processor import VisionTextProcessor, load_image_processor
from qwenimage.text.templates import IMAGE_BLOCK

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def _folders(path: Path) -> tuple[Path, Path, Path | None]:
    """(model folder, tokenizer folder, processor folder or None)."""
    if (path / "model_index.json").is_file():
        return path / "text_encoder", path / "tokenizer", path / "processor"
    return path, path, path


def load_captioner(model_path: str, device: str, dtype: str):
    import torch
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    path = Path(model_path)
    if not path.is_dir():
        raise SetupError(f"s3.captioner.model_path: no folder at {path}")
    model_dir, tokenizer_dir, processor_dir = _folders(path)
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, DTYPES[dtype])
    try:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(model_dir), dtype=torch_dtype,
                                                                   local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    except (OSError, ValueError) as err:
        raise SetupError(f"cannot load the captioner at {path}: {err}") from err
    tokenizer.padding_side = "left"  # generation appends on the right
    return model.to(device).eval(), VisionTextProcessor(tokenizer, load_image_processor(processor_dir))


def chat_text(prompt: str) -> str:
    return ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            f"<|im_start|>user\n{IMAGE_BLOCK}{prompt}<|im_end|>\n<|im_start|>assistant\n")


def _shrink(rgb: np.ndarray, max_pixels: int) -> Image.Image:
    image = Image.fromarray(rgb)
    scale = (max_pixels / (image.width * image.height)) ** 0.5
    if scale < 1:
        image = image.resize((max(28, round(image.width * scale)), max(28, round(image.height * scale))),
                             Image.Resampling.BICUBIC)
    return image


def generate_answers(model, processor: VisionTextProcessor, images: list[np.ndarray], prompt: str,
                     max_new_tokens: int, max_pixels: int) -> list[str]:
    import torch

    pictures = [_shrink(rgb, max_pixels) for rgb in images]
    inputs = processor([chat_text(prompt)] * len(pictures), pictures)
    inputs = inputs.to(model.device, model.dtype)
    with torch.no_grad():
        output = model.generate(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask,
                                pixel_values=inputs.pixel_values, image_grid_thw=inputs.image_grid_thw,
                                max_new_tokens=max_new_tokens, do_sample=False)
    new_tokens = output[:, inputs.input_ids.shape[1]:]  # [B, generated]
    return processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
