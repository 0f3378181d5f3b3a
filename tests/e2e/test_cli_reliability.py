"""The command line on bad input, broken model folders and interruptions: exit 2 with one line naming the file
or value (before any weights load when no weights are needed), 130 on Ctrl-C, and no output lost or replaced."""

import json
import logging
import shutil
from pathlib import Path

import pytest
from PIL import Image

from qwenimage.cli.main import build_parser, main
from qwenimage.devices import cpu_has_bf16
from tests.helpers import png_declaring


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, command: str, *parts: str) -> str:
    """The single stderr line of a clean failure; asserts it names every part and that no traceback was printed."""
    lines = [line for line in err.strip().splitlines() if " INFO " not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"qwenimage {command}: error: ") and all(p in lines[0] for p in parts), lines[0]
    return lines[0]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def folder_copy(source: Path, target: Path, *writable: str) -> Path:
    """`source` with the `writable` components copied (safe to break) and the rest linked (read-only)."""
    target.mkdir()
    for child in source.iterdir():
        if child.name in writable:
            (shutil.copytree if child.is_dir() else shutil.copy)(child, target / child.name)
        else:
            (target / child.name).symlink_to(child)
    return target


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if the model is loaded: the checks under test must come before."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the bad input was noticed")

    monkeypatch.setattr("qwenimage.pipelines.loading.load_pipeline", refuse)


@pytest.mark.parametrize("how", ["edit", "edit_first_of_two", "img2img", "inpaint_mask"])
def test_decompression_bomb_input_is_one_line(tiny_pipeline_dir, tmp_path, capsys, no_loading, how):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(20000, 20000))
    Image.new("RGB", (32, 32)).save(tmp_path / "in.png")
    model = folder_copy(tiny_pipeline_dir, tmp_path / "model", "model_index.json")  # a multi-image edit model
    index = json.loads((model / "model_index.json").read_text())
    (model / "model_index.json").write_text(json.dumps({**index, "_class_name": "QwenImageEditPlusPipeline"}))
    inputs = {"edit": ["--image", bomb], "edit_first_of_two": ["--image", bomb, "--image", tmp_path / "in.png"],
              "img2img": ["--image", bomb, "--strength", "0.5"],
              "inpaint_mask": ["--image", tmp_path / "in.png", "--mask", bomb]}[how]
    code, _, err = run(capsys, "edit", "--model", model, "--prompt", "x", "--steps", "1", *inputs,
                       "--out", tmp_path / "out")
    assert code == 2
    one_line_error(err, "edit", str(bomb), "400,000,000 pixels", "178,956,970")


@pytest.mark.parametrize("case,message", [
    ("steps", "num_steps must be an integer in 1..1000, got 1000000000"),
    ("seed", "seed must be an integer with 0 <= seed < 2**64, got 100000000000000000000000"),
    ("seed_of_second_prompt", "got 18446744073709551616"),
    ("strength", "strength must be in [0, 1], got 1.5"),
    ("size", "width 4096 is out of range"),
    ("max_sequence_length", "max_sequence_length must be an integer in 1..1024, got 0"),
    ("lora", "LoRA file not found: "),
    ("out_is_a_file", "is a file, not a folder"),
    ("device_tpu", "unknown device 'tpu'"),
    ("device_cuda_missing", "device 'cuda' is not available"),
    ("derived_edit_size", "comes from the last input image (1536x864) scaled to the model's edit area"),
])
def test_values_are_checked_before_the_model_loads(tiny_pipeline_dir, tmp_path, capsys, monkeypatch, no_loading,
                                                   case, message):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without CUDA
    Image.new("RGB", (1536, 864)).save(tmp_path / "wide.png")
    (tmp_path / "file").write_text("not a folder")
    base = ["generate", "--model", tiny_pipeline_dir, "--prompt", "x", "--width", "32", "--height", "32",
            "--steps", "2", "--out", tmp_path / "out"]
    argv = {
        "steps": [*base, "--steps", str(10**9)],
        "seed": [*base, "--seed", str(10**23)],
        "seed_of_second_prompt": [*base, "--prompt", "y", "--seed", str(2**64 - 1)],
        "strength": ["edit", "--model", tiny_pipeline_dir, "--prompt", "x", "--image", tmp_path / "wide.png",
                     "--strength", "1.5", "--width", "32", "--height", "32"],
        "size": [*base, "--width", "4096"],
        "max_sequence_length": [*base, "--max-sequence-length", "0"],
        "lora": [*base, "--lora", f"{tmp_path}/missing.safetensors:0.5"],
        "out_is_a_file": [*base, "--out", tmp_path / "file"],
        "device_tpu": [*base, "--device", "tpu"],
        "device_cuda_missing": [*base, "--device", "cuda"],
        "derived_edit_size": ["edit", "--model", tiny_pipeline_dir, "--prompt", "x", "--image", tmp_path / "wide.png"],
    }[case]
    code, _, err = run(capsys, *argv)
    assert code == 2
    line = one_line_error(err, argv[0], message)
    if case == "derived_edit_size":
        assert "width 1376 is out of range" in line and "pass --width and --height" in line


def test_output_folder_is_created_before_sampling(tiny_pipeline_dir, tmp_path, capsys, monkeypatch):
    from qwenimage.pipelines.pipeline import QwenImagePipeline

    out = tmp_path / "new" / "folder"

    def generate(self, requests, progress=None, preview=None):
        assert out.is_dir()  # a bad --out would have failed already
        raise KeyboardInterrupt

    monkeypatch.setattr(QwenImagePipeline, "generate", generate)
    code, _, _ = run(capsys, "generate", "--model", tiny_pipeline_dir, "--prompt", "x", "--width", "32",
                     "--height", "32", "--steps", "1", "--out", out)
    assert code == 130


def test_same_seed_twice_keeps_the_first_image(tiny_pipeline_dir, tmp_path, capsys, caplog):
    common = ["generate", "--model", tiny_pipeline_dir, "--width", "32", "--height", "32", "--steps", "1",
              "--seed", "7", "--out", tmp_path]
    argv = [*common, "--prompt", "x"]
    code, first, _ = run(capsys, *argv)
    assert code == 0 and Path(first.strip()) == tmp_path / "generate-7-0.png"
    original = (tmp_path / "generate-7-0.png").read_bytes()
    with caplog.at_level(logging.INFO, logger="qwenimage.cli.generate_cmd"):
        code, second, _ = run(capsys, *argv, "--prompt", "another")  # a batch: names for index 0 and 1
    assert code == 0 and second.split() == [str(tmp_path / "generate-7-0-1.png"), str(tmp_path / "generate-8-1.png")]
    assert "generate-7-0.png exists; writing generate-7-0-1.png instead" in caplog.text
    assert (tmp_path / "generate-7-0.png").read_bytes() == original
    code, third, _ = run(capsys, *common, "--prompt", "replaced", "--overwrite")
    assert code == 0 and third.split()[0] == str(tmp_path / "generate-7-0.png")
    assert (tmp_path / "generate-7-0.png").read_bytes() != original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generate-7-0-1.png", "generate-7-0.png",
                                                          "generate-8-1.png"]


def test_ctrl_c_while_sampling_prints_interrupted_and_exits_130(tiny_pipeline_dir, tmp_path, capsys, monkeypatch):
    import qwenimage.sampling.sampler as sampler

    steps = []

    def interrupted_step(*args, **kwargs):
        steps.append(1)
        if len(steps) == 2:
            raise KeyboardInterrupt
        return sampler_step(*args, **kwargs)

    sampler_step = sampler.euler_step
    monkeypatch.setattr(sampler, "euler_step", interrupted_step)
    code, out, err = run(capsys, "generate", "--model", tiny_pipeline_dir, "--prompt", "x", "--width", "32",
                         "--height", "32", "--steps", "3", "--out", tmp_path / "out")
    assert code == 130 and len(steps) == 2
    assert err.strip().splitlines()[-1] == "qwenimage generate: interrupted" and "Traceback" not in err
    assert out == "" and list((tmp_path / "out").iterdir()) == []


def test_png_records_the_effective_dtype_and_strength_only_for_img2img(tiny_pipeline_dir, tmp_path, capsys):
    common = ["--model", tiny_pipeline_dir, "--steps", "1", "--device", "cpu", "--dtype", "bf16", "--out", tmp_path]
    effective = "bf16" if cpu_has_bf16() else "fp32"  # bf16 on a CPU without bf16 units would be emulated
    code, out, _ = run(capsys, "generate", *common, "--prompt", "x", "--width", "32", "--height", "32")
    assert code == 0
    params = json.loads(Image.open(out.strip()).text["parameters"])
    assert params["dtype"] == effective and params["task"] == "t2i" and "strength" not in params
    Image.new("RGB", (32, 32)).save(tmp_path / "in.png")
    code, out, _ = run(capsys, "edit", *common, "--prompt", "x", "--image", tmp_path / "in.png", "--strength", "0.25")
    assert code == 0
    params = json.loads(Image.open(out.strip()).text["parameters"])
    assert params["task"] == "img2img" and params["strength"] == 0.25 and params["dtype"] == effective


@pytest.mark.parametrize("breakage,named", [
    ("transformer_config_not_json", "transformer/config.json: not valid JSON"),
    ("transformer_missing", "transformer: missing (model_index.json lists the component 'transformer')"),
    ("text_encoder_truncated", "text_encoder/model.safetensors: not a readable safetensors file, truncated"),
])
def test_check_reports_each_broken_component(tiny_pipeline_dir, tmp_path, capsys, breakage, named):
    component = breakage.split("_")[0] if breakage.startswith("transformer") else "text_encoder"
    folder = folder_copy(tiny_pipeline_dir, tmp_path / "model", component)
    if breakage == "transformer_config_not_json":
        (folder / "transformer" / "config.json").write_text("{not json")
    elif breakage == "transformer_missing":
        shutil.rmtree(folder / "transformer")
    else:
        truncate(folder / "text_encoder" / "model.safetensors")
    code, out, err = run(capsys, "check", folder)
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if named in line and line.startswith("qwenimage check: error: ")]
    assert "WanVAE" in out and "all keys matched" in out  # the healthy components are still reported


def test_check_reports_every_problem_at_once(tiny_pipeline_dir, tmp_path, capsys):
    folder = folder_copy(tiny_pipeline_dir, tmp_path / "model", "transformer", "text_encoder", "scheduler")
    (folder / "transformer" / "config.json").write_text("{not json")
    truncate(folder / "text_encoder" / "model.safetensors")
    shutil.rmtree(folder / "scheduler")
    code, _, err = run(capsys, "check", folder)
    problems = err.strip().splitlines()
    assert code == 2 and len(problems) == 3
    assert any("transformer/config.json" in p for p in problems) and any("scheduler: missing" in p for p in problems)


def test_truncated_text_encoder_is_a_one_line_error(tiny_pipeline_dir, tmp_path, capsys):
    folder = folder_copy(tiny_pipeline_dir, tmp_path / "model", "text_encoder")
    truncate(folder / "text_encoder" / "model.safetensors")
    code, _, err = run(capsys, "generate", "--model", folder, "--prompt", "x", "--width", "32", "--height", "32",
                       "--steps", "1", "--out", tmp_path / "out")
    assert code == 2
    one_line_error(err, "generate", str(folder / "text_encoder" / "model.safetensors"),
                   "not a readable safetensors file, truncated or corrupt")


@pytest.mark.parametrize("name,content", [("junk.pth", b"not a checkpoint"), ("junk.safetensors", b"not one either"),
                                          ("cut.safetensors", None), ("cut.pth", None)])
def test_convert_vae_of_a_bad_file_is_one_line(tmp_path, capsys, name, content):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    elif path.suffix == ".pth":
        torch.save({"conv1.weight": torch.zeros(64, 64)}, path)
        truncate(path)
    else:
        save_file({"conv1.weight": torch.zeros(64, 64)}, path)
        truncate(path)
    code, _, err = run(capsys, "convert-vae", path, tmp_path / "vae")
    assert code == 2
    one_line_error(err, "convert-vae", str(path), "not a readable")


def test_check_of_a_mismatched_component_has_a_self_contained_first_line(tiny_pipeline_dir, tmp_path, capsys):
    folder = tmp_path / "transformer"
    shutil.copytree(tiny_pipeline_dir / "transformer", folder)
    config = json.loads((folder / "config.json").read_text())
    config["joint_attention_dim"] = 24
    (folder / "config.json").write_text(json.dumps(config))
    code, _, err = run(capsys, "check", folder)
    first = err.strip().splitlines()[0]
    assert code == 2 and first.startswith(f"qwenimage check: error: {folder / 'diffusion_pytorch_model.safetensors'}")
    assert "key 'txt_in.weight' has shape [48, 16], the model expects [48, 24]" in first


@pytest.mark.parametrize("command", ["generate", "edit"])
def test_every_option_has_help_and_out_says_how_files_are_named(capsys, command):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    undocumented = [a.option_strings for a in sub._actions if a.option_strings and not a.help]
    assert undocumented == []
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0
    for shown in ("1..1000", "0 <= seed < 2**64", "(default: 0)", "(default: 512)", "COMMAND-SEED-INDEX.png",
                  "--overwrite", "(default: outputs)"):
        assert shown in text, shown
