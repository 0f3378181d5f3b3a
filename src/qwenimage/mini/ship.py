"""Assemble, ship and find qwenimage-mini: a complete diffusers folder inside the package, checked by hashes.

    assemble_pipeline("outputs/mini/base", "outputs/mini/train/exports/step-00004000/transformer",
                      "outputs/mini/snap-4000")               # a pipeline folder to evaluate or to ship
    edit_variant(SHIPPED_DIR, "outputs/mini/edit-base")       # the same model as an edit pipeline (TI2I base)
    ship(folder)                                              # copy it into the package as the default model
    default_model_dir()                                       # the shipped folder (verified), for `generate`

The shipped weights are bf16 safetensors (the CLI computes in fp32 on CPU). `manifest.json`, written last,
lists every file with its size and SHA-256, so a missing or damaged file is named in one line instead of
failing somewhere inside a loader.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from qwenimage.weights.config_io import write_json_atomic

SHIPPED_DIR = Path(__file__).resolve().parent / "model"
MANIFEST = "manifest.json"
COMPONENTS = ("tokenizer", "processor", "text_encoder", "vae", "scheduler", "transformer")
TOP_FILES = ("model_index.json", "qwenimage.json")
# components stored in half precision when shipped (computation runs in the dtype the pipeline loads with); the text
# encoder too since stop 37: its prompt embeddings move by 0.2% (relative norm) and the measured scores did not
# move (docs/mini, stop 37), while it halves to 5 MB and the shipped folder fits its 60 MB budget
HALVED = ("text_encoder", "vae", "transformer")
SHIPPED_BUDGET_BYTES = 60_000_000  # weights of the model inside the package (git keeps every version)


def _to_dtype(folder: Path, dtype: torch.dtype) -> None:
    """Rewrite every floating-point tensor of the folder's safetensors files in `dtype`, in place."""
    from safetensors.torch import load_file, save_file

    for path in folder.glob("*.safetensors"):
        tensors = load_file(str(path))
        converted = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        tmp = path.with_name(path.name + ".tmp")
        save_file(converted, str(tmp), metadata={"format": "pt"})
        tmp.replace(path)
    config = folder / "config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        if "torch_dtype" in data or "dtype" in data:  # transformers' record of the stored dtype
            key = "dtype" if "dtype" in data else "torch_dtype"
            data[key] = str(dtype).removeprefix("torch.")
            write_json_atomic(config, data)


def assemble_pipeline(base: str | Path, transformer: str | Path, out: str | Path,
                      dtype: torch.dtype | None = torch.bfloat16, text_encoder: str | Path | None = None,
                      text_focus: dict | None = None) -> Path:
    """A pipeline folder from the base components (tokenizer, text encoder, VAE, ...) and a trained transformer
    folder; the VAE and transformer weights converted to `dtype` (None keeps them). The manifest is written last.

    The text encoder: `text_encoder`, else a `text_encoder/` beside the transformer folder (a run that trained
    it jointly exports both side by side), else the base's. `text_focus`: the geometry the transformer writes text
    in (qwenimage.json's "text_focus", e.g. build.MINI_TEXT_FOCUS), replacing the base's; only for a base that
    edits on the canvas that geometry was measured on."""
    base, transformer, out = Path(base), Path(transformer), Path(out)
    if text_encoder is None:
        beside = transformer.parent / "text_encoder"
        text_encoder = beside if (beside / "config.json").is_file() else base / "text_encoder"
    text_encoder = Path(text_encoder)
    for needed in (base / "model_index.json", transformer / "config.json", text_encoder / "config.json"):
        if not needed.is_file():
            raise FileNotFoundError(f"cannot assemble qwenimage-mini: {needed} is missing")
    settings = None if text_focus is None else _with_text_focus(base / "qwenimage.json", text_focus)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in COMPONENTS:
        source = {"transformer": transformer, "text_encoder": text_encoder}.get(name, base / name)
        shutil.copytree(source, tmp / name)
        if dtype is not None and name in HALVED:
            _to_dtype(tmp / name, dtype)
    for name in TOP_FILES:
        shutil.copy2(base / name, tmp / name)
    if settings is not None:
        write_json_atomic(tmp / "qwenimage.json", settings)
    write_manifest(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _with_text_focus(settings_path: Path, text_focus: dict) -> dict:
    settings = json.loads(settings_path.read_text()) if settings_path.is_file() else {}
    area = settings.get("size_limits", {}).get("edit_area")
    canvas = text_focus.get("width", 0) * text_focus.get("height", 0)
    if area != canvas:
        raise ValueError(f"text_focus is measured on a {text_focus.get('width')}x{text_focus.get('height')} canvas, "
                         f"but {settings_path} edits on an area of {area} pixels")
    return {**settings, "text_focus": text_focus}


def edit_variant(source: str | Path, out: str | Path, edit_side: int | None = None) -> Path:
    """The pipeline folder `source` as an edit model (QwenImageEditPipeline): the same components (the processor
    folder included: the text encoder has a vision tower), model_index.json naming the edit class and the
    processor, and qwenimage.json declaring the edit area: condition images of edit_side x edit_side pixels
    (default: the mini's native 128x128) and the edit defaults (CFG 1). Text-to-image still works from it.
    Written beside `out` and renamed; the manifest is written last."""
    from qwenimage.mini.build import EDIT_PIPELINE_CLASS, MINI_SETTINGS, MINI_TEXT_FOCUS, NATIVE_SIZE
    from qwenimage.tiny import model_index

    source, out = Path(source), Path(out)
    side, max_side = edit_side or NATIVE_SIZE, MINI_SETTINGS["size_limits"]["max_side"]
    if not (32 <= side <= max_side and side % 16 == 0):
        raise ValueError(f"edit side {side} is out of range: it must be a multiple of 16 within 32..{max_side} pixels")
    for needed in ("model_index.json", "processor/preprocessor_config.json", "text_encoder/config.json"):
        if not (source / needed).is_file():
            raise ValueError(f"cannot make an edit model of {source}: {needed} is missing")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(MANIFEST))
    index = json.loads((source / "model_index.json").read_text())
    write_json_atomic(tmp / "model_index.json", {**index, "_class_name": EDIT_PIPELINE_CLASS,
                                                 "processor": model_index(EDIT_PIPELINE_CLASS)["processor"]})
    settings_path = tmp / "qwenimage.json"
    settings = json.loads(settings_path.read_text()) if settings_path.is_file() else {}
    limits = {**settings.get("size_limits", {}), "edit_area": side * side}
    edit_defaults = {**MINI_SETTINGS["edit_defaults"], **settings.get("edit_defaults", {})}
    settings = {**settings, "size_limits": limits, "edit_defaults": edit_defaults}
    if side == NATIVE_SIZE:
        settings.setdefault("text_focus", MINI_TEXT_FOCUS)
    else:  # the 128-px sign geometry does not hold on another canvas
        settings.pop("text_focus", None)
    write_json_atomic(settings_path, settings)
    write_manifest(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    entries = {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": _digest(p)} for p in files}
    write_json_atomic(folder / MANIFEST, {"files": entries})


def verify_folder(folder: Path) -> None:
    """Every file the manifest lists exists with its size and hash; else a ValueError naming the file."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise ValueError(f"the default model is incomplete: {manifest} is missing (reinstall qwenimage, or "
                         f"pass --model FOLDER)")
    try:
        entries = json.loads(manifest.read_text())["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"the default model's manifest {manifest} is damaged ({err})") from None
    for name, entry in entries.items():
        path = folder / name
        if not path.is_file():
            raise ValueError(f"the default model is missing {path} (reinstall qwenimage, or pass --model FOLDER)")
        if path.stat().st_size != entry["bytes"] or _digest(path) != entry["sha256"]:
            raise ValueError(f"the default model's file {path} is damaged: its size or SHA-256 does not match "
                             f"{MANIFEST} (reinstall qwenimage, or pass --model FOLDER)")


def ship(folder: str | Path, target: Path = SHIPPED_DIR) -> Path:
    """Copy an assembled pipeline folder into the package as the default model (verified first)."""
    folder = Path(folder)
    verify_folder(folder)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(folder, tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def default_model_dir(verify: bool = True) -> Path:
    """The shipped qwenimage-mini folder; a ValueError naming the file when it is missing or damaged."""
    if not (SHIPPED_DIR / "model_index.json").is_file() and not (SHIPPED_DIR / MANIFEST).is_file():
        raise ValueError(f"no default model in this installation ({SHIPPED_DIR} is missing): pass --model FOLDER "
                         f"or set QWENIMAGE_MODEL")
    if verify:
        verify_folder(SHIPPED_DIR)
    return SHIPPED_DIR
