"""The official-size transformer, built on the meta device: parameter count, key names and shapes."""

import torch

from qwenimage.model import QwenImageMMDiT, mmdit_preset

OFFICIAL_PARAMS = 20_430_401_088


def official_meta():
    with torch.device("meta"):
        return QwenImageMMDiT(mmdit_preset("official"))


def test_official_transformer_parameter_count():
    count = official_meta().num_parameters()
    print(f"official transformer parameters: {count:,}")
    assert count == OFFICIAL_PARAMS


def test_official_transformer_keys_and_shapes_follow_the_spec():
    shapes = {k: tuple(v.shape) for k, v in official_meta().state_dict().items()}
    spec = {
        "img_in.weight": (3072, 64), "txt_norm.weight": (3584,), "txt_in.weight": (3072, 3584),
        "time_text_embed.timestep_embedder.linear_1.weight": (3072, 256),
        "time_text_embed.timestep_embedder.linear_2.weight": (3072, 3072),
        "transformer_blocks.59.img_mod.1.weight": (18432, 3072), "transformer_blocks.0.txt_mod.1.bias": (18432,),
        "transformer_blocks.0.attn.to_q.weight": (3072, 3072), "transformer_blocks.0.attn.add_v_proj.bias": (3072,),
        "transformer_blocks.0.attn.norm_added_k.weight": (128,), "transformer_blocks.0.attn.to_out.0.weight": (3072, 3072),
        "transformer_blocks.0.attn.to_add_out.weight": (3072, 3072),
        "transformer_blocks.0.img_mlp.net.0.proj.weight": (12288, 3072),
        "transformer_blocks.0.txt_mlp.net.2.weight": (3072, 12288),
        "norm_out.linear.weight": (6144, 3072), "proj_out.weight": (64, 3072), "proj_out.bias": (64,),
    }
    for key, shape in spec.items():
        assert shapes[key] == shape, key
    per_block = [k for k in shapes if k.startswith("transformer_blocks.0.")]
    assert len(per_block) == 2 * 2 + 6 * 2 + 4 + 2 * 2 + 2 * 4  # mods, qkv x2 streams, qk norms, outs, mlps
    assert len(shapes) == 13 + 60 * len(per_block)  # img_in 2, txt_norm 1, txt_in 2, time 4, norm_out 2, proj_out 2


def test_official_keys_equal_diffusers_keys():
    import pytest

    diffusers = pytest.importorskip("diffusers")
    with torch.device("meta"):
        reference = diffusers.QwenImageTransformer2DModel()
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in official_meta().state_dict().items()}
    assert ours == theirs
