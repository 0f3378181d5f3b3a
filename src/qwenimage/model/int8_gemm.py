"""The CPU kernel of `--quantize int8-dynamic` (W8A8): activations quantised per token, one int8 GEMM.

torchao stores and serialises the quantised weights (`weights/quantize.py`); its eager CPU path for this mode
measured slower than our fp32 linears (0.59x at the medium config), because it runs the activation quantisation
and the GEMM as generic tensor-subclass ops. Here the same maths is four plain ops around `torch._int_mm`, which
oneDNN runs with VNNI / AMX int8 instructions: per token, scale = max|x| / 127 and x_q = round(x / scale); then
y = (x_q @ W_q^T) * scale_x * scale_w + b, the int32 accumulator converted once. Same rounding as torchao's
symmetric per-row quantisation, so the outputs agree to int8 precision (tested).

`linear` (model/linear.py) routes a linear here when its weight is such a torchao weight, the input is on a CPU
with int8 dot-product instructions, and no gradient is wanted; everything else stays on torchao's own path.
"""

from __future__ import annotations

import torch

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
    """The weight's (qdata, scale) when this kernel computes `linear(x, weight, bias)`: a torchao int8-dynamic
    weight, a float input on a CPU with int8 dot products, no gradient wanted; else None."""
    if type(weight).__name__ != "Int8Tensor" or x.device.type != "cpu" or not x.is_floating_point():
        return None  # the name test first: every linear call of a plain weight leaves here
    if torch.is_grad_enabled() and (x.requires_grad or (bias is not None and bias.requires_grad)):
        return None
    return int8_dynamic_parts(weight) if cpu_has_int8_dot() else None


def int8_dynamic_linear(x: torch.Tensor, qdata: torch.Tensor, weight_scale: torch.Tensor,
                        bias: torch.Tensor | None) -> torch.Tensor:
    """x [..., K] float, qdata [N, K] int8, weight_scale [N] -> [..., N] in x's dtype."""
    rows = x.reshape(-1, x.shape[-1]).float()                                   # [M, K]
    x_scale = rows.abs().amax(dim=-1, keepdim=True).clamp_min(_EPS) / 127       # [M, 1]
    x_q = torch.round(rows / x_scale).to(torch.int8)                            # [M, K], |x_q| <= 127
    out = torch._int_mm(x_q, qdata.t()).float()                                 # [M, N] int32 -> fp32
    out.mul_(x_scale).mul_(weight_scale)
    if bias is not None:
        out.add_(bias.float())
    return out.to(x.dtype).reshape(*x.shape[:-1], qdata.shape[0])
