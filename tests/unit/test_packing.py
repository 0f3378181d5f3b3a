import pytest
import torch

from qwenimage.sampling.packing import pack_latents, token_grid, unpack_latents


def test_round_trip_and_feature_order():
    z = torch.randn(2, 16, 6, 10)
    tokens = pack_latents(z)
    assert tokens.shape == (2, 15, 64)
    assert torch.equal(unpack_latents(tokens, 6, 10), z)
    # token (row 1, col 2), feature c*4 + dy*2 + dx is latent pixel (c, 2*1 + dy, 2*2 + dx)
    assert tokens[0, 1 * 5 + 2, 3 * 4 + 1 * 2 + 0] == z[0, 3, 3, 4]


def test_matches_diffusers_pack_latents():
    pipelines = pytest.importorskip("diffusers.pipelines.qwenimage.pipeline_qwenimage")
    z = torch.randn(1, 16, 8, 12)
    expected = pipelines.QwenImagePipeline._pack_latents(z.clone(), 1, 16, 8, 12)
    assert torch.equal(pack_latents(z), expected)


def test_errors_name_the_bad_shapes():
    with pytest.raises(ValueError, match="must be even to pack 2x2 patches, got 5x6"):
        pack_latents(torch.zeros(1, 16, 5, 6))
    with pytest.raises(ValueError, match=r"15 tokens cannot form a 4x4 token grid"):
        unpack_latents(torch.zeros(1, 15, 64), 8, 8)
    with pytest.raises(ValueError, match="1000x1000 must be a multiple of 16"):
        token_grid(1000, 1000)
    assert token_grid(1328, 1328) == (83, 83)
