"""The default model: found without --model, checked against its manifest, named in one line when damaged;
the model's own default size / steps / CFG are used when the command line does not set them."""

import argparse
import json
import shutil

import pytest

import qwenimage.mini.ship as ship_module
from qwenimage.cli.generate_cmd import apply_model_defaults, resolve_model
from qwenimage.cli.main import main
from qwenimage.mini.ship import default_model_dir, ship, write_manifest


@pytest.fixture
def shipped(tmp_path, monkeypatch, tiny_t2i_pipeline_dir):
    """A copy of the tiny pipeline, with a manifest, shipped into a temporary package folder."""
    folder = tmp_path / "assembled"
    shutil.copytree(tiny_t2i_pipeline_dir, folder)
    (folder / "qwenimage.json").write_text(json.dumps({"size_limits": {"min_side": 32, "max_side": 256},
                                                      "defaults": {"width": 64, "height": 32, "num_steps": 2,
                                                                   "true_cfg_scale": 3.0, "negative_prompt": " "}}))
    write_manifest(folder)
    target = tmp_path / "package" / "model"
    monkeypatch.setattr(ship_module, "SHIPPED_DIR", target)
    monkeypatch.delenv("QWENIMAGE_MODEL", raising=False)
    ship(folder, target)
    return target


def test_generate_uses_the_shipped_model_and_its_defaults(shipped, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("qwenimage.mini.ship.SHIPPED_DIR", shipped)
    code = main(["generate", "--prompt", 'a sign that says "hello"', "--out", str(tmp_path / "out")])
    assert code == 0
    from PIL import Image

    (path,) = (tmp_path / "out").glob("*.png")
    image = Image.open(path)
    assert image.size == (64, 32)
    parameters = json.loads(image.info["parameters"])
    assert parameters["steps"] == 2 and parameters["true_cfg_scale"] == 3.0 and parameters["negative_prompt"] == " "


def test_command_line_values_win_over_the_model_defaults(shipped):
    args = argparse.Namespace(model=None, steps=5, cfg=None, negative_prompt=None, width=None, height=None,
                              aspect=None)
    resolve_model(args)
    apply_model_defaults(args)
    assert (args.model, args.steps, args.cfg, args.width, args.height) == (shipped, 5, 3.0, 64, 32)


def test_instruction_edits_take_the_models_edit_defaults_over_its_defaults(shipped):
    settings = json.loads((shipped / "qwenimage.json").read_text())
    settings["edit_defaults"] = {"true_cfg_scale": 1.0}
    (shipped / "qwenimage.json").write_text(json.dumps(settings))

    def filled(edit: bool, cfg=None) -> argparse.Namespace:
        args = argparse.Namespace(model=shipped, steps=None, cfg=cfg, negative_prompt=None, width=None, height=None)
        apply_model_defaults(args, with_size=False, edit=edit)
        return args

    assert (filled(edit=True).cfg, filled(edit=True).steps) == (1.0, 2)  # edit_defaults over defaults
    assert filled(edit=False).cfg == 3.0  # text-to-image (and img2img / inpainting) keep "defaults"
    assert filled(edit=True, cfg=5.0).cfg == 5.0  # the command line still wins


def test_a_damaged_or_missing_file_is_named_in_one_line(shipped, capsys):
    weights = next(shipped.glob("transformer/*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    assert main(["generate", "--prompt", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(weights) in err and "damaged" in err
    weights.unlink()
    with pytest.raises(ValueError, match="missing .*safetensors"):
        default_model_dir()


def test_no_default_model_says_how_to_choose_one(tmp_path, monkeypatch):
    monkeypatch.setattr(ship_module, "SHIPPED_DIR", tmp_path / "nothing")
    with pytest.raises(ValueError, match="--model FOLDER"):
        default_model_dir()


def test_the_shipped_model_keeps_its_weights_in_bf16_within_the_budget():
    """Every weight file of the model inside the package is bf16, and all of them fit SHIPPED_BUDGET_BYTES."""
    from safetensors import safe_open

    folder = ship_module.SHIPPED_DIR
    files = sorted(folder.glob("*/*.safetensors"))
    assert {path.parent.name for path in files} == {"text_encoder", "vae", "transformer"}
    for path in files:
        with safe_open(str(path), "pt") as handle:
            dtypes = {handle.get_slice(key).get_dtype() for key in handle.keys()}
        assert dtypes == {"BF16"}, (path, dtypes)
    total = sum(path.stat().st_size for path in files)
    assert total <= ship_module.SHIPPED_BUDGET_BYTES, f"{total:,} bytes of weights"
