"""VAEConfig: presets, derived factors, validation messages, and reading a diffusers config dict."""

import pytest

from qwenimage.vae import VAE_PRESETS, VAEConfig, vae_preset
from qwenimage.weights.config_io import config_from_dict, config_to_dict
from qwenimage.weights.errors import ConfigError


def test_presets():
    assert VAE_PRESETS["official"] == VAEConfig()
    assert (VAEConfig().spatial_factor, VAEConfig().temporal_factor) == (8, 4)
    assert (vae_preset("tiny").spatial_factor, vae_preset("tiny").temporal_factor) == (4, 2)
    assert vae_preset("tiny", z_dim=4).z_dim == 4
    with pytest.raises(ValueError, match="unknown VAE preset 'huge'"):
        vae_preset("huge")


@pytest.mark.parametrize("overrides, message", [
    (dict(base_dim=0), "base_dim must be positive, got 0"),
    (dict(temperal_downsample=(True,)), "temperal_downsample has 1 entries, expected len\\(dim_mult\\) - 1 = 3"),
    (dict(dim_mult=(1, 2, 4, 4, 4), temperal_downsample=(True,) * 4), "compresses time by 16"),
    (dict(z_dim=8), "need z_dim=8 values, got 16 and 16"),
    (dict(latents_std=(0.0,) * 16), "latents_std must be positive"),
    (dict(base_dim=3, dim_mult=(1, 1), temperal_downsample=(False,)), "odd channel counts \\[3\\]"),
    (dict(dropout=1.0), "dropout must be in"),
])
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        vae_preset("official", **overrides)


def test_reads_a_diffusers_config_dict():
    raw = config_to_dict(vae_preset("tiny"), class_name="AutoencoderKLQwenImage")
    assert isinstance(raw["dim_mult"], list)
    assert config_from_dict(VAEConfig, raw, class_name="AutoencoderKLQwenImage") == vae_preset("tiny")
    with pytest.raises(ConfigError, match="unknown keys.*scaling_factor"):
        config_from_dict(VAEConfig, {**raw, "scaling_factor": 0.18})
