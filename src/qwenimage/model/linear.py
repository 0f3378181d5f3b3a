"""The model's linear layer: nn.Linear's parameters and checkpoint keys, with a faster CPU path.

On x86 CPUs PyTorch runs fp32 `F.linear` through MKL, which on some CPUs (AMD Zen among them) takes a
path that reaches about half the machine's peak. oneDNN, which PyTorch also ships (it is what its CPU
compiler backend emits for linears), runs the same fp32 GEMM with the CPU's widest vector units: about 2x
faster for the MMDiT's shapes (`benchmarks/bench_mmdit.py`), for training too: oneDNN's linear has no
backward of its own, so `OneDNNLinear` writes the two backward GEMMs as oneDNN linears as well. It is used
only where it is exact in the usual fp32 sense (another summation order, ~1e-6 relative) and safe:

- the input is a plain fp32 CPU tensor and the weight a plain (not sharded, not quantised) fp32 tensor, or
  both are bf16 on a CPU with AVX512-BF16 / AMX (one rounding of the fp32 accumulator, as in F.linear's bf16);
- CPU autocast is off (under autocast `F.linear` runs in the autocast dtype, as the caller asked), except
  autocast to bf16 on such a CPU: the inputs are then cast to bf16 here, as autocast would, and stay on oneDNN.

A torchao int8-dynamic weight (`--quantize int8-dynamic`) runs through `model/int8_gemm.py` on CPUs (int8
GEMMs where the CPU has int8 dot products, the same products in fp32 where not). Everything else, and every
non-x86 machine or PyTorch build without oneDNN, goes through `F.linear`. Set the environment variable
QWENIMAGE_ONEDNN_LINEAR=0 (or call `set_onednn_linear(False)`, or use `with onednn_linear(False):`) to always use
`F.linear`.
"""

from __future__ import annotations

import os
import platform
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from qwenimage.devices import cpu_has_bf16, cpu_has_int8_dot
from qwenimage.model.int8_gemm import dequantized_operands, int8_dynamic_linear, int8_kernel_parts

_PLAIN = (torch.Tensor, nn.Parameter)


def _onednn_available() -> bool:
    """x86 builds of PyTorch with oneDNN (elsewhere oneDNN's CPU backends differ, and it is not measured)."""
    if os.environ.get("QWENIMAGE_ONEDNN_LINEAR", "1") == "0":
        return False
    return (platform.machine().lower() in ("x86_64", "amd64") and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


_use_onednn = _onednn_available()
# bf16 only where the CPU has it in hardware: oneDNN's bf16 GEMM (with the GELU fused) is ~2x F.linear's bf16 path
_DTYPES = (torch.float32, torch.bfloat16) if _use_onednn and cpu_has_bf16() else (torch.float32,)


def set_onednn_linear(enabled: bool) -> bool:
    """Turn the oneDNN CPU path on or off (it stays off where PyTorch lacks it); returns the previous setting."""
    global _use_onednn
    previous = _use_onednn
    _use_onednn = enabled and _onednn_available()
    return previous


@contextmanager
def onednn_linear(enabled: bool) -> Iterator[None]:
    """The oneDNN CPU path on or off inside a `with` block, restored afterwards."""
    previous = set_onednn_linear(enabled)
    try:
        yield
    finally:
        set_onednn_linear(previous)


def _onednn_applies(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    if not _use_onednn or x.device.type != "cpu" or x.dtype not in _DTYPES or weight.dtype != x.dtype:
        return False
    if torch.is_autocast_enabled("cpu"):
        return False
    if torch.compiler.is_compiling():  # inductor cannot lower this op on weights it does not own; it emits its own
        return False
    if type(x) not in _PLAIN or type(weight) not in _PLAIN or (bias is not None and type(bias) not in _PLAIN):
        return False
    return bias is None or bias.dtype == x.dtype


def _autocasts_to_bf16(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """CPU autocast to bf16 (bf16 training) with fp32 plain weights, on a CPU with hardware bf16."""
    if torch.bfloat16 not in _DTYPES or not _use_onednn or x.device.type != "cpu" or weight.dtype != torch.float32:
        return False
    if not torch.is_autocast_enabled("cpu") or torch.get_autocast_dtype("cpu") != torch.bfloat16:
        return False
    if torch.compiler.is_compiling() or not x.is_floating_point():
        return False
    return type(x) in _PLAIN and type(weight) in _PLAIN and (bias is None or type(bias) in _PLAIN)


def _wants_grad(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def row_bucket(rows: int) -> int:
    """`rows` rounded up to a multiple of 1/32 of its power of two (at most ~3% more rows).

    oneDNN JIT-compiles and caches kernels for every GEMM shape it meets (0.5-4 MB each, up to 1024 of them).
    Sequence lengths vary from batch to batch, so GEMMs run on row counts padded to these buckets: a few
    dozen shapes per octave instead of one per length, and memory that stays bounded.
    """
    step = 1 << max(rows.bit_length() - 6, 0)
    return -(-rows // step) * step


def _pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    return x if x.shape[0] == rows else F.pad(x, (0, 0, 0, rows - x.shape[0]))


def _gemm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gelu_tanh: bool = False) -> torch.Tensor:
    """oneDNN x W^T + b over bucketed rows: x [..., in] -> [..., out]."""
    flat = x.reshape(-1, x.shape[-1])  # [M, in]
    post, algorithm = ("gelu", "tanh") if gelu_tanh else ("none", "")
    out = torch.ops.mkldnn._linear_pointwise(_pad_rows(flat, row_bucket(flat.shape[0])), weight, bias, post, [],
                                             algorithm)  # [M_bucket, out]
    return out[: flat.shape[0]].reshape(*x.shape[:-1], weight.shape[0])


class OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b on oneDNN, with the backward GEMMs on oneDNN too: dx = dy W, dW = dy^T x, db = sum dy."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _gemm(x, weight, bias)  # [..., out]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        flat_grad, flat_x = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])  # [M, out], [M, in]
        grad_x = grad_weight = grad_bias = None
        if torch.is_grad_enabled():  # create_graph=True: plain differentiable ops for a double backward
            grad_x = grad @ weight if ctx.needs_input_grad[0] else None
            grad_weight = flat_grad.t() @ flat_x if ctx.needs_input_grad[1] else None
        else:
            if ctx.needs_input_grad[0]:
                grad_x = _gemm(grad, weight.t(), None)  # [..., out] @ [out, in] -> [..., in]
            if ctx.needs_input_grad[1]:  # [out, M] @ [M, in]; zero rows added to both sides change nothing
                rows = row_bucket(flat_grad.shape[0])
                grad_weight = torch.ops.mkldnn._linear_pointwise(
                    _pad_rows(flat_grad, rows).t(), _pad_rows(flat_x, rows).t(), None, "none", [], "")
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = flat_grad.sum(0)
        return grad_x, grad_weight, grad_bias


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           gelu_tanh: bool = False) -> torch.Tensor:
    """x [..., in] -> [..., out] = x @ weight.T + bias, optionally followed by tanh-approximated GELU."""
    int8_parts = int8_kernel_parts(x, weight, bias)  # a torchao int8-dynamic weight, a CPU input
    if int8_parts is not None:
        if not cpu_has_int8_dot():  # torch's int8 GEMM would be scalar code here: the same maths in fp32
            return linear(*dequantized_operands(x, *int8_parts, bias), gelu_tanh=gelu_tanh).to(x.dtype)
        return int8_dynamic_linear(x, *int8_parts, bias, gelu_tanh=gelu_tanh)
    if _autocasts_to_bf16(x, weight, bias):  # make autocast's casts here, so that the GEMMs stay on oneDNN
        with torch.autocast("cpu", enabled=False):
            cast = [t if t is None else t.to(torch.bfloat16) for t in (x, weight, bias)]
            return linear(*cast, gelu_tanh=gelu_tanh)
    if not _onednn_applies(x, weight, bias):
        out = F.linear(x, weight, bias)
    elif _wants_grad(x, weight, bias):
        out = OneDNNLinear.apply(x, weight, bias)
    else:
        return _gemm(x, weight, bias, gelu_tanh)  # the activation fuses into the GEMM
    return F.gelu(out, approximate="tanh") if gelu_tanh else out


class Linear(nn.Linear):
    """nn.Linear (same parameters, keys, init and LoRA wrapping) that runs through `linear` above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
