"""The original Wan-2.1 name adapter, against renaming rules written out independently here."""

import re

import pytest
import torch
from safetensors.torch import save_file

from qwenimage.vae import WanVAE, convert_wan_original, load_wan_original, vae_preset
from qwenimage.weights.errors import CheckpointError

RESIDUAL = [("norm1", "residual.0"), ("conv1", "residual.2"), ("norm2", "residual.3"), ("conv2", "residual.6"),
            ("conv_shortcut", "shortcut")]
TOP = [(r"^quant_conv\.", "conv1."), (r"^post_quant_conv\.", "conv2."),
       (r"^(encoder|decoder)\.conv_in\.", r"\1.conv1."), (r"^(encoder|decoder)\.norm_out\.", r"\1.head.0."),
       (r"^(encoder|decoder)\.conv_out\.", r"\1.head.2."), (r"\.mid_block\.resnets\.0\.", ".middle.0."),
       (r"\.mid_block\.attentions\.0\.", ".middle.1."), (r"\.mid_block\.resnets\.1\.", ".middle.2."),
       (r"^encoder\.down_blocks\.", "encoder.downsamples.")]


def to_original(key: str, num_res_blocks: int) -> str:
    """Our key -> original Wan key. Residual-part names occur only inside residual blocks in our naming."""
    for ours, theirs in RESIDUAL:
        key = re.sub(rf"\.{ours}\.(weight|bias|gamma)$", rf".{theirs}.\1", key)
    for pattern, replacement in TOP:
        key = re.sub(pattern, replacement, key)
    match = re.match(r"^decoder\.up_blocks\.(\d+)\.(?:resnets\.(\d+)|upsamplers\.0)\.(.*)$", key)
    if match:  # each decoder stage is num_res_blocks + 1 resnets and an upsampler in one flat list
        per_stage = num_res_blocks + 2
        within = int(match[2]) if match[2] is not None else per_stage - 1
        key = f"decoder.upsamples.{int(match[1]) * per_stage + within}.{match[3]}"
    return key


def random_vae(preset: str) -> WanVAE:
    torch.manual_seed(0)
    return WanVAE(vae_preset(preset)).eval()


@pytest.mark.parametrize("preset", ["tiny", "tiny-official-layout"])
def test_round_trip_through_original_names(preset):
    vae = random_vae(preset)
    original = {to_original(k, vae.config.num_res_blocks): v for k, v in vae.state_dict().items()}
    assert "decoder.upsamples.0.residual.2.weight" in original and "encoder.head.2.bias" in original
    loaded = load_wan_original(original, vae.config)
    z = torch.randn(1, vae.config.z_dim, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), vae.decode(z))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), vae.state_dict().values()))


def test_official_names_spot_check():
    with torch.device("meta"):
        vae = WanVAE(vae_preset("official"))
    original = {to_original(k, 2): v for k, v in vae.state_dict().items()}
    converted = convert_wan_original(original, vae.config)
    assert set(converted) == set(vae.state_dict())
    for key in ("decoder.upsamples.3.time_conv.weight", "decoder.upsamples.4.shortcut.weight",
                "decoder.upsamples.14.residual.6.bias", "encoder.downsamples.8.time_conv.bias",
                "encoder.middle.1.to_qkv.weight", "conv2.weight"):
        assert key in original


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_loads_files(tmp_path, suffix):
    vae = random_vae("tiny")
    original = {to_original(k, 1): v.contiguous() for k, v in vae.state_dict().items()}
    path = tmp_path / f"wan_vae{suffix}"
    save_file(original, str(path)) if suffix == ".safetensors" else torch.save(original, path)
    loaded = load_wan_original(path, vae.config, dtype=torch.float16)
    assert loaded.decoder.conv_in.weight.dtype == torch.float16


def test_mismatches_are_named():
    vae = random_vae("tiny")
    original = {to_original(k, 1): v for k, v in vae.state_dict().items()}
    with pytest.raises(CheckpointError, match="unknown keys \\['extra.weight'\\]"):
        convert_wan_original({**original, "extra.weight": torch.zeros(1)}, vae.config)
    original["conv2.weight"] = torch.zeros(4, 4, 1, 1, 2)
    with pytest.raises(CheckpointError, match="'conv2.weight' \\('post_quant_conv.weight'\\) has shape"):
        convert_wan_original(original, vae.config)
