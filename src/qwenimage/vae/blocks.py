"""Building blocks of the Wan-2.1 VAE: causal conv with a frame cache, RMS norm, residual, attention, resample.

Every block accepts a clip [B, C, T, H, W] or a single frame [B, C, H, W]. The single frame is the
first time chunk of a clip (a whole image is one): nothing comes before it, so a causal conv with a
time kernel of 3 sees [0, 0, x] and only the kernel's last time tap meets data. The frame form runs
that tap as a 2D conv and skips the time-resampling convs, which the reference also skips on the
first chunk, so it computes the same values at a third of the conv cost.

Long clips are processed in time chunks; a `FrameCache` carries what each causal layer needs from the
previous chunk. Blocks receive it as an argument and never keep state of their own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

CACHE_FRAMES = 2  # a causal conv with time kernel 3 needs the last 2 input frames of the previous chunk
NORM_EPS = 1e-12  # lower bound of the channel L2 norm (F.normalize's default)


class FrameCache:
    """The frames each causal layer keeps from one time chunk for the next.

    The encoder/decoder driver makes one per clip and calls `next_chunk()` after each chunk; `None` in
    place of a cache means a single frame with nothing after it.
    """

    def __init__(self) -> None:
        self.chunk_index = 0
        self._frames: dict[nn.Module, torch.Tensor] = {}

    @property
    def first_chunk(self) -> bool:
        return self.chunk_index == 0

    def get(self, layer: nn.Module) -> torch.Tensor | None:
        return self._frames.get(layer)

    def put(self, layer: nn.Module, frames: torch.Tensor) -> None:
        self._frames[layer] = frames

    def next_chunk(self) -> None:
        self.chunk_index += 1


class CausalConv3d(nn.Conv3d):
    """Conv3d padded so that output frame t sees input frames <= t only.

    `padding=(p_t, p, p)`: H and W get p zeros on both sides; time gets 2*p_t frames in front, taken
    from the cache (the previous chunk's last input frames) where there is one, zeros otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int, int],
                 stride: int | tuple[int, int, int] = 1, padding: int | tuple[int, int, int] = 0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)
        pad_t, pad_h, pad_w = (padding,) * 3 if isinstance(padding, int) else padding
        self.past_frames = 2 * pad_t
        self.space_padding = (pad_h, pad_w)

    def forward(self, x: torch.Tensor, cache: FrameCache | None = None) -> torch.Tensor:
        if x.ndim == 4:
            return self.forward_first_frame(x, cache)
        past = cache.get(self) if cache is not None and self.past_frames else None
        if past is not None:
            x = torch.cat([past, x], dim=2)                                   # [B, C, T_past + T, H, W]
        if cache is not None and self.past_frames:
            cache.put(self, x[:, :, -CACHE_FRAMES:].clone())
        missing = self.past_frames - (0 if past is None else past.shape[2])
        if missing:
            x = F.pad(x, (0, 0, 0, 0, missing, 0))                           # [B, C, 2 p_t + T, H, W]
        return F.conv3d(x, self.weight, self.bias, self.stride, (0, *self.space_padding))

    def forward_first_frame(self, x: torch.Tensor, cache: FrameCache | None = None) -> torch.Tensor:
        """[B, C, H, W], a frame with only zeros before it -> [B, C_out, H', W'] via the last time tap."""
        if cache is not None and self.past_frames:
            cache.put(self, x.unsqueeze(2))                                   # [B, C, 1, H, W]
        return F.conv2d(x, self.weight[:, :, -1], self.bias, self.stride[1:], self.space_padding)


class RMSNorm(nn.Module):
    """x / ||x||_channels * sqrt(C) * gamma, in fp32 for inputs narrower than fp32.

    `gamma` is [C, 1, 1, 1] in residual blocks and heads and [C, 1, 1] in attention (checkpoint shapes).
    """

    def __init__(self, dim: int, gamma_dims: int = 3) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim, *(1,) * gamma_dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = x.float() if x.element_size() < 4 else x
        norm = channel_norm(wide).clamp_min(NORM_EPS)                            # [B, 1, ...]
        gain = self.gamma.view(-1, *(1,) * (x.ndim - 2)) * self.scale            # [C, 1, ...] for [B, C, ...]
        return (wide / norm).to(x.dtype).mul_(gain)  # a fresh tensor, so callers may apply SiLU in place


def channel_norm(x: torch.Tensor) -> torch.Tensor:
    """L2 norm over dim 1: [B, C, ...] -> [B, 1, ...], by the faster kernel for the memory layout."""
    if x.stride(1) == 1:  # channels last: each position's channels are contiguous
        return torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return x.square().sum(dim=1, keepdim=True).sqrt()


class ResidualBlock(nn.Module):
    """x + conv2(dropout(silu(norm2(conv1(silu(norm1(x))))))), with a 1x1x1 conv shortcut when C changes."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = RMSNorm(in_dim)
        self.conv1 = CausalConv3d(in_dim, out_dim, 3, padding=1)
        self.norm2 = RMSNorm(out_dim)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = CausalConv3d(out_dim, out_dim, 3, padding=1)
        self.conv_shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: FrameCache | None = None) -> torch.Tensor:
        shortcut = self.conv_shortcut(x)
        x = self.conv1(F.silu(self.norm1(x), inplace=True), cache)
        x = self.conv2(self.dropout(F.silu(self.norm2(x), inplace=True)), cache)
        return x.add_(shortcut)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H*W positions of each frame, plus the input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, gamma_dims=2)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, cache: FrameCache | None = None) -> torch.Tensor:
        if x.ndim == 5:
            frames = rearrange(x, "b c t h w -> (b t) c h w")
            return rearrange(self(frames), "(b t) c h w -> b c t h w", b=x.shape[0])
        height = x.shape[2]
        qkv = self.to_qkv(self.norm(x))                                       # [B, 3C, H, W]
        qkv = rearrange(qkv, "b c h w -> b 1 (h w) c")                        # [B, 1, HW, 3C]
        q, k, v = qkv.chunk(3, dim=-1)                                        # 3 x [B, 1, HW, C]
        out = F.scaled_dot_product_attention(q, k, v)                         # [B, 1, HW, C]
        out = rearrange(out, "b 1 (h w) c -> b c h w", h=height)
        return self.proj(out).add_(x)


class MidBlock(nn.Module):
    """Residual block, attention, residual block, at the lowest resolution."""

    def __init__(self, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResidualBlock(dim, dim, dropout), ResidualBlock(dim, dim, dropout)])
        self.attentions = nn.ModuleList([AttentionBlock(dim)])

    def forward(self, x: torch.Tensor, cache: FrameCache | None = None) -> torch.Tensor:
        x = self.resnets[0](x, cache)
        x = self.attentions[0](x)
        return self.resnets[1](x, cache)


class Upsample2x(nn.Module):
    """Nearest 2x upsampling of H and W, computed in fp32: [N, C, H, W] -> [N, C, 2H, 2W]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), scale_factor=2.0, mode="nearest-exact").to(x.dtype)


RESAMPLE_MODES = ("upsample2d", "upsample3d", "downsample2d", "downsample3d")


class Resample(nn.Module):
    """Halve (down) or double (up) H and W per frame; the *3d modes also resample time.

    down: pad right/bottom by 1, 3x3 conv with stride 2; downsample3d then merges frame pairs with a
    stride-2 time conv. up: nearest 2x, 3x3 conv to C/2 channels; upsample3d first doubles the frames
    with a time conv to 2C channels. Both time convs are skipped on the first chunk, so one frame
    stays one frame.
    """

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        if mode not in RESAMPLE_MODES:
            raise ValueError(f"unknown resample mode {mode!r}; choose one of {RESAMPLE_MODES}")
        self.mode = mode
        if mode.startswith("up"):
            self.resample = nn.Sequential(Upsample2x(), nn.Conv2d(dim, dim // 2, 3, padding=1))
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def forward(self, x: torch.Tensor, cache: FrameCache | None = None) -> torch.Tensor:
        if x.ndim == 4:
            x = self.resample(x)                                              # [B, C', H', W']
            if self.mode == "downsample3d" and cache is not None:
                cache.put(self, x.unsqueeze(2))
            return x
        if self.mode == "upsample3d" and not cache.first_chunk:
            x = self._double_frames(x, cache)                                 # [B, C, 2T, H, W]
        frames = rearrange(x, "b c t h w -> (b t) c h w")
        x = rearrange(self.resample(frames), "(b t) c h w -> b c t h w", b=x.shape[0])
        if self.mode == "downsample3d":
            x = self._halve_frames(x, cache)                                  # [B, C, T/2, H', W']
        return x

    def _double_frames(self, x: torch.Tensor, cache: FrameCache) -> torch.Tensor:
        x = self.time_conv(x, cache)                                          # [B, 2C, T, H, W]
        return rearrange(x, "b (two c) t h w -> b c (t two) h w", two=2)     # channel halves interleave in time

    def _halve_frames(self, x: torch.Tensor, cache: FrameCache) -> torch.Tensor:
        past = cache.get(self)                                                # [B, C, 1, H, W] or None
        cache.put(self, x[:, :, -1:].clone())
        if past is None:  # the first chunk's frame passes through
            return x
        return self.time_conv(torch.cat([past, x], dim=2))                   # [B, C, T/2, H, W]
