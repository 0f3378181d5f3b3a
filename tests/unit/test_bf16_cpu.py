"""bf16 on CPU: `--dtype bf16` keeps bf16 where the CPU computes it in hardware, and every GEMM of the transformer
then runs in bf16 (no fp32 fallback); the oneDNN bf16 linear agrees with F.linear's bf16, forward and backward."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from qwenimage.cli.generate_cmd import cli_dtype
from qwenimage.devices import cpu_has_bf16
from qwenimage.model import QwenImageMMDiT, mmdit_preset
from qwenimage.model.linear import linear
from tests.helpers import perturb_

needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no AVX512-BF16 / AMX")
GEMMS = {"addmm", "mm", "bmm", "baddbmm", "matmul", "linear", "_linear_pointwise",
         "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_attention_math"}


class GemmDtypes(TorchDispatchMode):
    """Records (op name, dtypes of its tensor arguments) for every matrix-multiply op that runs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in GEMMS:
            self.calls.append((name, {a.dtype for a in args if isinstance(a, torch.Tensor)}))
        return func(*args, **(kwargs or {}))


def test_cli_dtype_on_cpu():
    cpu = torch.device("cpu")
    assert cli_dtype(None, cpu) == torch.float32 and cli_dtype("fp16", cpu) == torch.float32
    assert cli_dtype("bf16", cpu) == (torch.bfloat16 if cpu_has_bf16() else torch.float32)


@needs_bf16
def test_a_bf16_forward_runs_only_bf16_gemms():
    torch.manual_seed(0)
    model = perturb_(QwenImageMMDiT(mmdit_preset("tiny")), 0.05).to(torch.bfloat16).eval()
    text_dim = model.config.joint_attention_dim
    hidden, text = torch.randn(1, 16, model.config.in_channels), torch.randn(1, 7, text_dim)
    with torch.inference_mode():
        expected = model.float()(hidden, text, torch.tensor([0.4]), [(1, 4, 4)])
        model.to(torch.bfloat16)
        with GemmDtypes() as seen:
            out = model(hidden.bfloat16(), text.bfloat16(), torch.tensor([0.4]), [(1, 4, 4)])
    linears = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert sum(name == "_linear_pointwise" for name, _ in seen.calls) == linears  # every linear on oneDNN
    assert all(dtypes == {torch.bfloat16} for _, dtypes in seen.calls), seen.calls
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.05)


@needs_bf16
@pytest.mark.parametrize("gelu", [False, True])
def test_onednn_bf16_linear_matches_f_linear(gelu):
    torch.manual_seed(0)
    x = torch.randn(37, 48, dtype=torch.bfloat16, requires_grad=True)
    weight = (torch.randn(64, 48) * 0.1).bfloat16().requires_grad_()
    bias = torch.randn(64).bfloat16().requires_grad_()
    out = linear(x, weight, bias, gelu_tanh=gelu)
    reference = F.linear(x, weight, bias)
    reference = F.gelu(reference, approximate="tanh") if gelu else reference
    torch.testing.assert_close(out, reference, atol=0.05, rtol=0.02)
    grads = torch.autograd.grad(out.float().square().sum(), (x, weight, bias))
    expected = torch.autograd.grad(reference.float().square().sum(), (x, weight, bias))
    for got, want in zip(grads, expected):
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got.float(), want.float(), atol=0.1, rtol=0.05)


@needs_bf16
def test_autocast_training_keeps_the_gemms_on_onednn_in_bf16():
    torch.manual_seed(0)
    layer = torch.nn.Linear(48, 64)
    x = torch.randn(2, 37, 48, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16), GemmDtypes() as seen:
        out = linear(x, layer.weight, layer.bias, gelu_tanh=True)
    grads = torch.autograd.grad(out.float().square().sum(), (x, layer.weight, layer.bias))
    assert [name for name, _ in seen.calls] == ["_linear_pointwise"] and seen.calls[0][1] == {torch.bfloat16}
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what autocast itself gives through F.linear
        reference = F.gelu(F.linear(x, layer.weight, layer.bias), approximate="tanh")
    expected = torch.autograd.grad(reference.float().square().sum(), (x, layer.weight, layer.bias))
    assert out.dtype == reference.dtype == torch.bfloat16
    torch.testing.assert_close(out, reference, atol=0.05, rtol=0.02)
    for got, want in zip(grads, expected):
        assert got.dtype == want.dtype == torch.float32  # the fp32 master weights get fp32 gradients
        torch.testing.assert_close(got, want, atol=0.1, rtol=0.05)


def attention_inputs(dtype, masked: bool):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 300, 32) * scale for scale in (2, 2, 1))  # 300: not a multiple of the chunk
    mask = None
    if masked:  # the second sample's last 40 keys are padding
        mask = torch.ones(2, 1, 1, 300, dtype=torch.bool)
        mask[1, ..., -40:] = False
    return [x.to(dtype) for x in (q, k, v)], mask


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("head_views", [False, True])
def test_blocked_attention_is_sdpa_in_fp32(masked, head_views):
    """The blocked path's maths, without bf16 rounding, on any CPU: chunks, scale and key mask; also on the
    transposed views of [B, S, H, Dh] memory that JointAttention passes (it copies them contiguous first)."""
    from qwenimage.model.attention import blocked_attention

    (q, k, v), mask = attention_inputs(torch.float32, masked)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if head_views:
        q, k, v = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k, v))
        assert not q.is_contiguous()
    torch.testing.assert_close(blocked_attention(q, k, v, mask, chunk=64), expected, atol=1e-5, rtol=1e-5)


@needs_bf16
@pytest.mark.parametrize("masked", [False, True])
def test_bf16_attention_on_cpu_takes_blocked_matmuls_and_stays_close(masked):
    from qwenimage.model.attention import attend

    (q, k, v), mask = attention_inputs(torch.bfloat16, masked)
    expected = F.scaled_dot_product_attention(*(x.float() for x in (q, k, v)), attn_mask=mask)
    with GemmDtypes() as seen:
        out = attend(q, k, v, mask)
    names = {name for name, _ in seen.calls}
    assert "matmul" in names or "bmm" in names
    assert not any(name.startswith("_scaled_dot_product") for name in names)
    assert all(dtypes == {torch.bfloat16} for _, dtypes in seen.calls)
    error = (out.float() - expected).pow(2).mean() / expected.pow(2).mean()
    assert 10 * torch.log10(1 / error) > 30  # dB: bf16 rounding of scores and probabilities, nothing worse


@needs_bf16
def test_bf16_attention_backward_and_its_memory_budget(monkeypatch):
    import qwenimage.model.attention as attention

    (q, k, v), _ = attention_inputs(torch.bfloat16, False)
    q, k, v = (x.requires_grad_() for x in (q, k, v))
    assert attention.use_cpu_bf16_attention(q, k)
    grads = torch.autograd.grad(attention.attend(q, k, v, None).float().square().sum(), (q, k, v))
    q32, k32, v32 = (x.detach().float().requires_grad_() for x in (q, k, v))
    expected = torch.autograd.grad(F.scaled_dot_product_attention(q32, k32, v32).square().sum(), (q32, k32, v32))
    for got, want in zip(grads, expected):
        assert got.dtype == torch.bfloat16
        assert (got.float() - want).norm() < 0.05 * want.norm()
    monkeypatch.setattr(attention, "CPU_TRAIN_SCORES_BUDGET", 2 * 3 * 300 * 300 - 1)  # the scores no longer fit
    assert not attention.use_cpu_bf16_attention(q, k)
    with torch.no_grad():  # inference keeps only one block at a time: always blocked
        assert attention.use_cpu_bf16_attention(q, k)
    assert not attention.use_cpu_bf16_attention(q.float(), k.float())


@pytest.mark.parametrize("units", [True, False])
def test_autocast_auto_follows_the_cpus_bf16_units(monkeypatch, units):
    import qwenimage.devices as devices
    from qwenimage.train.config import OptimConfig, TrainConfig

    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: units)
    cpu = torch.device("cpu")
    assert devices.bf16_autocast("auto", cpu) is units
    assert devices.bf16_autocast(True, cpu) is True and devices.bf16_autocast(False, cpu) is False  # as set
    with pytest.raises(ValueError, match="autocast_bf16 must be true, false or auto, got 'yes'"):
        devices.bf16_autocast("yes", cpu)
    with pytest.raises(ValueError, match="optim.autocast_bf16 must be true, false or auto, got 1"):
        TrainConfig(optim=OptimConfig(autocast_bf16=1))
