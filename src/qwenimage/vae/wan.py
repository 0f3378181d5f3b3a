"""`WanVAE`: the Qwen-Image VAE (Wan-2.1 architecture), weight-compatible with diffusers' AutoencoderKLQwenImage.

Pixels are in [-1, 1]. Clips are [B, C, T, H, W] with T = 1 + 4k frames (1 + k * temporal_factor in
general) and give latents [B, Z, 1 + k, H/8, W/8]; an image may be given as [B, C, H, W] and then its
latents are [B, Z, H/8, W/8] (and decode maps 4D latents back to 4D images). Raw latents are what
`encode` gives and `decode` takes; the transformer works on `normalize_latents(z)`.

Time is processed in chunks, as in the reference: the encoder takes the first frame alone and then 4
frames at a time, the decoder one latent frame at a time, with a `FrameCache` between chunks. The first
chunk is a single frame with nothing before it, so it runs as 2D convolutions (see `blocks.py`), in
the channels-last layout that CPU and GPU conv kernels prefer: an image never touches a 3D conv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from qwenimage.vae.blocks import CausalConv3d, FrameCache
from qwenimage.vae.coders import Decoder, Encoder
from qwenimage.vae.config import ENCODER_CHUNK, VAEConfig
from qwenimage.vae.tiling import TileSpec, tiled_decode, tiled_encode
from qwenimage.weights import PretrainedModel

LOGVAR_RANGE = (-30.0, 20.0)


@dataclass(frozen=True)
class LatentDistribution:
    """The encoder's diagonal Gaussian posterior; `mean` and `logvar` are [B, Z, (T), h, w]."""

    mean: torch.Tensor
    logvar: torch.Tensor  # clamped to LOGVAR_RANGE

    @classmethod
    def from_moments(cls, moments: torch.Tensor) -> LatentDistribution:
        mean, logvar = moments.chunk(2, dim=1)                                # 2 x [B, Z, ...]
        return cls(mean, logvar.clamp(*LOGVAR_RANGE))

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean


class WanVAE(PretrainedModel):
    """Encoder and decoder in diffusers' checkpoint layout: `encoder.*`, `quant_conv`, `post_quant_conv`, `decoder.*`.

    Switches (plain attributes): `tiling` (a TileSpec or None, see `enable_tiling`), `use_slicing` (run
    the batch one sample at a time), `single_frame_fast_path` (run first chunks as 2D convs; turning it
    off gives the reference's 3D computation, for testing).
    """

    config_class = VAEConfig
    diffusers_class_name = "AutoencoderKLQwenImage"

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quant_conv = CausalConv3d(config.z_dim * 2, config.z_dim * 2, 1)
        self.post_quant_conv = CausalConv3d(config.z_dim, config.z_dim, 1)
        self.decoder = Decoder(config)
        self.tiling: TileSpec | None = None
        self.use_slicing = False
        self.single_frame_fast_path = True

    @property
    def spatial_factor(self) -> int:
        return self.config.spatial_factor

    def encode(self, x: torch.Tensor) -> LatentDistribution:
        """Pixels [B, C, T, H, W] or [B, C, H, W] in [-1, 1] -> posterior over latents [B, Z, (T'), H/8, W/8]."""
        self._check_pixels(x)
        clip = x.unsqueeze(2) if x.ndim == 4 else x                           # [B, C, T, H, W]
        moments = torch.cat([self._encode_clip(part) for part in self._batch_parts(clip)])
        return LatentDistribution.from_moments(moments.squeeze(2) if x.ndim == 4 else moments)

    def decode(self, z: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Raw latents [B, Z, T, h, w] or [B, Z, h, w] -> pixels [B, C, (T''), 8h, 8w], clamped to [-1, 1]
        (`clamp=False` for training, where the clamp would stop the gradient of out-of-range pixels)."""
        self._check_latents(z)
        clip = z.unsqueeze(2) if z.ndim == 4 else z                           # [B, Z, T, h, w]
        pixels = torch.cat([self._decode_clip(part) for part in self._batch_parts(clip)])
        if clamp:
            pixels = pixels.clamp(-1.0, 1.0)
        return pixels.squeeze(2) if z.ndim == 4 else pixels

    def forward(self, x: torch.Tensor, sample_posterior: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Reconstruct pixels: encode, take the posterior mode (or a sample), decode."""
        posterior = self.encode(x)
        return self.decode(posterior.sample(generator) if sample_posterior else posterior.mode())

    def normalize_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latents -> the transformer's latents: (z - mean) / std per channel."""
        mean, std = self._latent_stats(z)
        return (z - mean) / std

    def denormalize_latents(self, z: torch.Tensor) -> torch.Tensor:
        """The transformer's latents -> raw latents for `decode`: z * std + mean per channel."""
        mean, std = self._latent_stats(z)
        return z * std + mean

    def enable_tiling(self, tile_sample_min_height: int | None = None, tile_sample_min_width: int | None = None,
                      tile_sample_stride_height: int | None = None,
                      tile_sample_stride_width: int | None = None) -> None:
        """Encode and decode images larger than the tile in overlapping tiles (sizes in pixels; default 256/192)."""
        base = self.tiling or TileSpec()
        self.tiling = TileSpec(tile_sample_min_height or base.min_height, tile_sample_min_width or base.min_width,
                               tile_sample_stride_height or base.stride_height,
                               tile_sample_stride_width or base.stride_width)

    def disable_tiling(self) -> None:
        self.tiling = None

    def enable_slicing(self) -> None:
        self.use_slicing = True

    def disable_slicing(self) -> None:
        self.use_slicing = False

    def _encode_clip(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels [B, C, T, H, W] -> moments [B, 2Z, T', H/8, W/8], tiled when the image is large."""
        if self.tiling is not None and self.tiling.applies_to(*x.shape[-2:]):
            return tiled_encode(self._encode_untiled, x, self.tiling, self.spatial_factor)
        return self._encode_untiled(x)

    def _decode_clip(self, z: torch.Tensor) -> torch.Tensor:
        """Latents [B, Z, T, h, w] -> pixels [B, C, T'', 8h, 8w] (not clamped), tiled when the image is large."""
        f = self.spatial_factor
        if self.tiling is not None and self.tiling.applies_to(z.shape[-2] * f, z.shape[-1] * f):
            return tiled_decode(self._decode_untiled, z, self.tiling, f)
        return self._decode_untiled(z)

    def _encode_untiled(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[2]
        starts = [0, *range(1, frames, ENCODER_CHUNK)]                        # the first frame, then 4 at a time
        chunks = [slice(a, b) for a, b in zip(starts, [*starts[1:], frames])]
        return self._run_chunks(lambda part, cache: self.quant_conv(self.encoder(part, cache)), x, chunks)

    def _decode_untiled(self, z: torch.Tensor) -> torch.Tensor:
        chunks = [slice(i, i + 1) for i in range(z.shape[2])]                 # one latent frame at a time
        return self._run_chunks(lambda part, cache: self.decoder(self.post_quant_conv(part), cache), z, chunks)

    def _run_chunks(self, coder: Callable[[torch.Tensor, FrameCache | None], torch.Tensor], x: torch.Tensor,
                    chunks: list[slice]) -> torch.Tensor:
        """Apply `coder` to time chunks of x [B, C, T, H, W] in order, carrying one FrameCache, and join them."""
        cache = FrameCache()
        outputs = []
        for chunk in chunks:
            part = x[:, :, chunk]                                             # [B, C, t, H, W]
            if cache.first_chunk and self.single_frame_fast_path:
                frame = part[:, :, 0].contiguous(memory_format=torch.channels_last)  # [B, C, H, W]
                later = cache if len(chunks) > 1 else None
                outputs.append(coder(frame, later).contiguous().unsqueeze(2))  # the first frame, as 2D
            else:
                outputs.append(coder(part, cache))
            cache.next_chunk()
        return torch.cat(outputs, dim=2)

    def _batch_parts(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(x.split(1)) if self.use_slicing else [x]

    def _latent_stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1) + (1,) * (z.ndim - 2)                                 # [1, Z, 1, ...]
        mean = torch.tensor(self.config.latents_mean, dtype=z.dtype, device=z.device).view(shape)
        std = torch.tensor(self.config.latents_std, dtype=z.dtype, device=z.device).view(shape)
        return mean, std

    def _check_pixels(self, x: torch.Tensor) -> None:
        config = self.config
        if x.ndim not in (4, 5):
            raise ValueError(f"expected images [B, C, H, W] or clips [B, C, T, H, W], got shape {list(x.shape)}")
        if x.shape[1] != config.input_channels:
            raise ValueError(f"got {x.shape[1]} channels (shape {list(x.shape)}), "
                             f"the VAE expects input_channels={config.input_channels}")
        height, width, f = x.shape[-2], x.shape[-1], config.spatial_factor
        if height % f or width % f:
            raise ValueError(f"image height {height} and width {width} must be multiples of {f}")
        frames = x.shape[2] if x.ndim == 5 else 1
        if (frames - 1) % config.temporal_factor:
            raise ValueError(f"a clip of {frames} frames cannot be encoded: the frame count must be "
                             f"1 + a multiple of {config.temporal_factor}")

    def _check_latents(self, z: torch.Tensor) -> None:
        if z.ndim not in (4, 5):
            raise ValueError(f"expected latents [B, Z, h, w] or [B, Z, T, h, w], got shape {list(z.shape)}")
        if z.shape[1] != self.config.z_dim:
            raise ValueError(f"got latents with {z.shape[1]} channels (shape {list(z.shape)}), "
                             f"the VAE expects z_dim={self.config.z_dim}")
