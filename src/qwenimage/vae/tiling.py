"""Spatial tiling for large images: run the encoder or decoder on overlapping tiles and blend the seams.

Tiles start every `stride` pixels and are `min_size` pixels wide, so neighbours overlap by
min_size - stride. Walking the tiles row by row, each tile's top (left) overlap is blended linearly
with the already-blended tile above (to its left); then every tile keeps its top-left stride x stride
part. This is the reference's scheme, so results match it tile for tile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Coder = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TileSpec:
    """Tile size and stride in pixels; images larger than the tile in H or W are tiled."""

    min_height: int = 256
    min_width: int = 256
    stride_height: int = 192
    stride_width: int = 192

    def __post_init__(self) -> None:
        for name in ("min_height", "min_width", "stride_height", "stride_width"):
            if getattr(self, name) <= 0:
                raise ValueError(f"tile {name} must be positive, got {getattr(self, name)}")
        if self.stride_height > self.min_height or self.stride_width > self.min_width:
            raise ValueError(f"tile stride {self.stride_height}x{self.stride_width} exceeds the tile size "
                             f"{self.min_height}x{self.min_width}; tiles would leave gaps")

    def applies_to(self, height: int, width: int) -> bool:
        """Whether an image of height x width pixels is tiled."""
        return height > self.min_height or width > self.min_width


def tiled_encode(encode: Coder, x: torch.Tensor, spec: TileSpec, factor: int) -> torch.Tensor:
    """Pixels [B, C, T, H, W] -> moments [B, 2Z, T', H/f, W/f], encoding pixel tiles one at a time."""
    height, width = x.shape[-2:]
    tiles = [[encode(x[..., i:i + spec.min_height, j:j + spec.min_width])
              for j in range(0, width, spec.stride_width)]
             for i in range(0, height, spec.stride_height)]
    overlap = (spec.min_height // factor - spec.stride_height // factor,
               spec.min_width // factor - spec.stride_width // factor)
    keep = (spec.stride_height // factor, spec.stride_width // factor)
    return stitch(tiles, overlap, keep, (height // factor, width // factor))


def tiled_decode(decode: Coder, z: torch.Tensor, spec: TileSpec, factor: int) -> torch.Tensor:
    """Latents [B, Z, T, h, w] -> pixels [B, C, T'', h*f, w*f], decoding latent tiles one at a time."""
    height, width = z.shape[-2:]
    tile_h, tile_w = spec.min_height // factor, spec.min_width // factor
    stride_h, stride_w = spec.stride_height // factor, spec.stride_width // factor
    tiles = [[decode(z[..., i:i + tile_h, j:j + tile_w]) for j in range(0, width, stride_w)]
             for i in range(0, height, stride_h)]
    overlap = (spec.min_height - spec.stride_height, spec.min_width - spec.stride_width)
    keep = (spec.stride_height, spec.stride_width)
    return stitch(tiles, overlap, keep, (height * factor, width * factor))


def stitch(tiles: list[list[torch.Tensor]], overlap: tuple[int, int], keep: tuple[int, int],
           size: tuple[int, int]) -> torch.Tensor:
    """Blend a grid of tiles [..., h_i, w_j] into one [..., H, W]; `tiles` is updated in place."""
    rows = []
    for i, row in enumerate(tiles):
        for j in range(len(row)):
            if i > 0:
                row[j] = blend(tiles[i - 1][j], row[j], overlap[0], dim=-2)
            if j > 0:
                row[j] = blend(row[j - 1], row[j], overlap[1], dim=-1)
        rows.append(torch.cat([tile[..., :keep[0], :keep[1]] for tile in row], dim=-1))
    return torch.cat(rows, dim=-2)[..., :size[0], :size[1]]


def blend(before: torch.Tensor, after: torch.Tensor, extent: int, dim: int) -> torch.Tensor:
    """`after` with its first `extent` entries along `dim` faded in linearly from the end of `before`."""
    extent = min(before.shape[dim], after.shape[dim], extent)
    if extent <= 0:
        return after
    shape = [1] * after.ndim
    shape[dim] = extent
    ramp = (torch.arange(extent, dtype=torch.float64) / extent).to(after).view(shape)  # 0, 1/E, ..., (E-1)/E
    tail = before.narrow(dim, before.shape[dim] - extent, extent)
    out = after.clone()
    out.narrow(dim, 0, extent).copy_(tail * (1 - ramp) + after.narrow(dim, 0, extent) * ramp)
    return out
