"""The model's linear layer: nn.Linear's parameters and checkpoint keys, with a faster CPU inference path.

On x86 CPUs PyTorch runs fp32 `F.linear` through MKL, which on some CPUs (AMD Zen among them) takes a
path that reaches about half the machine's peak. oneDNN, which PyTorch also ships (it is what its CPU
compiler backend emits for linears), runs the same fp32 GEMM with the CPU's widest vector units: about 2x
faster for the MMDiT's shapes (`benchmarks/bench_mmdit.py`). It is used only where it is exact in the usual
fp32 sense (a different summation order, ~1e-6 relative) and safe:

- the input is a plain fp32 CPU tensor and the weight a plain (not sharded, not quantised) fp32 tensor;
- no gradient is wanted (oneDNN's linear has no backward): training keeps `F.linear`.

Everything else, and every machine whose PyTorch lacks oneDNN, goes through `F.linear`. Set the environment
variable QWENIMAGE_ONEDNN_LINEAR=0 (or call `set_onednn_linear(False)`) to always use `F.linear`.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

_PLAIN = (torch.Tensor, nn.Parameter)


def _onednn_available() -> bool:
    return (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and os.environ.get("QWENIMAGE_ONEDNN_LINEAR", "1") != "0")


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
    if type(x) not in _PLAIN or type(weight) not in _PLAIN or (bias is not None and type(bias) not in _PLAIN):
        return False
    if bias is not None and bias.dtype != torch.float32:
        return False
    wants_grad = x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    return not (wants_grad and torch.is_grad_enabled())


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           gelu_tanh: bool = False) -> torch.Tensor:
    """x [..., in] -> [..., out] = x @ weight.T + bias, optionally followed by tanh-approximated GELU."""
    if _onednn_applies(x, weight, bias):
        if gelu_tanh:
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "tanh")
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    out = F.linear(x, weight, bias)
    return F.gelu(out, approximate="tanh") if gelu_tanh else out


class Linear(nn.Linear):
    """nn.Linear (same parameters, keys, init and LoRA wrapping) that runs through `linear` above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
