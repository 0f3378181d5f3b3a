"""The one place where VAE latents become transformer tokens and back.

A latent [B, C, h, w] (h, w = image size / 8) is cut into 2x2 patches; each patch is one token whose
features are ordered (channel, dy, dx), so feature index = c * 4 + dy * 2 + dx, and tokens run row-major
over the (h/2, w/2) grid. This is the layout of the official checkpoints.
"""

from __future__ import annotations

import torch
from einops import rearrange

PATCH = 2


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] -> [B, (h/2)*(w/2), C*4]."""
    if latents.ndim != 4:
        raise ValueError(f"pack_latents expects [B, C, h, w], got shape {list(latents.shape)}")
    _, _, h, w = latents.shape
    if h % PATCH or w % PATCH:
        raise ValueError(f"latent height and width must be even to pack 2x2 patches, got {h}x{w}")
    return rearrange(latents, "b c (h dy) (w dx) -> b (h w) (c dy dx)", dy=PATCH, dx=PATCH)


def unpack_latents(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, (h/2)*(w/2), C*4] -> [B, C, h, w] for a latent grid of `height` x `width` (h, w in latent pixels)."""
    if tokens.ndim != 3:
        raise ValueError(f"unpack_latents expects [B, S, C*4], got shape {list(tokens.shape)}")
    if height % PATCH or width % PATCH:
        raise ValueError(f"latent height and width must be even, got {height}x{width}")
    grid_h, grid_w = height // PATCH, width // PATCH
    if tokens.shape[1] != grid_h * grid_w:
        raise ValueError(f"{tokens.shape[1]} tokens cannot form a {grid_h}x{grid_w} token grid "
                         f"(latent {height}x{width})")
    return rearrange(tokens, "b (h w) (c dy dx) -> b c (h dy) (w dx)", h=grid_h, w=grid_w, dy=PATCH, dx=PATCH)


def token_grid(image_height: int, image_width: int, vae_scale: int = 8) -> tuple[int, int]:
    """(rows, cols) of the token grid for an image in pixels: each token covers vae_scale*2 pixels."""
    step = vae_scale * PATCH
    if image_height % step or image_width % step:
        raise ValueError(f"image size {image_width}x{image_height} must be a multiple of {step}")
    return image_height // step, image_width // step
