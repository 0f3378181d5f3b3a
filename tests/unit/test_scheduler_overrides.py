"""Scheduler overrides (`--scheduler KEY=VALUE`, GenerationRequest.scheduler, load_pipeline(scheduler=...)):
a fixed shift for few-step LoRAs, checked against diffusers' scheduler, and one-line errors for bad input."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from qwenimage.cli.main import main
from qwenimage.pipelines.request import GenerationRequest
from qwenimage.sampling.schedule import ScheduleConfig, override_schedule, parse_schedule_overrides, sigmas_for


def reference_sigmas(steps: int, **config) -> np.ndarray:
    """What diffusers' FlowMatchEulerDiscreteScheduler gives for the sigmas the Qwen-Image pipeline passes it."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(**config)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps))
    return scheduler.sigmas.numpy()


@pytest.mark.parametrize("terminal", [None, 0.02])
def test_a_fixed_shift_matches_diffusers_at_every_resolution(terminal):
    config = override_schedule(ScheduleConfig(), ["shift=3", f"shift_terminal={terminal}"])
    assert config.shift == 3.0 and not config.use_dynamic_shifting and config.shift_terminal == terminal
    expected = reference_sigmas(8, shift=3.0, use_dynamic_shifting=False, shift_terminal=terminal)
    for tokens in (64, 4096):  # no dependence on the image size any more
        np.testing.assert_allclose(sigmas_for(8, tokens, config).numpy(), expected, atol=1e-6)
    if terminal is None:
        t = np.linspace(1.0, 1 / 8, 8)
        np.testing.assert_allclose(expected[:-1], 3 * t / (1 + 2 * t), atol=1e-6)


def test_lightning_scheduler_config_is_the_same_schedule():
    """Lightning ships a dynamic config with base_shift = max_shift = log 3: the same sigmas as shift=3."""
    lightning = override_schedule(ScheduleConfig(), {"base_shift": math.log(3), "max_shift": math.log(3),
                                                     "shift_terminal": None})
    fixed = override_schedule(ScheduleConfig(), {"shift": 3, "shift_terminal": None})
    torch.testing.assert_close(sigmas_for(4, 1024, lightning), sigmas_for(4, 1024, fixed))


@pytest.mark.parametrize("items,message", [
    (["shfit=3"], "unknown scheduler key 'shfit'; known: num_train_timesteps, shift,"),
    (["shift=three"], "scheduler shift must be a float, got 'three'"),
    (["shift=0"], "shift must be positive, got 0.0"),
    (["shift=nan"], "scheduler shift must be a float, got 'nan'"),
    (["shift"], "scheduler override 'shift' is not KEY=VALUE"),
    (["use_dynamic_shifting=maybe"], "scheduler use_dynamic_shifting must be a bool, got 'maybe'"),
    (["time_shift_type=cubic"], "time_shift_type must be 'exponential' or 'linear', got 'cubic'"),
    (["shift_terminal=1.5"], "shift_terminal must be in [0, 1), got 1.5"),
])
def test_bad_overrides_name_the_value(items, message):
    with pytest.raises(ValueError) as info:
        override_schedule(ScheduleConfig(), items)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_request_validates_its_overrides_and_last_key_wins():
    GenerationRequest("x", scheduler={"shift": 3}).validate()
    with pytest.raises(ValueError, match="unknown scheduler key 'steps'"):
        GenerationRequest("x", scheduler={"steps": 8}).validate()
    assert parse_schedule_overrides(["shift=2", " shift = 3 "]) == {"shift": "3"}


def lightning_style_lora(transformer, rank: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Lightning's key layout: bare module names (no 'transformer.' prefix), lora_A / lora_B, no alpha keys,
    on every linear layer of every block."""
    gen = torch.Generator().manual_seed(seed)
    lora = {}
    for name, module in transformer.named_modules():
        if name.startswith("transformer_blocks.") and isinstance(module, torch.nn.Linear):
            lora[f"{name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=gen) * 0.1
            lora[f"{name}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=gen) * 0.1
    return lora


def test_generate_with_a_lightning_lora_and_a_fixed_shift(tmp_path, capsys, monkeypatch):
    from safetensors.torch import save_file

    import qwenimage.pipelines.pipeline as pipeline_module
    from qwenimage.model import QwenImageMMDiT
    from qwenimage.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny", pipeline_class="QwenImagePipeline")
    save_file(lightning_style_lora(QwenImageMMDiT.from_pretrained(model / "transformer")), tmp_path / "lightning.safetensors")
    used = []
    real_sample = pipeline_module.sample
    monkeypatch.setattr(pipeline_module, "sample", lambda v, x, sigmas, **kw: used.append(sigmas) or real_sample(
        v, x, sigmas, **kw))
    common = ["generate", "--model", str(model), "--prompt", "a fox", "--width", "48", "--height", "32",
              "--steps", "8", "--seed", "2"]
    images = {}
    for name, extra in (("plain", []), ("lightning", ["--lora", str(tmp_path / "lightning.safetensors")])):
        code = main([*common, *extra, "--scheduler", "shift=3", "--out", str(tmp_path / name)])
        out, err = capsys.readouterr()
        assert code == 0, err
        images[name] = Image.open(out.split()[0])
    assert images["plain"].tobytes() != images["lightning"].tobytes()  # the LoRA took effect
    assert json.loads(images["lightning"].text["parameters"])["scheduler"] == {"shift": "3"}
    expected = reference_sigmas(8, shift=3.0, use_dynamic_shifting=False, shift_terminal=0.02)
    for sigmas in used:
        np.testing.assert_allclose(sigmas[0].numpy(), expected, atol=1e-6)


def test_load_pipeline_overrides_and_requests_override_it(tiny_pipeline_dir):
    from qwenimage.pipelines.loading import load_pipeline

    pipe = load_pipeline(tiny_pipeline_dir, scheduler={"shift": 3})
    assert pipe.schedule.shift == 3 and not pipe.schedule.use_dynamic_shifting
    request = GenerationRequest("x", scheduler={"shift": "5", "shift_terminal": "none"})
    sigmas = sigmas_for(4, 16, pipe.schedule_for(request)).numpy()[:-1]
    t = np.linspace(1.0, 1 / 4, 4)
    np.testing.assert_allclose(sigmas, 5 * t / (1 + 4 * t), atol=1e-6)
    with pytest.raises(ValueError, match="unknown scheduler key 'sift'"):
        load_pipeline(tiny_pipeline_dir, scheduler={"sift": 3})
