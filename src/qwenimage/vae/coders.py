"""The Wan-2.1 encoder and decoder stacks; attribute names are the diffusers checkpoint keys.

Both take one time chunk at a time: a clip chunk [B, C, T, H, W] with the clip's `FrameCache`, or a
first frame [B, C, H, W] (see `blocks.py`). Channels per stage for the official config:
encoder 96 -> 96, 192, 384, 384 (down by 8 in H, W); decoder 384 -> 384, 384, 192, 96 (up by 8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qwenimage.vae.blocks import AttentionBlock, CausalConv3d, FrameCache, MidBlock, Resample, ResidualBlock, RMSNorm
from qwenimage.vae.config import VAEConfig


class Encoder(nn.Module):
    """Pixels [B, C_in, (T), H, W] -> moments [B, 2Z, (T'), H/8, W/8] (mean and log-variance, before quant_conv)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        dims = [config.base_dim * m for m in (1, *config.dim_mult)]
        self.conv_in = CausalConv3d(config.input_channels, dims[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()  # flat: res blocks (+ attention), then a resample, per stage
        scale = 1.0
        last_stage = len(config.dim_mult) - 1
        for stage, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(config.num_res_blocks):
                self.down_blocks.append(ResidualBlock(in_dim, out_dim, config.dropout))
                if scale in config.attn_scales:
                    self.down_blocks.append(AttentionBlock(out_dim))
                in_dim = out_dim
            if stage != last_stage:
                mode = "downsample3d" if config.temperal_downsample[stage] else "downsample2d"
                self.down_blocks.append(Resample(out_dim, mode))
                scale /= 2.0
        self.mid_block = MidBlock(dims[-1], config.dropout)
        self.norm_out = RMSNorm(dims[-1])
        self.conv_out = CausalConv3d(dims[-1], config.z_dim * 2, 3, padding=1)

    def forward(self, x: torch.Tensor, cache: FrameCache | None = None) -> torch.Tensor:
        x = self.conv_in(x, cache)                                            # [B, 96, (T), H, W]
        for block in self.down_blocks:
            x = block(x, cache)                                               # ... [B, 384, (T'), H/8, W/8]
        x = self.mid_block(x, cache)
        return self.conv_out(F.silu(self.norm_out(x), inplace=True), cache)                 # [B, 2Z, (T'), H/8, W/8]


class UpBlock(nn.Module):
    """`num_resnets` residual blocks, then an optional upsampler (which halves the channels)."""

    def __init__(self, in_dim: int, out_dim: int, num_resnets: int, dropout: float, upsample_mode: str | None) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResidualBlock(in_dim if i == 0 else out_dim, out_dim, dropout) for i in range(num_resnets))
        self.upsamplers = nn.ModuleList([Resample(out_dim, upsample_mode)]) if upsample_mode else None

    def forward(self, x: torch.Tensor, cache: FrameCache | None = None) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x, cache)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, cache)
        return x


class Decoder(nn.Module):
    """Latents [B, Z, (T), h, w] (after post_quant_conv) -> pixels [B, C_in, (T''), 8h, 8w], not clamped."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        dims = [config.base_dim * m for m in (config.dim_mult[-1], *config.dim_mult[::-1])]
        temporal_up = config.temperal_downsample[::-1]
        self.conv_in = CausalConv3d(config.z_dim, dims[0], 3, padding=1)
        self.mid_block = MidBlock(dims[0], config.dropout)
        self.up_blocks = nn.ModuleList()
        last_stage = len(config.dim_mult) - 1
        for stage, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            in_dim = in_dim if stage == 0 else in_dim // 2  # the previous upsampler halved the channels
            mode = None if stage == last_stage else ("upsample3d" if temporal_up[stage] else "upsample2d")
            self.up_blocks.append(UpBlock(in_dim, out_dim, config.num_res_blocks + 1, config.dropout, mode))
        self.norm_out = RMSNorm(dims[-1])
        self.conv_out = CausalConv3d(dims[-1], config.input_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, cache: FrameCache | None = None) -> torch.Tensor:
        x = self.conv_in(x, cache)                                            # [B, 384, (T), h, w]
        x = self.mid_block(x, cache)
        for block in self.up_blocks:
            x = block(x, cache)                                               # ... [B, 96, (T''), 8h, 8w]
        return self.conv_out(F.silu(self.norm_out(x), inplace=True), cache)                 # [B, C_in, (T''), 8h, 8w]
