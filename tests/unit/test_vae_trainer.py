"""VAE training: the loss goes down, a run resumes from its checkpoint, the export carries latent statistics."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from qwenimage.cli.train_cmd import config_kind
from qwenimage.train.vae_trainer import VaeTrainConfig, VaeTrainer, sobel
from qwenimage.vae import WanVAE


def word_images(folder, count=6):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        image = Image.new("RGB", (64, 64), tuple(int(v) for v in rng.integers(150, 255, 3)))
        ImageDraw.Draw(image).text((8, 24), f"w{i}rd", fill=(0, 0, 0))
        image.save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(f'the word "w{i}rd"')
    return folder


def _config(tmp_path, steps, **output):
    from qwenimage.jobconfig import from_dict

    raw = {"kind": "vae", "model": {"preset": "tiny-official-layout"},
           "data": {"sources": [str(tmp_path / "data")], "resolution": 64, "crop": 32, "batch_size": 4},
           "optim": {"steps": steps, "lr": 2e-3, "warmup_steps": 1, "ema_decay": 0.0},
           "output": {"dir": str(tmp_path / "run"), "log_every": 1, "checkpoint_every": 2, "stats_images": 4,
                      **output}}
    return from_dict(VaeTrainConfig, raw, prefix="")


def test_the_loss_goes_down_and_the_export_has_latent_statistics(tmp_path):
    word_images(tmp_path / "data")
    trainer = VaeTrainer(_config(tmp_path, 12, export_to=str(tmp_path / "pipe")))
    losses = trainer.run()
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    for folder in (tmp_path / "run" / "vae", tmp_path / "pipe" / "vae"):
        saved = json.loads((folder / "config.json").read_text())
        assert saved["latents_std"] != [1.0] * 16 and all(s > 0 for s in saved["latents_std"])
        vae = WanVAE.from_pretrained(folder)
        z = vae.normalize_latents(vae.encode(torch.zeros(1, 3, 32, 32)).mode())
        assert z.shape == (1, 16, 4, 4)


def test_a_run_resumes_from_its_last_checkpoint(tmp_path):
    word_images(tmp_path / "data")
    VaeTrainer(_config(tmp_path, 2)).run()
    resumed = VaeTrainer(_config(tmp_path, 4))
    assert resumed.step == 2
    assert len(resumed.run()) == 2


def test_a_decoder_fine_tune_starts_from_bf16_weights_in_fp32(tmp_path):
    """The shipped mini VAE is stored in bf16; training it without bf16 autocast must not mix dtypes."""
    from qwenimage.train.vae_trainer import vae_config_for

    word_images(tmp_path / "data")
    WanVAE(vae_config_for("tiny-official-layout")).to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    config = _config(tmp_path, 2)
    config.model.init, config.model.preset, config.model.decoder_only = str(tmp_path / "bf16"), "", True
    config.optim.autocast_bf16 = False
    config.output.export_to, config.output.export_dtype = str(tmp_path / "pipe"), "bf16"
    trainer = VaeTrainer(config)
    encoder_before = {n: p.clone() for n, p in trainer.vae.named_parameters() if n.startswith("encoder.")}
    assert {p.dtype for p in trainer.vae.parameters()} == {torch.float32}
    assert all(np.isfinite(trainer.run()))
    assert all(torch.equal(p, encoder_before[n]) for n, p in trainer.vae.named_parameters() if n in encoder_before)
    shipped = WanVAE.from_pretrained(tmp_path / "pipe" / "vae")  # exported in bf16, like the folder it came from
    assert {p.dtype for p in shipped.parameters()} == {torch.bfloat16}


def test_bad_configs_are_refused(tmp_path):
    from qwenimage.train.vae_trainer import VaeDataConfig

    with pytest.raises(ValueError, match="crop"):
        VaeTrainConfig(data=VaeDataConfig(crop=30))
    with pytest.raises(ValueError, match="output.export_dtype must be one of fp32, bf16, fp16, got 'int4'"):
        VaeTrainConfig(output=dataclasses.replace(_config(tmp_path, 2).output, export_dtype="int4"))
    with pytest.raises(ValueError, match="no training images"):
        VaeTrainer(VaeTrainConfig(output=_config(tmp_path, 2).output))


def test_sobel_sees_edges_and_not_flat_areas():
    flat = torch.ones(1, 3, 8, 8)
    assert sobel(flat).abs().max() == 0
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 1
    assert sobel(step)[0, 0].abs().max() > 0 and sobel(step)[0, 1].abs().max() == 0


def test_the_train_command_picks_the_job_kind(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("kind: vae\n")
    assert config_kind(path, []) == "vae"
    assert config_kind(None, []) == "transformer"
    assert config_kind(None, ["kind=vae"]) == "vae"
