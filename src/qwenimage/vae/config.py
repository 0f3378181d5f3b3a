"""VAE configuration: a frozen dataclass whose fields are the diffusers `config.json` keys.

The keys keep diffusers' spelling, including `temperal_downsample`, so a diffusers `vae/` folder
loads without renaming.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

OFFICIAL_LATENTS_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                         0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
OFFICIAL_LATENTS_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                        3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)

ENCODER_CHUNK = 4  # frames per encoder time chunk after the first frame (the reference's choice)


@dataclass(frozen=True)
class VAEConfig:
    """Defaults are the official Qwen-Image VAE (Wan-2.1 architecture, 127M parameters)."""

    base_dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_scales: tuple[float, ...] = ()  # encoder resolutions (1, 1/2, ...) that get attention after each res block
    temperal_downsample: tuple[bool, ...] = (False, True, True)  # per encoder stage; the decoder mirrors it
    dropout: float = 0.0
    input_channels: int = 3
    latents_mean: tuple[float, ...] = OFFICIAL_LATENTS_MEAN
    latents_std: tuple[float, ...] = OFFICIAL_LATENTS_STD

    def __post_init__(self) -> None:
        for name in ("base_dim", "z_dim", "num_res_blocks", "input_channels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.dim_mult or any(m <= 0 for m in self.dim_mult):
            raise ValueError(f"dim_mult must be a non-empty list of positive integers, got {self.dim_mult}")
        if len(self.temperal_downsample) != len(self.dim_mult) - 1:
            raise ValueError(f"temperal_downsample has {len(self.temperal_downsample)} entries, expected "
                             f"len(dim_mult) - 1 = {len(self.dim_mult) - 1} (one per downsampling stage)")
        if ENCODER_CHUNK % self.temporal_factor:
            raise ValueError(f"temperal_downsample {self.temperal_downsample} compresses time by "
                             f"{self.temporal_factor}, which must divide the encoder chunk of {ENCODER_CHUNK} frames")
        odd = [d for d in self.decoder_upsample_dims if d % 2]
        if odd:
            raise ValueError(f"decoder upsamplers halve channels, but base_dim {self.base_dim} x dim_mult "
                             f"{self.dim_mult} gives odd channel counts {odd}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if len(self.latents_mean) != self.z_dim or len(self.latents_std) != self.z_dim:
            raise ValueError(f"latents_mean and latents_std need z_dim={self.z_dim} values, got "
                             f"{len(self.latents_mean)} and {len(self.latents_std)}")
        if any(s <= 0 for s in self.latents_std):
            raise ValueError(f"latents_std must be positive, got {self.latents_std}")

    @property
    def spatial_factor(self) -> int:
        """Pixels per latent pixel along H and W (8 for the official VAE)."""
        return 2 ** len(self.temperal_downsample)

    @property
    def temporal_factor(self) -> int:
        """Frames per latent frame after the first one (4 for the official VAE)."""
        return 2 ** sum(bool(t) for t in self.temperal_downsample)

    @property
    def decoder_upsample_dims(self) -> list[int]:
        """Channels entering each decoder upsampler (every stage but the last has one)."""
        return [self.base_dim * m for m in self.dim_mult[::-1][:-1]]


VAE_PRESETS: dict[str, VAEConfig] = {
    "official": VAEConfig(),
    # the diffusers test VAE: spatial factor 4, time factor 2, 4 latent channels
    "tiny": VAEConfig(base_dim=24, z_dim=4, dim_mult=(1, 2, 4), num_res_blocks=1, temperal_downsample=(False, True),
                      latents_mean=(0.0,) * 4, latents_std=(1.0,) * 4),
    # the official layout (3 stages, 16 latent channels, factors 8 and 4) at a CPU-test width
    "tiny-official-layout": VAEConfig(base_dim=8, num_res_blocks=1),
}


def vae_preset(name: str, **overrides) -> VAEConfig:
    if name not in VAE_PRESETS:
        raise ValueError(f"unknown VAE preset {name!r}; choose one of {sorted(VAE_PRESETS)}")
    return replace(VAE_PRESETS[name], **overrides)
