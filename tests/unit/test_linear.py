"""The model's Linear: nn.Linear's parameters and gradients, with a oneDNN path for CPU inference."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qwenimage.devices import cpu_has_bf16
from qwenimage.model import QwenImageMMDiT, mmdit_preset
from qwenimage.model import linear as linear_module
from qwenimage.model.linear import Linear, linear, onednn_linear, row_bucket

ONEDNN = linear_module._onednn_available()


@pytest.fixture
def layer():
    torch.manual_seed(0)
    return Linear(96, 160)


def test_is_an_nn_linear_with_the_same_keys(layer):
    assert isinstance(layer, nn.Linear)
    assert set(layer.state_dict()) == {"weight", "bias"}


@pytest.mark.parametrize("shape", [(7, 96), (2, 33, 96)])
def test_inference_matches_f_linear(layer, shape):
    x = torch.randn(shape)
    with torch.inference_mode():
        out = layer(x)
        torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)
        fused = linear(x, layer.weight, layer.bias, gelu_tanh=True)
        torch.testing.assert_close(fused, F.gelu(F.linear(x, layer.weight, layer.bias), approximate="tanh"),
                                   rtol=1e-5, atol=1e-5)


def test_strided_input_matches(layer):
    x = torch.randn(2, 50, 96)[:, 10:]  # a sequence slice of a batch: not contiguous
    with torch.no_grad():
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gelu_tanh", [False, True])
def test_gradients_equal_nn_linear(layer, gelu_tanh):
    reference = nn.Linear(96, 160)
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(3, 5, 96, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    linear(x, layer.weight, layer.bias, gelu_tanh=gelu_tanh).square().sum().backward()
    out_ref = reference(x_ref)
    (F.gelu(out_ref, approximate="tanh") if gelu_tanh else out_ref).square().sum().backward()
    for ours, theirs in ((x.grad, x_ref.grad), (layer.weight.grad, reference.weight.grad),
                         (layer.bias.grad, reference.bias.grad)):
        assert ours.abs().max() > 0
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)


def test_double_backward_equals_nn_linear(layer):
    x = torch.randn(4, 96, requires_grad=True)
    (grad_x,) = torch.autograd.grad(layer(x).square().sum(), x, create_graph=True)
    (grad_w,) = torch.autograd.grad(grad_x.square().sum(), layer.weight)
    x_ref = x.detach().clone().requires_grad_(True)
    weight = layer.weight.detach().clone().requires_grad_(True)
    (grad_x_ref,) = torch.autograd.grad(F.linear(x_ref, weight, layer.bias).square().sum(), x_ref,
                                        create_graph=True)
    (grad_w_ref,) = torch.autograd.grad(grad_x_ref.square().sum(), weight)
    torch.testing.assert_close(grad_w, grad_w_ref, rtol=1e-4, atol=1e-3)


def test_path_choice(layer):
    x = torch.randn(4, 96)
    with torch.inference_mode():
        assert linear_module._onednn_applies(x, layer.weight, layer.bias) == ONEDNN
        assert not linear_module._onednn_applies(x.double(), layer.weight.double(), None)
        bf16 = ONEDNN and cpu_has_bf16()  # bf16 only where the CPU computes it in hardware
        assert linear_module._onednn_applies(x.bfloat16(), layer.weight.bfloat16(), None) == bf16
        assert not linear_module._onednn_applies(x.bfloat16(), layer.weight, None)  # mixed dtypes: F.linear
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not linear_module._onednn_applies(x, layer.weight, layer.bias)
            assert layer(x).dtype == torch.bfloat16
    assert linear_module._onednn_applies(x, layer.weight, layer.bias) == ONEDNN  # training too


def test_switch_off_gives_f_linear_exactly(layer):
    x = torch.randn(3, 11, 96)
    previous = linear_module._use_onednn
    with onednn_linear(False), torch.inference_mode():
        assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    assert linear_module._use_onednn == previous


@pytest.mark.skipif(not ONEDNN, reason="this PyTorch build has no oneDNN linear")
def test_transformer_forward_same_either_way():
    torch.manual_seed(0)
    model = QwenImageMMDiT(mmdit_preset("tiny")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    config = model.config
    x, text = torch.randn(2, 16, config.in_channels), torch.randn(2, 5, config.joint_attention_dim)
    t = torch.tensor([0.3, 0.8])
    with torch.inference_mode():
        fast = model(x, text, t, [(1, 4, 4)])
        with onednn_linear(False):
            plain = model(x, text, t, [(1, 4, 4)])
    assert fast.abs().max() > 0.1  # the perturbed model does something
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


def test_environment_variable_turns_it_off():
    code = "from qwenimage.model import linear; print(linear._use_onednn)"
    env = {**os.environ, "QWENIMAGE_ONEDNN_LINEAR": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_row_buckets_bound_the_gemm_shapes():
    buckets = [row_bucket(rows) for rows in range(1, 4097)]
    assert all(rows <= b <= rows * 1.032 for rows, b in zip(range(1, 4097), buckets))
    assert buckets == sorted(buckets) and row_bucket(63) == 63 and row_bucket(1152) == 1152
    assert len(set(row_bucket(rows) for rows in range(1024, 2048))) <= 33  # per octave, not one per length


@pytest.mark.parametrize("rows", [37, 1000, 1153])
def test_padded_rows_change_nothing(layer, rows):
    x = torch.randn(rows, 96, requires_grad=True)
    out = linear(x, layer.weight, layer.bias)
    assert out.shape == (rows, 160)
    torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, (x, layer.weight), grad)
    theirs = torch.autograd.grad(F.linear(x, layer.weight, layer.bias), (x, layer.weight), grad)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
