"""LoRA at inference: the three key styles, hand-computed reference, fuse/unfuse/unload, save, clear errors.

The model runs in float64 so that "same output" can be checked at 1e-6 without fp32 rounding noise.
"""

import copy
import json

import pytest
import torch
from peft.tuners.lora import LoraLayer
from peft.utils.other import get_pattern_key
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from qwenimage.model import QwenImageMMDiT, mmdit_preset
from qwenimage.model.linear import Linear
from qwenimage.weights.lora import (LoraError, fuse_lora, linear_modules, load_lora, lora_adapters,
                                    lora_state_dict_to_peft, save_lora, set_lora_scale, unfuse_lora, unload_lora)
from tests.helpers import perturb_

TOL = 1e-6
# module -> (rank, alpha or None); covers both streams, attention, MLP, modulation and the top-level linears
TARGETS = {
    "transformer_blocks.0.attn.to_q": (4, 8.0),
    "transformer_blocks.0.attn.add_k_proj": (4, None),
    "transformer_blocks.0.attn.to_out.0": (4, 3.0),
    "transformer_blocks.1.attn.to_add_out": (2, 8.0),
    "transformer_blocks.0.img_mlp.net.0.proj": (4, 8.0),
    "transformer_blocks.1.txt_mlp.net.2": (4, 8.0),
    "transformer_blocks.1.img_mod.1": (4, 1.0),
    "transformer_blocks.0.txt_mod.1": (2, None),
    "img_in": (4, 8.0),
    "txt_in": (4, 8.0),
    "proj_out": (4, 8.0),
    "norm_out.linear": (4, 2.0),
    "time_text_embed.timestep_embedder.linear_1": (4, 8.0),
}
STYLES = ("diffusers", "bare", "kohya", "comfyui", "comfyui_down_up")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return perturb_(QwenImageMMDiT(mmdit_preset("tiny"))).double().eval()


@pytest.fixture
def fresh(model):
    return copy.deepcopy(model)


def inputs():
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 16, 64, generator=gen, dtype=torch.float64)  # [B, S_img, C_in], h = w = 4
    text = torch.randn(2, 8, 32, generator=gen, dtype=torch.float64)  # [B, S_txt, D_txt]
    return hidden, text, torch.tensor([0.3, 0.8], dtype=torch.float64)


@torch.no_grad()
def run(model):
    hidden, text, t = inputs()
    return model(hidden, text, t, img_shapes=[(1, 4, 4)])


def make_adapter(model, seed=0, targets=TARGETS):
    """module -> (A [r, in], B [out, r], alpha or None), random, fp32 like real files."""
    gen = torch.Generator().manual_seed(seed)
    linears = linear_modules(model)
    adapter = {}
    for name, (rank, alpha) in targets.items():
        out_features, in_features = linears[name].weight.shape
        adapter[name] = (torch.randn(rank, in_features, generator=gen) * 0.2,
                         torch.randn(out_features, rank, generator=gen) * 0.2, alpha)
    return adapter


def write_style(adapter, style):
    """The adapter in one key style, as a LoRA file from that tool would hold it."""
    prefix, a, b = {
        "diffusers": ("transformer.", "lora_A.weight", "lora_B.weight"),
        "bare": ("", "lora_down.weight", "lora_up.weight"),  # e.g. the Lightning LoRA files
        "kohya": ("lora_unet_", "lora_down.weight", "lora_up.weight"),
        "comfyui": ("diffusion_model.", "lora_A.weight", "lora_B.weight"),
        "comfyui_down_up": ("diffusion_model.", "lora_down.weight", "lora_up.weight"),
    }[style]
    sd = {}
    for name, (down, up, alpha) in adapter.items():
        stem = prefix + (name.replace(".", "_") if style == "kohya" else name)
        sd[f"{stem}.{a}"], sd[f"{stem}.{b}"] = down, up
        if alpha is not None:
            sd[f"{stem}.alpha"] = torch.tensor(alpha)
    return sd


def hand_reference(model, adapters_and_scales):
    """A deep copy with W += scale * alpha / r * B @ A applied directly to the base weights, in float64."""
    ref = copy.deepcopy(model)
    linears = linear_modules(ref)
    with torch.no_grad():
        for adapter, scale in adapters_and_scales:
            for name, (down, up, alpha) in adapter.items():
                rank = down.shape[0]
                factor = scale * (alpha if alpha is not None else rank) / rank
                linears[name].weight += factor * up.double() @ down.double()
    return run(ref)


def max_diff(x, y):
    return (x - y).abs().max().item()


@pytest.mark.parametrize("style", STYLES)
def test_each_key_style_matches_the_hand_reference(model, fresh, style, tmp_path):
    adapter = make_adapter(model)
    path = tmp_path / f"{style}.safetensors"
    save_file(write_style(adapter, style), str(path))

    load_lora(fresh, path, scale=0.7)

    want = hand_reference(model, [(adapter, 0.7)])
    assert max_diff(want, run(model)) > 0.1  # the adapter does change the output
    assert max_diff(run(fresh), want) <= TOL


def test_all_styles_give_the_same_peft_adapter(model):
    adapter = make_adapter(model)
    converted = [lora_state_dict_to_peft(write_style(adapter, style), model) for style in STYLES]
    first_sd, first_config = converted[0]
    assert sorted(first_sd) == sorted(f"{n}.lora_{p}.weight" for n in TARGETS for p in "AB")
    for sd, config in converted[1:]:
        assert sd.keys() == first_sd.keys()
        assert all(torch.equal(sd[k], first_sd[k]) for k in sd)
        assert config.to_dict() == first_config.to_dict()


def test_config_reproduces_each_rank_and_alpha(model, fresh):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sd, config = lora_state_dict_to_peft(write_style(make_adapter(model), "kohya"), model)
    assert set(config.target_modules) == set(TARGETS)
    assert sd["img_in.lora_A.weight"].dtype == torch.float64  # cast to the base layer's dtype
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # pure: the model is untouched

    kohya = write_style(make_adapter(model), "kohya")
    load_lora(fresh, kohya, scale=0.5)
    layers = {n: m for n, m in fresh.named_modules() if isinstance(m, LoraLayer)}
    assert set(layers) == set(TARGETS)
    adapter_params = [p for n, p in fresh.named_parameters() if ".lora_" in n]
    assert adapter_params and not any(p.requires_grad for p in adapter_params)  # frozen: inference
    with torch.no_grad():
        kohya["lora_unet_img_in.lora_up.weight"].zero_()  # the caller's tensors are not aliased by the model
    assert layers["img_in"].lora_B["default"].weight.abs().sum() > 0
    for name, (rank, alpha) in TARGETS.items():
        layer = layers[name]
        assert layer.r["default"] == rank
        assert layer.scaling["default"] == pytest.approx(0.5 * (alpha or rank) / rank)


def test_fuse_and_unfuse_keep_the_output(model, fresh):
    load_lora(fresh, write_style(make_adapter(model), "kohya"))
    unfused = run(fresh)
    fuse_lora(fresh)
    assert max_diff(run(fresh), unfused) <= TOL
    unfuse_lora(fresh)
    assert max_diff(run(fresh), unfused) <= TOL
    fuse_lora(fresh)
    unload_lora(fresh)  # unfuses by subtraction: the base output up to rounding
    assert max_diff(run(fresh), run(model)) <= TOL


def test_unload_after_fuse_with_keep_base_is_exact(model, fresh):
    grads = {n: p.requires_grad for n, p in fresh.named_parameters()}
    load_lora(fresh, write_style(make_adapter(model), "diffusers"))
    fuse_lora(fresh, keep_base=True)
    assert max_diff(run(fresh), run(model)) > 0.1
    unload_lora(fresh)  # restores the kept copy bit for bit
    assert torch.equal(run(fresh), run(model))
    assert fresh.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in fresh.state_dict().items())
    assert type(fresh.transformer_blocks[0].attn.to_q) is Linear  # the base layer itself, unwrapped
    assert lora_adapters(fresh) == [] and not hasattr(fresh, "peft_config")
    assert {n: p.requires_grad for n, p in fresh.named_parameters()} == grads


def test_unload_without_fusing_is_exact(model, fresh):
    base = run(model)
    load_lora(fresh, write_style(make_adapter(model), "comfyui"))
    unload_lora(fresh)
    assert torch.equal(run(fresh), base)


def test_two_adapters_add_up_and_unload_one(model, fresh):
    first = make_adapter(model, seed=1)
    second = make_adapter(model, seed=2, targets={k: TARGETS[k] for k in list(TARGETS)[:5]})
    load_lora(fresh, write_style(first, "diffusers"), adapter_name="style", scale=0.5)
    load_lora(fresh, write_style(second, "kohya"), adapter_name="speed", scale=2.0)
    assert lora_adapters(fresh) == ["style", "speed"]
    assert max_diff(run(fresh), hand_reference(model, [(first, 0.5), (second, 2.0)])) <= TOL

    set_lora_scale(fresh, 1.5, "style")
    want = hand_reference(model, [(first, 1.5), (second, 2.0)])
    assert max_diff(run(fresh), want) <= TOL
    fuse_lora(fresh)  # both adapters go into the weights
    assert max_diff(run(fresh), want) <= TOL

    unload_lora(fresh, "style")
    assert lora_adapters(fresh) == ["speed"]
    assert max_diff(run(fresh), hand_reference(model, [(second, 2.0)])) <= TOL
    assert type(fresh.img_in) is Linear  # adapted by "style" only: back to the plain layer
    assert type(fresh.transformer_blocks[0].attn.to_q) is not Linear  # still carries "speed"


@pytest.mark.parametrize("fold_alpha", [False, True])
def test_save_lora_round_trips_in_diffusers_keys(model, fresh, tmp_path, fold_alpha):
    adapter = make_adapter(model)
    load_lora(fresh, write_style(adapter, "kohya"), scale=3.0)
    path = save_lora(fresh, tmp_path / "out" / "lora.safetensors", fold_alpha=fold_alpha)

    again = copy.deepcopy(model)
    load_lora(again, path, scale=0.7)
    assert max_diff(run(again), hand_reference(model, [(adapter, 0.7)])) <= TOL
    with safe_open(str(path), framework="pt") as handle:
        keys, metadata = set(handle.keys()), handle.metadata()
    assert keys == {f"transformer.{n}.lora_{p}.weight" for n in TARGETS for p in "AB"}
    assert json.loads(metadata["lora_adapter_metadata"])["transformer.lora_alpha"] == (4.0 if fold_alpha else 8.0)
    if fold_alpha:  # alpha = rank everywhere, so a loader that ignores the metadata gets it right too
        stripped = copy.deepcopy(model)
        load_lora(stripped, load_file(str(path)), scale=0.7)
        assert max_diff(run(stripped), run(again)) <= TOL


def test_diffusers_metadata_alpha_is_used(model, fresh, tmp_path):
    """diffusers' own files keep lora_alpha in the header metadata instead of alpha keys."""
    adapter = make_adapter(model, targets={"transformer_blocks.0.attn.to_q": (4, None), "img_in": (4, None)})
    path = tmp_path / "diffusers.safetensors"
    meta = '{"transformer.r": 4, "transformer.lora_alpha": 8, "transformer.alpha_pattern": {"img_in": 2}}'
    save_file(write_style(adapter, "diffusers"), str(path), metadata={"format": "pt", "lora_adapter_metadata": meta})
    load_lora(fresh, path)
    scaled = {"transformer_blocks.0.attn.to_q": (*adapter["transformer_blocks.0.attn.to_q"][:2], 8.0),
              "img_in": (*adapter["img_in"][:2], 2.0)}
    assert max_diff(run(fresh), hand_reference(model, [(scaled, 1.0)])) <= TOL


def test_bf16_model_gets_bf16_adapters(model):
    low = copy.deepcopy(model).to(torch.bfloat16)
    load_lora(low, write_style(make_adapter(model), "diffusers"))
    layer = low.transformer_blocks[0].attn.to_q
    assert layer.lora_A["default"].weight.dtype == torch.bfloat16
    hidden, text, t = inputs()
    with torch.no_grad():
        out = low(hidden.bfloat16(), text.bfloat16(), t, img_shapes=[(1, 4, 4)])
    assert torch.isfinite(out).all()


# ---------------------------------------------------------------- diffusers as the oracle for key conversion

def scale_of(config, name):
    """alpha / rank that peft will use for this module."""
    rank = config.rank_pattern.get(get_pattern_key(list(config.rank_pattern), name), config.r)
    return config.alpha_pattern.get(get_pattern_key(list(config.alpha_pattern), name), config.lora_alpha) / rank


@pytest.mark.parametrize("style", ["kohya", "comfyui", "comfyui_down_up", "bare"])
def test_key_conversion_agrees_with_diffusers(model, style):
    """diffusers' own converter folds alpha / rank into the weights; the update B @ A must be the same.
    (Its converter double-prefixes `transformer.` keys that come with `.alpha` keys, so that style is left out.)"""
    diffusers = pytest.importorskip("diffusers")
    adapter = make_adapter(model)
    theirs = diffusers.QwenImagePipeline.lora_state_dict(write_style(adapter, style))
    ours, config = lora_state_dict_to_peft(write_style(adapter, style), model)
    assert set(theirs) == {f"transformer.{k}" for k in ours}
    for name in TARGETS:
        delta = scale_of(config, name) * ours[f"{name}.lora_B.weight"] @ ours[f"{name}.lora_A.weight"]
        up, down = theirs[f"transformer.{name}.lora_B.weight"], theirs[f"transformer.{name}.lora_A.weight"]
        torch.testing.assert_close(delta, up.double() @ down.double(), rtol=1e-5, atol=1e-6)


def test_diffusers_model_loads_our_saved_lora_the_same(tmp_path):
    """End to end against the oracle: diffusers' transformer with our saved file == our model with it."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    reference = diffusers.QwenImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16, num_attention_heads=4,
        joint_attention_dim=32, axes_dims_rope=(4, 6, 6)).eval()
    perturb_(reference)
    reference.save_pretrained(tmp_path / "base")
    ours = QwenImageMMDiT.from_pretrained(tmp_path / "base").eval()
    adapter = make_adapter(ours)
    load_lora(ours, write_style(adapter, "kohya"))
    path = save_lora(ours, tmp_path / "lora.safetensors")

    state_dict, metadata = diffusers.QwenImagePipeline.lora_state_dict(str(path), return_lora_metadata=True)
    reference.load_lora_adapter(state_dict, prefix="transformer", metadata=metadata)
    gen = torch.Generator().manual_seed(1)
    hidden, text = torch.randn(2, 16, 16, generator=gen), torch.randn(2, 8, 32, generator=gen)
    t = torch.tensor([0.3, 0.8])

    def theirs():
        return reference(hidden_states=hidden, encoder_hidden_states=text, timestep=t,
                         img_shapes=[(1, 4, 4)] * 2, return_dict=False)[0]

    with torch.no_grad():
        expected, actual = theirs(), ours(hidden, text, t, img_shapes=[(1, 4, 4)])
        reference.disable_lora()
        base = theirs()
    assert (expected - base).abs().max() > 0.1  # the LoRA is active in diffusers
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- clear errors

def test_keys_that_match_no_module_are_named(model):
    sd = write_style(make_adapter(model), "diffusers")
    sd["transformer.transformer_blocks.7.attn.to_q.lora_A.weight"] = torch.zeros(4, 64)
    sd["transformer.transformer_blocks.7.attn.to_q.lora_B.weight"] = torch.zeros(64, 4)
    with pytest.raises(LoraError, match=r"1 of 14 LoRA modules .* no linear layer .*transformer_blocks\.7\.attn\.to_q"):
        lora_state_dict_to_peft(sd, model)


def test_kohya_keys_that_match_no_module_are_named(model):
    sd = {"lora_unet_transformer_blocks_0_attn_to_qq.lora_down.weight": torch.zeros(4, 64),
          "lora_unet_transformer_blocks_0_attn_to_qq.lora_up.weight": torch.zeros(64, 4)}
    with pytest.raises(LoraError, match="kohya key style.*lora_unet_transformer_blocks_0_attn_to_qq"):
        lora_state_dict_to_peft(sd, model)


def test_shape_mismatch_names_key_and_shapes(model):
    sd = write_style(make_adapter(model), "comfyui")
    sd["diffusion_model.img_in.lora_A.weight"] = torch.zeros(4, 32)
    with pytest.raises(LoraError, match=r"img_in\.lora_A\.weight has shape \[4, 32\], expected \[rank, 64\]"):
        lora_state_dict_to_peft(sd, model)
    sd = write_style(make_adapter(model), "comfyui")
    sd["diffusion_model.img_in.lora_B.weight"] = torch.zeros(64, 3)
    with pytest.raises(LoraError, match=r"img_in\.lora_B\.weight has shape \[64, 3\], expected \[64, 4\]"):
        lora_state_dict_to_peft(sd, model)


def test_unknown_formats_are_rejected(model, tmp_path):
    with pytest.raises(LoraError, match="unknown LoRA format.*blocks.0.weight"):
        lora_state_dict_to_peft({"blocks.0.weight": torch.zeros(2, 2)}, model)
    with pytest.raises(LoraError, match="unknown LoRA format"):
        lora_state_dict_to_peft({"double_blocks.0.img_attn.qkv.lora_A.weight": torch.zeros(2, 2),
                                 "double_blocks.0.img_attn.qkv.lora_B.weight": torch.zeros(2, 2)}, model)
    with pytest.raises(LoraError, match="not support.*dora_scale"):
        lora_state_dict_to_peft({"transformer.img_in.dora_scale": torch.zeros(1, 64)}, model)
    mixed = {**write_style(make_adapter(model), "kohya"), **write_style(make_adapter(model), "comfyui")}
    with pytest.raises(LoraError, match="mixes LoRA key styles"):
        lora_state_dict_to_peft(mixed, model)
    half = {"transformer.img_in.lora_A.weight": torch.zeros(4, 64)}
    with pytest.raises(LoraError, match="transformer.img_in has no lora_B"):
        lora_state_dict_to_peft(half, model)
    with pytest.raises(LoraError, match="no such LoRA file"):
        load_lora(copy.deepcopy(model), tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(LoraError, match="not a readable safetensors file"):
        load_lora(copy.deepcopy(model), tmp_path / "junk.safetensors")


def test_state_errors(model, fresh):
    load_lora(fresh, write_style(make_adapter(model), "diffusers"))
    with pytest.raises(LoraError, match="already loaded"):
        load_lora(fresh, write_style(make_adapter(model), "diffusers"))
    fuse_lora(fresh)
    with pytest.raises(LoraError, match="unfuse_lora"):
        load_lora(fresh, write_style(make_adapter(model), "diffusers"), adapter_name="other")
    with pytest.raises(LoraError, match="no LoRA adapter named 'nope'"):
        unload_lora(fresh, "nope")
