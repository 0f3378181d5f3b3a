"""The qwenimage-mini recipe (configs/train/mini_recipe.yaml and the configs it runs) end to end at toy length:
synth -> base -> VAE -> VAE refine -> decoder phases (words, then scenes) -> transformer curriculum -> its continuation -> the
continuation with the text encoder trained jointly -> the fixed-layout and scene-wording runs, each from the
folder the previous one assembled -> the text-to-image folder -> the edit runs -> the final (edit) folder ->
generate. So it cannot rot."""

import json
from pathlib import Path

import pytest
import yaml

from qwenimage.cli.main import main

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "train" / "mini_recipe.yaml"
SYNTH = ["--count", "6", "--shard-size", "3", "--workers", "1", "verify_fraction=0.0"]
VAE = ["optim.steps=2", "data.batch_size=2", "data.photos=0", "data.crop=32", "output.stats_images=4",
       "output.checkpoint_every=2"]
TRANSFORMER = ["stages.0.steps=2", "stages.1.steps=2", "data.batch_size=2", "output.export_every=2",
               "output.checkpoint_every=2", "output.log_every=1", "optim.warmup_steps=1"]
EDIT_RUN = "outputs/mini/train-edit-mono"  # the first edit run; the second starts from its export
COLOR_RUN = "outputs/mini/train-edit-color"  # stop 34's run
ROWS_RUN = "outputs/mini/train-edit-rows"  # stop 35's run
MORE_RUN = "outputs/mini/train-edit-rows-more"  # stop 36's, from the rows run's last export
NUMBERS_RUN = "outputs/mini/train-edit-numbers"  # stop 40's, from stop 36's folder
ZH_RUN = "outputs/mini/train-edit-zh96"  # stop 42's, from stop 40's folder: the 30 characters, then the 96
MIX_RUN = "outputs/mini/train-edit-zh96-mix"  # stop 43's, from its last export: the shipped folder's
LONG = ["stages.0.steps=2", "data.batch_size=2", "output.export_every=2", "output.checkpoint_every=2",
        "output.log_every=1", "optim.warmup_steps=1"]


def extra() -> str:
    steps = {"synth-s1": SYNTH, "synth-s2": SYNTH, "synth-s3": SYNTH, "synth-mono": SYNTH, "synth-scenes": SYNTH,
             "synth-vae-pure": SYNTH, "synth-edit-pairs": SYNTH, "vae": VAE, "vae-refine": VAE, "vae-decoder": VAE,
             "vae-decoder-words": VAE, "vae-decoder-mono": VAE, "vae-decoder-scenes": VAE, "vae-decoder-both": VAE,
             "transformer": TRANSFORMER, "transformer-long": LONG,
             "transformer-joint": LONG + ["stop_after=2"], "transformer-joint-scaled": LONG,
             "transformer-mono": LONG + ["stop_after=2"], "transformer-scenes": LONG + ["stop_after=2"],
             "transformer-scenes-more": LONG, "synth-edit-mono": SYNTH, "synth-edit-mono-suite": SYNTH,
             "transformer-edit-mono": LONG + ["stop_after=2"],
             "transformer-edit-mono-b": LONG + ["stop_after=2",
                                                f"model.transformer={EDIT_RUN}/exports/step-00000002/transformer"],
             "assemble-edit": ["--transformer", "outputs/mini/train-edit-mono-b/exports/step-00000002/transformer"],
             "synth-edit-color": SYNTH, "synth-edit-place": SYNTH, "transformer-edit-color": LONG,
             "vae-decoder-color": VAE, "vae-decoder-color-more": VAE,
             "assemble-color": ["--transformer", f"{COLOR_RUN}/exports/step-00000002/transformer"],
             "synth-scenes-rows": SYNTH, "transformer-edit-rows": LONG,
             "final-rows": ["--transformer", f"{ROWS_RUN}/exports/step-00000002/transformer"],
             "synth-edit-place-b": SYNTH,
             "transformer-edit-rows-more": LONG + [f"model.transformer={ROWS_RUN}/exports/step-00000002/transformer"],
             "final-rows-more": ["--transformer", f"{MORE_RUN}/exports/step-00000002/transformer"],
             "synth-edit-numbers": SYNTH, "transformer-edit-numbers": LONG,
             "final-numbers": ["--transformer", f"{NUMBERS_RUN}/exports/step-00000002/transformer"],
             "synth-edit-zh30": SYNTH, "synth-edit-zh96": SYNTH, "transformer-edit-zh96": LONG + ["stages.1.steps=2"],
             "transformer-edit-zh96-mix": LONG + [f"model.transformer={ZH_RUN}/exports/step-00000004/transformer"],
             "final-zh96": ["--transformer", f"{MIX_RUN}/exports/step-00000002/transformer"]}
    return "extra=" + json.dumps(steps)


def test_the_recipe_runs_end_to_end_at_toy_length_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", str(RECIPE), extra()]) == 0
    ran = ("synth-s1, synth-s2, synth-s3, synth-mono, synth-scenes, synth-vae-pure, synth-edit-pairs, base, vae, "
           "vae-refine, vae-decoder, vae-decoder-words, vae-decoder-mono, vae-decoder-scenes, vae-decoder-both, "
           "transformer, transformer-long, transformer-joint, "
           "joint-start, transformer-joint-scaled, assemble, transformer-mono, mono-model, transformer-scenes, "
           "scenes-model, transformer-scenes-more, assemble-final, synth-edit-mono, synth-edit-mono-suite, edit-base, "
           "transformer-edit-mono, transformer-edit-mono-b, assemble-edit, final, synth-edit-color, synth-edit-place, "
           "transformer-edit-color, color-base, vae-decoder-color, vae-decoder-color-more, assemble-color, "
           "final-color, synth-scenes-rows, transformer-edit-rows, final-rows, synth-edit-place-b, "
           "transformer-edit-rows-more, final-rows-more, synth-edit-numbers, transformer-edit-numbers, final-numbers, "
           "synth-edit-zh30, synth-edit-zh96, transformer-edit-zh96, transformer-edit-zh96-mix, final-zh96")
    assert f"ran {ran}" in capsys.readouterr().out
    model = tmp_path / "outputs" / "mini" / "model"
    assert (model / "manifest.json").is_file() and (model / "transformer" / "config.json").is_file()
    stop33 = tmp_path / "outputs" / "mini" / "model-edit"  # the edit run's transformer, edit class
    assert (stop33 / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        tmp_path / "outputs/mini/train-edit-mono-b/exports/step-00000002/transformer/"
                   "diffusion_pytorch_model.safetensors").read_bytes()
    final = tmp_path / "outputs" / "mini" / "model-color"  # stop 34's: the colour run's transformer, its decoder
    assert json.loads((final / "model_index.json").read_text())["_class_name"] == "QwenImageEditPipeline"
    assert (final / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        tmp_path / f"{COLOR_RUN}/exports/step-00000002/transformer/diffusion_pytorch_model.safetensors").read_bytes()
    decoder = (final / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert decoder == (tmp_path / "outputs/mini/model-color-base/vae/diffusion_pytorch_model.safetensors").read_bytes()
    assert decoder != (stop33 / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()  # the colour decoder
    started = yaml.safe_load((tmp_path / f"{COLOR_RUN}/config.yaml").read_text())
    assert started["model"]["pipeline"] == "outputs/mini/model-edit"
    rows = tmp_path / "outputs" / "mini" / "model-rows"  # what is shipped: the rows run's transformer in that folder
    assert json.loads((rows / "model_index.json").read_text())["_class_name"] == "QwenImageEditPipeline"
    assert (rows / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        tmp_path / f"{ROWS_RUN}/exports/step-00000002/transformer/diffusion_pytorch_model.safetensors").read_bytes()
    assert (rows / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == decoder
    started = yaml.safe_load((tmp_path / f"{ROWS_RUN}/config.yaml").read_text())
    assert started["model"]["pipeline"] == "outputs/mini/model-color"
    assert started["stages"][0]["task_sources"] == {"t2i": ["data/mini/words-scenes-12k"]}
    more = tmp_path / "outputs" / "mini" / "model-rows-more"  # stop 36's: the continuation in stop 35's folder
    assert (more / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        tmp_path / f"{MORE_RUN}/exports/step-00000002/transformer/diffusion_pytorch_model.safetensors").read_bytes()
    assert (more / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == decoder
    started = yaml.safe_load((tmp_path / f"{MORE_RUN}/config.yaml").read_text())
    assert started["model"]["pipeline"] == "outputs/mini/model-rows"
    assert started["model"]["transformer"] == f"{ROWS_RUN}/exports/step-00000002/transformer"
    assert "data/mini/edit-pairs-place-b" in started["data"]["sources"]
    numbers = tmp_path / "outputs" / "mini" / "model-numbers"  # stop 40's: the numbers run in stop 36's folder
    assert (numbers / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        tmp_path / f"{NUMBERS_RUN}/exports/step-00000002/transformer/diffusion_pytorch_model.safetensors").read_bytes()
    assert "text_focus" in json.loads((numbers / "qwenimage.json").read_text())  # the sign geometry it edits on
    started = yaml.safe_load((tmp_path / f"{NUMBERS_RUN}/config.yaml").read_text())
    assert started["model"]["pipeline"] == "outputs/mini/model-rows-more"
    assert "data/mini/edit-pairs-numbers" in started["data"]["sources"]
    started = yaml.safe_load((tmp_path / f"{MIX_RUN}/config.yaml").read_text())
    assert started["model"]["pipeline"] == "outputs/mini/model-numbers"  # stop 43's: the Chinese run, signs back
    assert started["model"]["transformer"] == f"{ZH_RUN}/exports/step-00000004/transformer"
    assert {"data/mini/edit-pairs-zh96", "data/mini/edit-pairs-place"} <= set(started["data"]["sources"])
    zh96 = tmp_path / "outputs" / "mini" / "model-zh96"
    assert (zh96 / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        tmp_path / f"{MIX_RUN}/exports/step-00000002/transformer/diffusion_pytorch_model.safetensors").read_bytes()
    assert "cjk" in json.loads((zh96 / "qwenimage.json").read_text())["text_focus"]  # its Chinese glyph geometry
    def logged_stages(run: str) -> list[str]:  # the stage of every logged step of outputs/mini/<run>
        log = (tmp_path / "outputs/mini" / run / "log.jsonl").read_text().splitlines()
        return [json.loads(line)["stage"] for line in log]

    assert logged_stages("train") == ["one-font", "one-font", "fonts-colours", "fonts-colours"]
    settings = yaml.safe_load((tmp_path / "outputs/mini/train/config.yaml").read_text())
    assert settings["stages"][0]["sources"] == ["data/mini/words-s1"]
    assert logged_stages("train-long") == ["one-font-long", "one-font-long"]
    assert (tmp_path / "outputs/mini/train/transformer-raw/config.json").is_file()  # where the continuation started
    for run, stage in [("train-joint", "one-font-joint"), ("train-joint-scaled", "one-font-scaled"),
                       ("train-mono", "mono-fixed-layout"), ("train-scenes", "scene-wordings"),
                       ("train-scenes-more", "scene-wordings-more")]:
        assert logged_stages(run) == [stage, stage]
    assert logged_stages("train-edit-zh96") == ["edit-zh30", "edit-zh30", "edit-zh96", "edit-zh96"]
    started = yaml.safe_load((tmp_path / "outputs/mini/train-scenes-more/config.yaml").read_text())
    assert started["model"]["pipeline"] == "outputs/mini/model-scenes"  # each run starts where the last one ended
    from safetensors.torch import load_file  # the shipped text encoder is the jointly trained one, not the base's

    trained = load_file(str(model / "text_encoder" / "model.safetensors"))
    base = load_file(str(tmp_path / "outputs/mini/base/text_encoder/model.safetensors"))
    # the shipped copy is bf16: compare with the base rounded alike, so rounding alone cannot pass this
    assert any(not (trained[k] == base[k].to(trained[k].dtype)).all() for k in base if k.startswith("model.layers."))
    vae = json.loads((model / "vae" / "config.json").read_text())
    assert vae["latents_std"] != [1.0] * 16  # the VAE step wrote its latent statistics

    code = main(["generate", "--model", str(model), "--prompt", 'a sign that says "toy"', "--steps", "2",
                 "--out", str(tmp_path / "images")])
    assert code == 0 and len(list((tmp_path / "images").glob("*.png"))) == 1
    capsys.readouterr()

    assert main(["train", "--config", str(RECIPE), extra(), "only=[base,transformer]"]) == 0
    out = capsys.readouterr().out
    assert "ran transformer" in out and "already holds step 4" in out  # base skipped, training resumed at its end
