"""The model's linear layer: nn.Linear's parameters and checkpoint keys, with a faster CPU path.

On x86 CPUs PyTorch runs fp32 `F.linear` through MKL, which on some CPUs (AMD Zen among them) takes a
path that reaches about half the machine's peak. oneDNN, which PyTorch also ships (it is what its CPU
compiler backend emits for linears), runs the same fp32 GEMM with the CPU's widest vector units: about 2x
faster for the MMDiT's shapes (`benchmarks/bench_mmdit.py`), for training too: oneDNN's linear has no
backward of its own, so `OneDNNLinear` writes the two backward GEMMs as oneDNN linears as well. It is used
only where it is exact in the usual fp32 sense (another summation order, ~1e-6 relative) and safe:

- the input is a plain fp32 CPU tensor and the weight a plain (not sharded, not quantised) fp32 tensor;
- CPU autocast is off (under autocast `F.linear` runs in the autocast dtype, as the caller asked).

Everything else, and every non-x86 machine or PyTorch build without oneDNN, goes through `F.linear`. Set the environment
variable QWENIMAGE_ONEDNN_LINEAR=0 (or call `set_onednn_linear(False)`) to always use `F.linear`.
"""

from __future__ import annotations

import os
import platform

import torch
import torch.nn.functional as F
from torch import nn

_PLAIN = (torch.Tensor, nn.Parameter)


def _onednn_available() -> bool:
    """x86 builds of PyTorch with oneDNN (elsewhere oneDNN's CPU backends differ, and it is not measured)."""
    if os.environ.get("QWENIMAGE_ONEDNN_LINEAR", "1") == "0":
        return False
    return (platform.machine().lower() in ("x86_64", "amd64") and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


_use_onednn = _onednn_available()


def set_onednn_linear(enabled: bool) -> bool:
    """Turn the oneDNN CPU path on or off (it stays off where PyTorch lacks it); returns the previous setting."""
    global _use_onednn
    previous = _use_onednn
    _use_onednn = enabled and _onednn_available()
    return previous


def _onednn_applies(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    if not _use_onednn or x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32:
        return False
    if torch.is_autocast_enabled("cpu"):
        return False
    if type(x) not in _PLAIN or type(weight) not in _PLAIN or (bias is not None and type(bias) not in _PLAIN):
        return False
    return bias is None or bias.dtype == torch.float32


def _wants_grad(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


class OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b on oneDNN, with the backward GEMMs on oneDNN too: dx = dy W, dW = dy^T x, db = sum dy."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")  # [..., out]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        flat_grad = grad.reshape(-1, grad.shape[-1])  # [M, out]
        grad_x = grad_weight = grad_bias = None
        # `linear` again, so that a double backward (create_graph=True) stays differentiable
        if ctx.needs_input_grad[0]:
            grad_x = linear(grad, weight.t())  # [..., out] @ [out, in] -> [..., in]
        if ctx.needs_input_grad[1]:
            grad_weight = linear(flat_grad.t(), x.reshape(-1, x.shape[-1]).t())  # [out, M] @ [M, in]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = flat_grad.sum(0)
        return grad_x, grad_weight, grad_bias


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           gelu_tanh: bool = False) -> torch.Tensor:
    """x [..., in] -> [..., out] = x @ weight.T + bias, optionally followed by tanh-approximated GELU."""
    if not _onednn_applies(x, weight, bias):
        out = F.linear(x, weight, bias)
    elif _wants_grad(x, weight, bias):
        out = OneDNNLinear.apply(x, weight, bias)
    elif gelu_tanh:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "tanh")  # activation fused
    else:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.gelu(out, approximate="tanh") if gelu_tanh else out


class Linear(nn.Linear):
    """nn.Linear (same parameters, keys, init and LoRA wrapping) that runs through `linear` above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
