import json

import pytest
import torch

from qwenimage.sampling.schedule import ScheduleConfig, euler_step, noise_to, shift_mu, sigmas_for
from qwenimage.weights import ConfigError

OFFICIAL = dict(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
                base_image_seq_len=256, max_image_seq_len=8192, shift_terminal=0.02, time_shift_type="exponential",
                invert_sigmas=False, stochastic_sampling=False, use_karras_sigmas=False,
                use_exponential_sigmas=False, use_beta_sigmas=False)


@pytest.mark.parametrize("steps", [1, 2, 8, 50])
@pytest.mark.parametrize("size", [256, 1024, 1328])
def test_sigmas_equal_diffusers(steps, size):
    diffusers = pytest.importorskip("diffusers")
    import numpy as np

    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(**OFFICIAL)
    tokens = (size // 16) ** 2
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=shift_mu(tokens, ScheduleConfig()))
    ours = sigmas_for(steps, tokens)
    if steps == 1:  # diffusers divides by zero when stretching the 1-step schedule [1.0]; ours is [1, 0]
        assert torch.isnan(scheduler.sigmas[0]) and ours.tolist() == [1.0, 0.0]
        return
    assert ours.shape == scheduler.sigmas.shape
    assert (ours - scheduler.sigmas).abs().max() <= 1e-6


def test_known_values_from_the_spec():
    assert shift_mu(6889, ScheduleConfig()) == pytest.approx(0.83432, abs=1e-5)
    s = sigmas_for(50, 6889)
    assert s[:3].tolist() == pytest.approx([1.0, 0.99099, 0.98177], abs=1e-5)
    assert s[-2].item() == pytest.approx(0.02, abs=1e-6) and s[-1] == 0


@pytest.mark.parametrize("steps,tokens", [(1, 256), (7, 1000), (50, 9000)])
def test_schedule_is_decreasing_and_ends_at_zero(steps, tokens):
    s = sigmas_for(steps, tokens)
    assert s[0] == 1 and s[-1] == 0
    assert torch.all(s[1:] < s[:-1])


def test_euler_step_follows_the_straight_path_exactly():
    x0, noise = torch.randn(2, 5), torch.randn(2, 5)
    v = noise - x0
    x = noise_to(x0, noise, 0.8)
    assert torch.allclose(euler_step(x, v, 0.8, 0.3), noise_to(x0, noise, 0.3), atol=1e-6)
    assert torch.allclose(euler_step(x, v, 0.8, 0.0), x0, atol=1e-6)


def test_reads_official_config_and_rejects_unsupported(tmp_path):
    (tmp_path / "scheduler_config.json").write_text(json.dumps({"_class_name": "X", **OFFICIAL}))
    assert ScheduleConfig.from_folder(tmp_path) == ScheduleConfig()
    (tmp_path / "scheduler_config.json").write_text(json.dumps({**OFFICIAL, "use_karras_sigmas": True}))
    with pytest.raises(ConfigError, match=r"unsupported scheduler options enabled: \['use_karras_sigmas'\]"):
        ScheduleConfig.from_folder(tmp_path)
    with pytest.raises(ValueError, match="num_steps must be at least 1, got 0"):
        sigmas_for(0, 256)
