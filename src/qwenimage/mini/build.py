"""qwenimage-mini's components before training: the official folder layout and classes at a small size.

    folder = build_mini_components("outputs/mini/base")   # tokenizer/, text_encoder/, vae/, scheduler/, ...

- tokenizer/: the spelling tokenizer (one token per character, Qwen2 format; text/char_tokenizer.py);
- text_encoder/: Qwen2.5-VL (transformers' class) with 2 small text layers and a 2-block vision tower. It is
  not trained: its embedding table is drawn with unit scale, so each character's state is a fixed random code
  that the two random layers perturb only slightly, and the MMDiT's text stream (trained) learns to read it;
- vae/: the Wan-2.1 architecture (16 channels, 8x down) at base width 16, trained by `qwenimage train` with the
  VAE objective (train/vae_trainer.py), which also writes the per-channel latent mean/std into its config;
- transformer/: written by MMDiT training (MINI_TRANSFORMER: 320 wide, 6 dual-stream blocks);
- qwenimage.json: the model's native size and default steps / CFG, which `qwenimage generate` uses.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import torch

from qwenimage.model.config import MMDiTConfig, mmdit_preset
from qwenimage.text.char_tokenizer import save_char_tokenizer
from qwenimage.tiny import PREPROCESSOR_CONFIG, model_index, scheduler_config_json
from qwenimage.vae.config import VAEConfig
from qwenimage.weights.config_io import write_json_atomic

TEXT_HIDDEN = 128
MINI_TRANSFORMER = mmdit_preset("qwenimage-mini", joint_attention_dim=TEXT_HIDDEN)
MINI_VAE = VAEConfig(base_dim=16, num_res_blocks=1, latents_mean=(0.0,) * 16, latents_std=(1.0,) * 16)
NATIVE_SIZE = 128
# what `qwenimage generate` uses for this model when the command line does not say
EDIT_PIPELINE_CLASS = "QwenImageEditPipeline"  # one condition image inside the official edit template
MINI_SETTINGS = {
    # edit_area: condition images are resized to the native 128x128 (VL and VAE copies), the size edits train at
    "size_limits": {"min_side": 64, "max_side": 512, "edit_area": NATIVE_SIZE * NATIVE_SIZE},
    "defaults": {"width": NATIVE_SIZE, "height": NATIVE_SIZE, "num_steps": 20, "true_cfg_scale": 4.0,
                 "negative_prompt": " "},
    # instruction edits: CFG off (the edit runs train no empty-instruction branch), as the edit evaluations sample
    "edit_defaults": {"true_cfg_scale": 1.0},
}
# text_focus (pipelines/text_focus.py) of the 128x128 edit model: the signs it was trained to edit (24-px DejaVu
# Sans Mono Bold, lower case, the pen 8% in, the line centred; its surest colours black on white), with the OCR
# box of such a line measured on 50 held-out signs (`python scripts/text_focus_geometry.py --pairs
# data/mini/edit-place-eval`: height 30.8 +- 4.2 px, left edge 5.9 +- 1.3 px); its Chinese signs (32-px Noto Sans
# CJK SC Bold, one to three characters asked for in the English wording: configs/synth/mini_edit_pairs_zh96.yaml),
# measured alike on data/mini/edit-zh32-eval: height 48.9 +- 3.5 px, left edge 2.7 +- 1.9 px
MINI_TEXT_FOCUS_CJK = {"font": "Noto Sans CJK SC Bold", "font_size": 32, "line_height": 48.9, "left": 2.7,
                       "max_chars": 3, "instruction": 'Change the text "{old}" to "{new}"'}
MINI_TEXT_FOCUS = {"width": NATIVE_SIZE, "height": NATIVE_SIZE, "line_height": 30.8, "left": 5.9, "lower_case": True,
                   "backdrop": "redrawn", "font": "DejaVu Sans Mono Bold", "font_size": 24, "pen": 0.08,
                   "paper": [255, 255, 255], "ink": [0, 0, 0], "cjk": MINI_TEXT_FOCUS_CJK}
TOKENIZER_CLASS = "PreTrainedTokenizerFast"  # see text/char_tokenizer.py: Qwen2Tokenizer would re-split the text


def mini_text_encoder_config(vocab_size: int, eos_id: int | None = None):
    """Qwen2.5-VL at hidden size 128: 2 text layers (4 heads of 32), a 2-block vision tower."""
    from transformers import Qwen2_5_VLConfig

    vocab = (vocab_size + 63) // 64 * 64
    text = dict(hidden_size=TEXT_HIDDEN, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, rope_theta=1e6, vocab_size=vocab, max_position_embeddings=4096,
                bos_token_id=None, eos_token_id=eos_id,
                rope_scaling={"mrope_section": [4, 6, 6], "rope_type": "default", "type": "default"})
    vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=TEXT_HIDDEN,
                  fullatt_block_indexes=[1])
    return text, vision, vocab


def build_text_encoder(tokenizer, seed: int = 0):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text, vision, vocab = mini_text_encoder_config(len(tokenizer), tokenizer.eos_token_id)
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in
           (("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
            ("vision_token_id", "<|vision_pad|>"))}
    config = Qwen2_5_VLConfig(text_config={**text, **ids}, vision_config=vision, hidden_size=TEXT_HIDDEN,
                              vocab_size=vocab, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id, **ids)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    with torch.no_grad():  # unit-scale character codes that dominate the residual stream of the random layers
        model.model.language_model.embed_tokens.weight.normal_(0.0, 1.0)
    return model


def build_mini_components(folder: str | Path, seed: int = 0) -> Path:
    """Write everything but the trained weights' final form: tokenizer, text encoder, an untrained VAE,
    scheduler, processor, settings; model_index.json last. Returns the folder."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_char_tokenizer(folder / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
    shutil.copytree(folder / "tokenizer", folder / "processor", dirs_exist_ok=True)  # the processor's tokenizer
    write_json_atomic(folder / "processor" / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    build_text_encoder(tokenizer, seed).save_pretrained(str(folder / "text_encoder"))
    if not (folder / "vae" / "config.json").is_file():
        from qwenimage.vae import WanVAE

        torch.manual_seed(seed)
        WanVAE(MINI_VAE).save_pretrained(folder / "vae")
    (folder / "scheduler").mkdir(exist_ok=True)
    write_json_atomic(folder / "scheduler" / "scheduler_config.json", scheduler_config_json())
    write_json_atomic(folder / "qwenimage.json", MINI_SETTINGS)
    index = model_index("QwenImagePipeline")
    index["tokenizer"] = ["transformers", TOKENIZER_CLASS]
    write_json_atomic(folder / "model_index.json", index)
    return folder


def mini_transformer_config(**overrides) -> MMDiTConfig:
    return dataclasses.replace(MINI_TRANSFORMER, **overrides)
