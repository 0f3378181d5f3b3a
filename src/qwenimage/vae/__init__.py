"""The Qwen-Image VAE (Wan-2.1 architecture), weight-compatible with diffusers' AutoencoderKLQwenImage."""

from qwenimage.vae.config import VAE_PRESETS, VAEConfig, vae_preset
from qwenimage.vae.convert import convert_wan_original, load_wan_original
from qwenimage.vae.tiling import TileSpec
from qwenimage.vae.wan import LatentDistribution, WanVAE

__all__ = ["VAE_PRESETS", "LatentDistribution", "TileSpec", "VAEConfig", "WanVAE", "convert_wan_original",
           "load_wan_original", "vae_preset"]
