"""WanVAE on its own: shapes, the single-frame path, time chunking, latents, errors, slicing, save/load."""

import pytest
import torch

from qwenimage.vae import LatentDistribution, WanVAE, vae_preset

PRESETS = ["tiny", "tiny-official-layout"]


def random_vae(preset: str = "tiny", seed: int = 0) -> WanVAE:
    torch.manual_seed(seed)
    model = WanVAE(vae_preset(preset)).eval()
    with torch.no_grad():  # norm scales start at ones; make them non-trivial
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.add_(torch.randn_like(p) * 0.2)
    return model


@pytest.fixture(scope="module", params=PRESETS)
def vae(request):
    return random_vae(request.param)


def pixels(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def latents(vae: WanVAE, frames: int, height: int = 64, width: int = 96, batch: int = 2) -> torch.Tensor:
    """Latents for a (height x width)-pixel clip."""
    f = vae.config.spatial_factor
    shape = (batch, vae.config.z_dim, frames, height // f, width // f)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(2))


def on_3d_path(vae: WanVAE, fn):
    """Run fn with the single-frame fast path off: the reference's 3D convs on a zero-padded frame."""
    vae.single_frame_fast_path = False
    try:
        return fn()
    finally:
        vae.single_frame_fast_path = True


@torch.no_grad()
def test_shapes(vae):
    config = vae.config
    f, tf = config.spatial_factor, config.temporal_factor
    clip = pixels(2, 3, 1 + 2 * tf, 64, 96)
    posterior = vae.encode(clip)
    assert posterior.mean.shape == posterior.logvar.shape == (2, config.z_dim, 3, 64 // f, 96 // f)
    assert vae.decode(posterior.mean).shape == clip.shape


@pytest.mark.parametrize("latent_frames", [1, 2], ids=["image", "video"])
@torch.no_grad()
def test_single_frame_path_equals_3d_path(vae, latent_frames):
    """Images run 2D; for a video only the first chunk does. Both must equal the reference's 3D path."""
    frames = 1 + (latent_frames - 1) * vae.config.temporal_factor
    clip, z = pixels(2, 3, frames, 64, 96), latents(vae, latent_frames)
    fast_mean, fast_pixels = vae.encode(clip).mean, vae.decode(z)
    slow_mean, slow_pixels = on_3d_path(vae, lambda: (vae.encode(clip).mean, vae.decode(z)))
    assert (fast_mean - slow_mean).abs().max() <= 1e-5
    assert (fast_pixels - slow_pixels).abs().max() <= 1e-5


@torch.no_grad()
def test_time_is_causal_across_chunks(vae):
    """Chunks carry the frame cache correctly: a clip's prefix encodes/decodes to the prefix of the whole."""
    tf = vae.config.temporal_factor
    clip, z = pixels(1, 3, 1 + 3 * tf, 32, 32), latents(vae, 3, 32, 32, batch=1)
    whole_mean, whole_pixels = vae.encode(clip).mean, vae.decode(z)
    assert (vae.encode(clip[:, :, :1 + tf]).mean - whole_mean[:, :, :2]).abs().max() <= 1e-5
    assert (vae.decode(z[:, :, :2]) - whole_pixels[:, :, :1 + tf]).abs().max() <= 1e-5


@torch.no_grad()
def test_image_tensors_may_omit_time(vae):
    image = pixels(2, 3, 64, 96)
    posterior = vae.encode(image)
    assert posterior.mean.ndim == 4
    assert torch.equal(posterior.mean, vae.encode(image.unsqueeze(2)).mean.squeeze(2))
    assert torch.equal(vae.decode(posterior.mean), vae.decode(posterior.mean.unsqueeze(2)).squeeze(2))


@torch.no_grad()
def test_no_state_left_between_calls():
    vae = random_vae()
    clip = pixels(1, 3, 5, 32, 32)
    first = vae.encode(clip).mean
    vae.encode(pixels(1, 3, 9, 32, 32, seed=5))
    assert torch.equal(vae.encode(clip).mean, first)


def test_latent_normalization_round_trip():
    vae = WanVAE(vae_preset("tiny-official-layout"))
    z = torch.randn(2, 16, 3, 4, 5)
    normalized = vae.normalize_latents(z)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    assert torch.allclose(normalized, (z - mean) / std)
    assert torch.allclose(vae.denormalize_latents(normalized), z, atol=1e-6)
    assert torch.allclose(vae.denormalize_latents(vae.normalize_latents(z[:, :, 0])), z[:, :, 0], atol=1e-6)


def test_sample_and_mode():
    mean, logvar = torch.randn(2, 4, 1, 3, 3), torch.randn(2, 4, 1, 3, 3)
    posterior = LatentDistribution.from_moments(torch.cat([mean, logvar * 100], dim=1))
    assert torch.equal(posterior.mode(), mean)
    assert posterior.logvar.min() >= -30 and posterior.logvar.max() <= 20
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(7))
    sample = posterior.sample(torch.Generator().manual_seed(7))
    assert torch.allclose(sample, mean + torch.exp(0.5 * posterior.logvar) * noise)
    assert not torch.equal(sample, posterior.sample(torch.Generator().manual_seed(8)))


@torch.no_grad()
def test_decode_clamps_to_unit_range():
    vae = random_vae()
    vae.decoder.conv_out.weight.mul_(100.0)
    out = vae.decode(latents(vae, 1))
    assert out.min() == -1.0 and out.max() == 1.0


@pytest.mark.parametrize("shape, message", [
    ((1, 4, 1, 32, 32), "got 4 channels"),
    ((1, 3, 1, 30, 32), "height 30 and width 32 must be multiples of 4"),
    ((1, 3, 32), "expected images [B, C, H, W] or clips"),
    ((1, 3, 4, 32, 32), "a clip of 4 frames"),
])
def test_bad_pixels_are_named(shape, message):
    vae = WanVAE(vae_preset("tiny"))
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        vae.encode(torch.zeros(shape))


def test_bad_latents_are_named():
    vae = WanVAE(vae_preset("tiny"))
    with pytest.raises(ValueError, match="got latents with 16 channels.*z_dim=4"):
        vae.decode(torch.zeros(1, 16, 1, 8, 8))


@torch.no_grad()
def test_slicing_matches_batched():
    vae = random_vae()
    clip, z = pixels(3, 3, 1, 32, 32), latents(vae, 1, 32, 32, batch=3)
    batched = vae.encode(clip).mean, vae.decode(z)
    vae.enable_slicing()
    sliced = vae.encode(clip).mean, vae.decode(z)
    vae.disable_slicing()
    assert all((a - b).abs().max() <= 1e-5 for a, b in zip(batched, sliced))


@torch.no_grad()
def test_save_and_load_round_trip(tmp_path):
    vae = random_vae("tiny-official-layout")
    vae.save_pretrained(tmp_path)
    loaded = WanVAE.from_pretrained(tmp_path)
    assert loaded.config == vae.config
    assert not any(True for _ in loaded.buffers())  # nothing outside the checkpoint
    z = latents(vae, 1, 32, 32, batch=1)
    assert torch.equal(loaded.decode(z), vae.decode(z))
