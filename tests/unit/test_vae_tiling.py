"""Tiled encode/decode: tile bookkeeping with exact crops, blending, and our tiled vs untiled outputs."""

import pytest
import torch

from qwenimage.vae import TileSpec, WanVAE, vae_preset
from qwenimage.vae.tiling import blend, stitch, tiled_decode


def test_blend_ramps_linearly_from_before_to_after():
    before, after = torch.zeros(1, 6), torch.ones(1, 4)
    out = blend(before, after, extent=4, dim=-1)
    assert torch.allclose(out, torch.tensor([[0.0, 0.25, 0.5, 0.75]]))
    assert torch.equal(after, torch.ones(1, 4))  # inputs are not modified


def test_stitching_exact_crops_gives_back_the_whole():
    """When every tile is an exact crop of one tensor, blending mixes equal values: the result is that tensor."""
    whole = torch.randn(1, 3, 1, 70, 90)
    spec, factor = TileSpec(32, 32, 24, 24), 1
    out = tiled_decode(lambda tile: tile.clone(), whole, spec, factor)
    assert torch.allclose(out, whole, atol=1e-6)


def test_stitch_upsampling_coder_gives_back_the_whole():
    """A nearest-upsampling 'decoder' with factor 4: tile positions in latents and pixels line up."""
    z = torch.randn(1, 2, 1, 17, 23)
    spec = TileSpec(32, 32, 24, 24)
    decode = lambda tile: tile.repeat_interleave(4, dim=-2).repeat_interleave(4, dim=-1)  # noqa: E731
    out = tiled_decode(decode, z, spec, factor=4)
    assert torch.allclose(out, decode(z), atol=1e-6)


def test_stitch_crops_to_size():
    tiles = [[torch.ones(1, 4, 4), torch.ones(1, 4, 2)], [torch.ones(1, 1, 4), torch.ones(1, 1, 2)]]
    assert stitch(tiles, overlap=(1, 1), keep=(3, 3), size=(4, 5)).shape == (1, 4, 5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(min_height=0), "min_height must be positive"),
    (dict(stride_width=300), "exceeds the tile size"),
])
def test_bad_tile_spec_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TileSpec(**kwargs)


@torch.no_grad()
def test_tiled_close_to_untiled():
    """Seams of a random-weight model are not invisible: a loose bound (mean |diff| 0.01 seen, outputs ~0.1-0.3)."""
    torch.manual_seed(0)
    vae = WanVAE(vae_preset("tiny")).eval()
    z = torch.randn(1, 4, 1, 40, 48)
    x = torch.rand(1, 3, 1, 160, 192) * 2 - 1
    whole, whole_mean = vae.decode(z), vae.encode(x).mean
    vae.enable_tiling(96, 96, 64, 64)
    tiled, tiled_mean = vae.decode(z), vae.encode(x).mean
    assert tiled.shape == whole.shape and tiled_mean.shape == whole_mean.shape
    assert (tiled - whole).abs().mean() <= 0.05
    assert (tiled_mean - whole_mean).abs().mean() <= 0.05
    vae.enable_tiling(256, 256)  # images no larger than a tile are not tiled
    assert torch.equal(vae.decode(z), whole)
    vae.disable_tiling()
