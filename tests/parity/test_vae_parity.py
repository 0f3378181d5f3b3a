"""Our WanVAE against diffusers' AutoencoderKLQwenImage (the oracle): same weights through a saved folder.

Loading the diffusers-saved folder with `WanVAE.from_pretrained` (strict keys and shapes) doubles as the
weight-compatibility test. Tolerances: fp32 on CPU, both sides differ only in summation order (our image
path runs 2D channels-last convs), so 1e-4 is a loose bound on differences we observe around 1e-5 or below.
"""

import dataclasses

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import AutoencoderKLQwenImage  # noqa: E402
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers  # noqa: E402

from qwenimage.vae import VAEConfig, WanVAE, vae_preset  # noqa: E402
from qwenimage.vae.convert import original_key_map  # noqa: E402

TOL = 1e-4
CONFIGS = {"tiny": vae_preset("tiny"), "official-layout": vae_preset("tiny-official-layout")}


def diffusers_kwargs(config: VAEConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def pair(request, tmp_path_factory):
    torch.manual_seed(0)
    reference = AutoencoderKLQwenImage(**diffusers_kwargs(CONFIGS[request.param])).eval()
    with torch.no_grad():  # norm scales start at ones; make them non-trivial
        for name, p in reference.named_parameters():
            if name.endswith("gamma"):
                p.add_(torch.randn_like(p) * 0.2)
    folder = tmp_path_factory.mktemp("vae")
    reference.save_pretrained(folder)
    return reference, WanVAE.from_pretrained(folder)


def pixels(config: VAEConfig, frames: int, height: int = 64, width: int = 96, batch: int = 2) -> torch.Tensor:
    shape = (batch, config.input_channels, frames, height, width)
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_loads_diffusers_folder_strictly(pair):
    reference, ours = pair
    theirs, mine = reference.state_dict(), ours.state_dict()
    assert set(mine) == set(theirs)
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)


@pytest.mark.parametrize("frames", [1, 5], ids=["image", "video"])
def test_encode(pair, frames):
    reference, ours = pair
    x = pixels(ours.config, frames)
    with torch.no_grad():
        expected = reference.encode(x).latent_dist
        actual = ours.encode(x)
    assert actual.mean.shape == expected.mean.shape
    assert actual.mean.std() > 0.05
    assert (actual.mean - expected.mean).abs().max() <= TOL
    assert (actual.logvar - expected.logvar).abs().max() <= TOL


@pytest.mark.parametrize("frames", [1, 3], ids=["image", "video"])
def test_decode(pair, frames):
    reference, ours = pair
    f = ours.config.spatial_factor
    z = torch.randn(2, ours.config.z_dim, frames, 64 // f, 96 // f, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference.decode(z).sample
        actual = ours.decode(z)
    assert actual.shape == expected.shape == (2, 3, 1 + (frames - 1) * ours.config.temporal_factor, 64, 96)
    assert actual.std() > 0.05
    assert (actual - expected).abs().max() <= TOL


def test_sample_uses_the_same_noise_as_diffusers(pair):
    reference, ours = pair
    x = pixels(ours.config, 1, batch=1)
    with torch.no_grad():
        expected = reference.encode(x).latent_dist.sample(generator=torch.Generator().manual_seed(3))
        actual = ours.encode(x).sample(generator=torch.Generator().manual_seed(3))
    assert (actual - expected).abs().max() <= TOL


def test_tiled_decode_and_encode_match_diffusers_tiling(pair):
    """256x320 pixels in 128 px tiles every 96 px: 3 x 4 tiles, blended seams, ragged last row and column.

    diffusers does not clamp the output of its tiled decode; we clamp it to compare.
    """
    reference, ours = pair
    config, f = ours.config, ours.config.spatial_factor
    z = torch.randn(1, config.z_dim, 1, 256 // f, 320 // f, generator=torch.Generator().manual_seed(4))
    x = pixels(config, 1, 256, 320, batch=1)
    reference.enable_tiling(128, 128, 96, 96)
    ours.enable_tiling(128, 128, 96, 96)
    try:
        with torch.no_grad():
            expected, actual = reference.decode(z).sample.clamp(-1, 1), ours.decode(z)
            expected_mean, actual_mean = reference.encode(x).latent_dist.mean, ours.encode(x).mean
    finally:
        reference.disable_tiling()
        ours.disable_tiling()
    assert actual.shape == (1, 3, 1, 256, 320)
    assert (actual - expected).abs().max() <= TOL
    assert (actual_mean - expected_mean).abs().max() <= TOL


def test_official_config_matches_diffusers_on_meta():
    with torch.device("meta"):
        reference = AutoencoderKLQwenImage()
        ours = WanVAE(VAEConfig())
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    print(f"official VAE: {ours.num_parameters():,} parameters")
    assert mine == theirs
    assert ours.num_parameters() == sum(p.numel() for p in reference.parameters())
    assert diffusers_kwargs(VAEConfig()) == {k: reference.config[k] for k in diffusers_kwargs(VAEConfig())}


@pytest.mark.parametrize("attn_scales", [(1.0,), (0.5, 0.25)])
def test_encoder_attention_layout_matches_diffusers(attn_scales):
    """attn_scales inserts attention blocks into the flat encoder.down_blocks list (the decoder ignores it).

    Only the layout is compared: diffusers' chunked encoder cannot run such a config (it passes the frame
    cache to its attention block, which takes no cache), so there is no output to compare against.
    """
    config = vae_preset("tiny-official-layout", attn_scales=attn_scales)
    with torch.device("meta"):
        reference = AutoencoderKLQwenImage(**diffusers_kwargs(config))
        ours = WanVAE(config)
    mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert mine == {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert any(".to_qkv." in k and "down_blocks" in k for k in mine)


def test_original_names_agree_with_diffusers_converter():
    """diffusers' converter maps each original key (official config) to the key our adapter pairs it with."""
    with torch.device("meta"):
        ours = WanVAE(VAEConfig())
    ours_by_original = {theirs: mine for mine, theirs in original_key_map(ours).items()}
    originals = sorted(ours_by_original)
    tagged = {key: torch.tensor(i) for i, key in enumerate(originals)}  # the value tells where a key came from
    converted = convert_wan_vae_to_diffusers(tagged)
    assert set(converted) == set(ours.state_dict())
    for new_key, tag in converted.items():
        assert ours_by_original[originals[int(tag)]] == new_key
