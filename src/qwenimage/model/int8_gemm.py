"""The CPU kernel of `--quantize int8-dynamic` (W8A8): activations quantised per token, one int8 GEMM.

torchao stores and serialises the quantised weights (`weights/quantize.py`); its eager CPU path for this mode
measured slower than our fp32 linears (0.59x at the medium config), because it runs the activation quantisation
and the GEMM as generic tensor-subclass ops. Here the same maths is four plain ops around `torch._int_mm`, which
oneDNN runs with VNNI / AMX int8 instructions: per token, scale = max|x| / 127 and x_q = round(x / scale); then
y = (x_q @ W_q^T) * scale_x * scale_w + b, the int32 accumulator converted once. Same rounding as torchao's
symmetric per-row quantisation, so the outputs agree to int8 precision (tested).

On a CPU without int8 dot-product instructions (no AVX512-VNNI, AVX-VNNI or AMX: AMD Zen 3 and older, Intel
before Cascade Lake) torch's int8 GEMM falls back to scalar code, measured 15x slower than the fp32 GEMM of the
same shape on a Zen 3 EPYC (and torchao's path 7.4x slower than fp32 for a whole forward). There
`dequantized_operands` gives the same W8A8 maths as float operands (the input rounded per token to its int8 grid,
the weight's int8 values times their scales) for the plain fp32 GEMM: the quantised model's numerics to fp32
rounding, at fp32 speed, with the weights still stored in int8.

`linear` (model/linear.py) routes a linear here when its weight is such a torchao weight, the input is a float CPU
tensor, and no gradient is wanted; everything else stays on torchao's own path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qwenimage.devices import cpu_has_int8_dot

_EPS = 1e-12


def int8_dynamic_parts(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(qdata [N, K] int8, scale [N] fp32) of a torchao int8-dynamic weight that this kernel computes exactly as
    torchao means it (symmetric, per output row, per-token activations, no static or pre-scales); else None."""
    if type(weight).__name__ != "Int8Tensor" or not type(weight).__module__.startswith("torchao"):
        return None
    cached = getattr(weight, "_qwenimage_int8_parts", False)
    if cached is not False:
        return cached
    parts = None
    act = getattr(weight, "act_quant_kwargs", None)
    qdata, scale, zero_point = (getattr(weight, name, None) for name in ("qdata", "scale", "zero_point"))
    if (act is not None and qdata is not None and qdata.dim() == 2 and qdata.dtype == torch.int8
            and scale is not None and scale.numel() == qdata.shape[0]
            and getattr(act.mapping_type, "name", "") == "SYMMETRIC" and type(act.granularity).__name__ == "PerRow"
            and not getattr(act, "reduce_range", False) and not getattr(weight, "reduce_range", False)
            and all(getattr(weight, name, None) is None for name in ("act_quant_scale", "act_pre_scale"))
            and list(getattr(weight, "block_size", [])) == [1, qdata.shape[1]]
            and (zero_point is None or not bool(zero_point.any()))):
        parts = (qdata, scale.reshape(-1).float())
    weight._qwenimage_int8_parts = parts  # checked once per weight
    return parts


def int8_kernel_parts(x: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The weight's (qdata, scale) when this module computes `linear(x, weight, bias)`: a torchao int8-dynamic
    weight, a float CPU input, no gradient wanted; else None. With int8 dot products `int8_dynamic_linear` runs it,
    without them the plain fp32 GEMM of `dequantized_operands`."""
    if type(weight).__name__ != "Int8Tensor" or x.device.type != "cpu" or not x.is_floating_point():
        return None  # the name test first: every linear call of a plain weight leaves here
    if torch.is_grad_enabled() and (x.requires_grad or (bias is not None and bias.requires_grad)):
        return None
    return int8_dynamic_parts(weight)


def token_scales(x: torch.Tensor) -> torch.Tensor:
    """Symmetric per-token int8 scales of x [..., K] (fp32 or bf16) -> [..., 1] fp32: max|x| / 127 (an all-zero
    token: tiny). abs().amax() is exact in either dtype and ~20x faster on CPU than the inf-norm's reduction."""
    return x.abs().amax(dim=-1, keepdim=True).float().clamp_min_(_EPS) / 127


def dequantized_operands(x: torch.Tensor, qdata: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """fp32 (x [..., K] on its per-token int8 grid, weight [N, K], bias [N]) whose fp32 GEMM is
    `int8_dynamic_linear`'s result to fp32 rounding: the same quantisation, no int8 arithmetic."""
    x = x.float()
    x_scale = token_scales(x)                                                  # [..., 1]
    x_grid = x.div(x_scale).round_().mul_(x_scale)                            # [..., K], 255 levels per token
    weight = qdata.float().mul_(weight_scale[:, None])                         # [N, K]
    return x_grid, weight, None if bias is None else bias.float()


def int8_dynamic_linear(x: torch.Tensor, qdata: torch.Tensor, weight_scale: torch.Tensor,
                        bias: torch.Tensor | None, gelu_tanh: bool = False) -> torch.Tensor:
    """x [..., K] float, qdata [N, K] int8, weight_scale [N] -> [..., N] in x's dtype, optionally tanh-GELU'd.

    Every pass but the GEMM is elementwise over [M, K] or [M, N], so each is written once: the scale from x in its
    own dtype (bf16 stays bf16), the quantised rows in one fp32 buffer rounded in place, and the epilogue in place
    on the GEMM's fp32 copy; the GELU runs there too, before the one rounding to x's dtype."""
    rows = x.reshape(-1, x.shape[-1])                                           # [M, K]
    x_scale = token_scales(rows)                                                # [M, 1] fp32
    x_q = torch.div(rows.float(), x_scale).round_().to(torch.int8)              # [M, K], |x_q| <= 127
    out = torch._int_mm(x_q, qdata.t()).float()                                 # [M, N] int32 -> fp32
    out.mul_(x_scale).mul_(weight_scale)
    if bias is not None:
        out.add_(bias)
    if gelu_tanh:
        out = F.gelu(out, approximate="tanh")
    return out.to(x.dtype).reshape(*x.shape[:-1], qdata.shape[0])
