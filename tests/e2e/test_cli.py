"""The command line on the tiny model folder: outputs, metadata, and one-line errors for bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qwenimage.cli.main import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_writes_pngs_of_the_requested_sizes_with_parameters(tiny_pipeline_dir, tmp_path, capsys):
    code, out, _ = run(capsys, "generate", "--model", str(tiny_pipeline_dir), "--prompt", "a sign that says OPEN",
                       "--prompt", "second", "--width", "64", "--height", "32", "--steps", "2", "--seed", "3",
                       "--negative-prompt", " ", "--out", str(tmp_path))
    assert code == 0
    paths = out.split()
    assert len(paths) == 2
    with Image.open(paths[0]) as img:
        assert img.size == (64, 32)
        params = json.loads(img.text["parameters"])
    assert params["prompt"] == "a sign that says OPEN" and params["seed"] == 3 and params["steps"] == 2
    with Image.open(paths[1]) as img:
        assert json.loads(img.text["parameters"])["seed"] == 4


def test_cfg_batching_modes_give_the_same_image(tiny_pipeline_dir, tmp_path, capsys):
    pixels = {}
    for mode in ("on", "off", "auto"):
        code, out, _ = run(capsys, "generate", "--model", str(tiny_pipeline_dir), "--prompt", "a red door",
                           "--negative-prompt", "blurry", "--width", "32", "--height", "32", "--steps", "2",
                           "--seed", "5", "--cfg-batching", mode, "--out", str(tmp_path / mode))
        assert code == 0
        with Image.open(out.split()[0]) as img:
            pixels[mode] = np.asarray(img.convert("RGB"), dtype=np.int16)
    assert np.abs(pixels["on"] - pixels["off"]).max() <= 1  # fp32 reassociation may flip a rounding
    assert np.array_equal(pixels["auto"], pixels["on"])  # 32x32 on CPU is short: auto batches
    with pytest.raises(SystemExit) as exit_info:
        run(capsys, "generate", "--model", str(tiny_pipeline_dir), "--prompt", "x", "--cfg-batching", "sometimes")
    assert exit_info.value.code == 2 and "'sometimes'" in capsys.readouterr().err


def test_edit_img2img_and_inpaint(tiny_pipeline_dir, tmp_path, capsys):
    Image.new("RGB", (48, 32), (10, 120, 200)).save(tmp_path / "in.png")
    mask = Image.new("L", (48, 32), 0)
    mask.paste(255, (0, 0, 24, 32))
    mask.save(tmp_path / "mask.png")
    common = ["--model", str(tiny_pipeline_dir), "--steps", "2", "--out", str(tmp_path / "out")]
    code, out, _ = run(capsys, "edit", *common, "--prompt", "add a moon", "--image", str(tmp_path / "in.png"),
                       "--width", "32", "--height", "32")
    assert code == 0 and Image.open(out.split()[0]).size == (32, 32)
    code, out, _ = run(capsys, "edit", *common, "--prompt", "a sea", "--image", str(tmp_path / "in.png"),
                       "--strength", "0.5")
    assert code == 0 and json.loads(Image.open(out.split()[0]).text["parameters"])["task"] == "img2img"
    code, out, _ = run(capsys, "edit", *common, "--prompt", "a sea", "--image", str(tmp_path / "in.png"),
                       "--mask", str(tmp_path / "mask.png"))
    assert code == 0 and json.loads(Image.open(out.split()[0]).text["parameters"])["task"] == "inpaint"


@pytest.mark.parametrize("case,message", [
    ("missing_model", "model folder not found"),
    ("unreadable_image", "cannot read image"),
    ("size", "width 4096 is out of range"),
    ("mask", "mask size 16x16 does not match the image size 48x32"),
    ("long_prompt", "tokens long"),
])
def test_bad_input_is_one_line_on_stderr(tiny_pipeline_dir, tmp_path, capsys, case, message):
    Image.new("RGB", (48, 32)).save(tmp_path / "in.png")
    Image.new("L", (16, 16)).save(tmp_path / "small_mask.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    model = ["--model", str(tiny_pipeline_dir), "--steps", "1", "--out", str(tmp_path)]
    argv = {
        "missing_model": ["generate", "--model", str(tmp_path / "nope"), "--prompt", "x"],
        "unreadable_image": ["edit", *model, "--prompt", "x", "--image", str(tmp_path / "broken.png")],
        "size": ["generate", *model, "--prompt", "x", "--width", "4096", "--height", "64"],
        "mask": ["edit", *model, "--prompt", "x", "--image", str(tmp_path / "in.png"), "--mask",
                 str(tmp_path / "small_mask.png")],
        "long_prompt": ["generate", *model, "--prompt", "word " * 1100, "--width", "32", "--height", "32"],
    }[case]
    code, out, err = run(capsys, *argv)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"qwenimage {argv[0]}: error: ") and message in last and "Traceback" not in err


def test_info_and_help_from_the_installed_entry_point(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0 and "20,430,401,088 parameters" in out
    entry_point = Path(sys.executable).with_name("qwenimage")  # the console script pip installed beside python
    done = subprocess.run([str(entry_point), "generate", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: qwenimage generate" in done.stdout
    for command in ("edit", "info", "check"):
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0 and f"usage: qwenimage {command}" in capsys.readouterr().out


def test_check_reports_a_pipeline_folder(tiny_pipeline_dir, capsys):
    code, out, _ = run(capsys, "check", str(tiny_pipeline_dir))
    assert code == 0 and "QwenImageMMDiT" in out and "WanVAE" in out and "all keys matched" in out


def test_tiny_model_then_generate_with_a_lora(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    from qwenimage.cli.generate_cmd import parse_lora_spec

    code, out, _ = run(capsys, "tiny-model", str(tmp_path / "tiny"))
    assert code == 0 and (tmp_path / "tiny" / "model_index.json").is_file()
    # a kohya-style adapter on one attention projection of the tiny model (inner dim 64)
    lora = {"lora_unet_transformer_blocks_0_attn_to_q.lora_down.weight": torch.randn(2, 64) * 0.1,
            "lora_unet_transformer_blocks_0_attn_to_q.lora_up.weight": torch.randn(64, 2) * 0.1,
            "lora_unet_transformer_blocks_0_attn_to_q.alpha": torch.tensor(2.0)}
    save_file(lora, tmp_path / "style.safetensors")
    common = ["generate", "--model", str(tmp_path / "tiny"), "--prompt", "hello", "--width", "64", "--height",
              "48", "--steps", "2", "--seed", "1"]
    code, plain, _ = run(capsys, *common, "--out", str(tmp_path / "a"))
    assert code == 0
    code, styled, _ = run(capsys, *common, "--out", str(tmp_path / "b"), "--lora", f"{tmp_path}/style.safetensors:2")
    assert code == 0
    a, b = Image.open(plain.split()[0]), Image.open(styled.split()[0])
    assert a.size == b.size == (64, 48) and a.tobytes() != b.tobytes()
    assert parse_lora_spec("x/y.safetensors:0.5") == (type(tmp_path)("x/y.safetensors"), 0.5)
    assert parse_lora_spec("C:/loras/y.safetensors")[1] == 1.0


def test_convert_vae_command(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    from qwenimage.vae import WanVAE, vae_preset
    from qwenimage.vae.convert import original_key_map

    vae = WanVAE(vae_preset("tiny-official-layout"))
    ours_to_original = original_key_map(vae)
    state = vae.state_dict()
    save_file({ours_to_original.get(k, k): v.contiguous() for k, v in state.items()}, tmp_path / "wan.safetensors")
    code, out, _ = run(capsys, "convert-vae", str(tmp_path / "wan.safetensors"), str(tmp_path / "vae"),
                       "--preset", "tiny-official-layout")
    assert code == 0 and "AutoencoderKLQwenImage" in out
    loaded = WanVAE.from_pretrained(tmp_path / "vae")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    code, _, err = run(capsys, "convert-vae", str(tmp_path / "wan.safetensors"), str(tmp_path / "vae2"))
    assert code == 2 and "for this config" in err  # the official architecture does not fit the tiny file
