"""Checks that need no weights: request values, the step ceiling, device names, and the weight-mismatch message."""

import json

import pytest
import torch

from qwenimage.devices import resolve_device
from qwenimage.model import QwenImageMMDiT, mmdit_preset
from qwenimage.pipelines.request import GenerationRequest
from qwenimage.pipelines.sizes import SizeLimits
from qwenimage.pipelines.tasks import target_size
from qwenimage.sampling.schedule import MAX_STEPS, sigmas_for
from qwenimage.weights import CheckpointError


@pytest.mark.parametrize("kwargs,message", [
    (dict(num_steps=10**9), r"num_steps must be an integer in 1\.\.1000, got 1000000000"),
    (dict(num_steps=0), r"num_steps must be an integer in 1\.\.1000, got 0"),
    (dict(seed=2**64), r"seed must be an integer with 0 <= seed < 2\*\*64, got 18446744073709551616"),
    (dict(seed=-1), r"seed must be an integer with 0 <= seed < 2\*\*64, got -1"),
    (dict(strength=1.5), r"strength must be in \[0, 1\], got 1.5"),
    (dict(max_sequence_length=5000), r"max_sequence_length must be an integer in 1\.\.1024, got 5000"),
    (dict(true_cfg_scale=float("nan")), "true_cfg_scale must be a finite number, got nan"),
])
def test_request_values_are_refused_before_any_work(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GenerationRequest("x", **kwargs).validate()


def test_largest_seed_and_step_count_are_accepted():
    GenerationRequest("x", seed=2**64 - 1, num_steps=MAX_STEPS).validate()
    torch.Generator().manual_seed(2**64 - 1)  # the range we accept is what torch takes


def test_schedule_refuses_more_than_max_steps():
    assert sigmas_for(MAX_STEPS, 256).shape == (MAX_STEPS + 1,)
    with pytest.raises(ValueError, match=f"num_steps must be at most {MAX_STEPS}, got {10**9}"):
        sigmas_for(10**9, 256)


def test_a_derived_size_out_of_range_says_where_it_came_from():
    limits = SizeLimits(min_side=32, max_side=1024)
    edit = GenerationRequest("x", images=["unused.png"])
    with pytest.raises(ValueError, match=r"width 1376 is out of range.*comes from the last input image \(1536x864\) "
                                         r"scaled to the model's edit area.*pass --width and --height"):
        target_size(edit, limits, 16, (1536, 864))
    img2img = GenerationRequest("x", init_image="unused.png")
    with pytest.raises(ValueError, match=r"comes from the input image \(2000x500\)"):
        target_size(img2img, limits, 16, (2000, 500))
    edit.width, edit.height = 512, 288
    assert target_size(edit, limits, 16, (1536, 864)) == (512, 288)


@pytest.mark.parametrize("name,message", [
    ("tpu", "unknown device 'tpu'"),
    ("meta", "device 'meta' is not supported here"),
])
def test_unknown_device_names_are_clear_errors(name, message):
    with pytest.raises(ValueError, match=message):
        resolve_device(name)


def test_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda:1' is not available.*use --device cpu"):
        resolve_device("cuda:1")
    assert resolve_device(None) == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")


def test_bad_device_is_not_blamed_on_a_good_checkpoint(tmp_path):
    QwenImageMMDiT(mmdit_preset("tiny")).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="unknown device 'tpu'") as info:
        QwenImageMMDiT.from_pretrained(tmp_path, device="tpu")
    assert "corrupt" not in str(info.value)


def test_shape_mismatch_first_line_names_file_key_and_both_shapes(tmp_path):
    QwenImageMMDiT(mmdit_preset("tiny")).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["joint_attention_dim"] = 48
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        QwenImageMMDiT.from_pretrained(tmp_path)
    first, *rest = str(info.value).splitlines()
    assert first.startswith(str(tmp_path / "diffusion_pytorch_model.safetensors"))
    assert "key 'txt_in.weight' has shape [64, 32], the model expects [64, 48]" in first
    assert "1 more problem(s) below" in first and "txt_norm.weight" in rest[0]
