"""Small building blocks of the MMDiT: timestep embedding, RMSNorm, modulation, feed-forward, output norm.

Attribute names are the checkpoint's keys (`timestep_embedder.linear_1`, `net.0.proj`, `norm_out.linear`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from qwenimage.model.linear import Linear, linear

TIMESTEP_CHANNELS = 256
TIMESTEP_SCALE = 1000.0  # the only place where t in [0, 1] becomes the x1000 "timestep" of the checkpoint
MAX_PERIOD = 10_000.0


def sinusoidal_embedding(t: torch.Tensor, channels: int = TIMESTEP_CHANNELS) -> torch.Tensor:
    """t [B] in [0, 1] -> [B, channels] fp32 features ordered [cos | sin]."""
    half = channels // 2
    exponent = -math.log(MAX_PERIOD) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    angles = t[:, None].float() * torch.exp(exponent)[None, :] * TIMESTEP_SCALE  # [B, half]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # [B, channels]


class TimestepMLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.linear_1 = Linear(TIMESTEP_CHANNELS, dim)
        self.linear_2 = Linear(dim, dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(features)))


class TimestepEmbedding(nn.Module):
    """t [B] -> temb [B, D]; optionally adds a learned embedding of a 0/1 condition (Qwen-Image-Layered)."""

    def __init__(self, dim: int, use_additional_t_cond: bool = False):
        super().__init__()
        self.timestep_embedder = TimestepMLP(dim)
        self.addition_t_embedding = nn.Embedding(2, dim) if use_additional_t_cond else None

    def forward(self, t: torch.Tensor, dtype: torch.dtype, additional_t_cond: torch.Tensor | None = None):
        temb = self.timestep_embedder(sinusoidal_embedding(t).to(dtype))  # [B, D]
        if self.addition_t_embedding is not None:
            if additional_t_cond is None:
                raise ValueError("this model uses an additional t condition: pass additional_t_cond")
            temb = temb + self.addition_t_embedding(additional_t_cond).to(dtype)
        return temb


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last dim: the mean square in fp32, scaled in the weight's dtype."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inverse_rms = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)  # [..., 1] fp32
        if self.weight.dtype in (torch.float16, torch.bfloat16):  # half x stays half: no fp32 copy of it
            return (x * inverse_rms.to(x.dtype)).to(self.weight.dtype) * self.weight
        return (x * inverse_rms * self.weight).to(x.dtype)


@dataclass
class Modulation:
    """One LayerNorm modulation: LN(x) * (1 + scale) + shift, then the residual branch is gated."""

    shift: torch.Tensor  # [B, 1, D] or [B, S, D]
    scale: torch.Tensor
    gate: torch.Tensor

    def apply(self, normed: torch.Tensor) -> torch.Tensor:
        return normed * (1 + self.scale) + self.shift


def split_modulation(params: torch.Tensor) -> tuple[Modulation, Modulation]:
    """[B, (S,) 6D] -> (attention modulation, MLP modulation), each a (shift, scale, gate) triple."""
    if params.ndim == 2:
        params = params[:, None, :]  # [B, 1, 6D]: broadcast over tokens
    first, second = params.chunk(2, dim=-1)
    return Modulation(*first.chunk(3, dim=-1)), Modulation(*second.chunk(3, dim=-1))


class GELUProjection(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if type(self.proj) is Linear:  # not wrapped by an adapter: the activation can fuse into the GEMM
            return linear(x, self.proj.weight, self.proj.bias, gelu_tanh=True)
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    """Linear(D, 4D) -> tanh-GELU -> Linear(4D, D). `net.1` is the (empty) dropout slot of the checkpoint."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GELUProjection(dim, dim * mult), nn.Identity(), Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class OutputNorm(nn.Module):
    """Final adaptive LayerNorm: the projection gives scale first, then shift (the opposite of the blocks)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.linear = Linear(dim, 2 * dim)
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.linear(F.silu(temb).to(x.dtype)).chunk(2, dim=-1)  # [B, D] each
        return self.norm(x) * (1 + scale[:, None, :]) + shift[:, None, :]
