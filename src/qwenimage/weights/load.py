"""Reading and writing safetensors checkpoints in the diffusers component layout.

A component folder holds `config.json` and either one `diffusion_pytorch_model.safetensors` or shards
listed in `diffusion_pytorch_model.safetensors.index.json`. Loading is strict: every key the model
expects must be present with the right shape, and nothing else may be there; errors name the file
and the key. Tensors are read one at a time and assigned into a model built on the meta device, so
a large model never exists twice in memory.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from qwenimage.devices import resolve_device
from qwenimage.weights.config_io import read_json, write_json_atomic
from qwenimage.weights.errors import CheckpointError

log = logging.getLogger(__name__)

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
INDEX_NAME = WEIGHTS_NAME + ".index.json"
SHARD_PATTERN = re.compile(r"^diffusion_pytorch_model-\d{5}-of-\d{5}\.safetensors$")

Shape = tuple[int, ...]


def find_weight_files(folder: Path, name: str = WEIGHTS_NAME) -> list[Path]:
    """The safetensors files of a component folder, from the index when the checkpoint is sharded.

    `name` is the single-file name: diffusers' by default, "model.safetensors" for a transformers model."""
    index_name = name + ".index.json"
    index_path = folder / index_name
    if index_path.is_file():
        index = read_json(index_path, what="shard index")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{index_path}: no 'weight_map' in the shard index")
        files = [folder / name for name in dict.fromkeys(weight_map.values())]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{index_path}: shard files listed in the index are missing: {missing}")
        return files
    single = folder / name
    if single.is_file():
        return [single]
    others = sorted(folder.glob("*.safetensors"))
    if len(others) == 1:
        return others
    if not others:
        raise CheckpointError(f"{folder}: no {name}, {index_name} or other .safetensors file")
    raise CheckpointError(f"{folder}: several .safetensors files and no index: {[o.name for o in others]}")


def read_shapes(files: Iterable[Path]) -> dict[str, tuple[Path, Shape]]:
    """Key -> (file, shape) for every tensor, from the safetensors headers only (no data is read)."""
    found: dict[str, tuple[Path, Shape]] = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    if key in found:
                        raise CheckpointError(f"{path}: key {key!r} also appears in {found[key][0]}")
                    found[key] = (path, tuple(handle.get_slice(key).get_shape()))
        except SafetensorError as err:
            raise CheckpointError(f"{path}: not a readable safetensors file, truncated or corrupt ({err})") from err
    return found


def expected_shapes(model: nn.Module) -> dict[str, Shape]:
    return {key: tuple(t.shape) for key, t in model.state_dict().items()}


def check_against_model(expected: dict[str, Shape], found: dict[str, tuple[Path, Shape]], source: str) -> None:
    """Strict key and shape check; raises one CheckpointError that lists every problem.

    Its first line stands alone (the file, the key and both shapes, or the missing/unexpected keys); the
    other problems follow on the next lines."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    problems = []
    for key in sorted(set(expected) & set(found)):
        path, shape = found[key]
        if shape != expected[key]:
            problems.append(f"{path}: key {key!r} has shape {list(shape)}, the model expects {list(expected[key])}")
    if missing:
        problems.append(f"{source}: missing keys ({len(missing)}): {_preview(missing)}")
    if unexpected:
        problems.append(f"{source}: unexpected keys ({len(unexpected)}): {_preview(unexpected)}")
    if problems:
        more = f"; {len(problems) - 1} more problem(s) below" if len(problems) > 1 else ""
        rest = "".join(f"\n  {problem}" for problem in problems[1:20])
        raise CheckpointError(f"{problems[0]} (the checkpoint does not match the model{more}){rest}")


def load_weights(model: nn.Module, files: list[Path], *, dtype: torch.dtype | None = None,
                 device: str | torch.device = "cpu") -> None:
    """Assign the tensors of `files` into `model` (typically built on the meta device), strictly."""
    device = resolve_device(device)  # a bad device name is the caller's error, not a corrupt file
    found = read_shapes(files)
    check_against_model(expected_shapes(model), found, source=str(files[0].parent))
    for path in files:
        try:
            with safe_open(str(path), framework="pt", device=str(device)) as handle:
                chunk = {key: _cast(handle.get_tensor(key), dtype) for key in handle.keys()}
        except SafetensorError as err:
            raise CheckpointError(f"{path}: failed to read tensor data, truncated or corrupt ({err})") from err
        model.load_state_dict(chunk, strict=False, assign=True)
        del chunk
    assert_materialized(model)


def load_state_dict_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], *, source: str,
                           dtype: torch.dtype | None = None, device: str | torch.device = "cpu") -> None:
    """Strictly load an in-memory state dict (e.g. after a key-name adapter) into `model`."""
    found = {k: (Path(source), tuple(v.shape)) for k, v in state_dict.items()}
    check_against_model(expected_shapes(model), found, source=source)
    model.load_state_dict({k: _cast(v, dtype).to(device) for k, v in state_dict.items()}, strict=True, assign=True)
    assert_materialized(model)


def assert_materialized(model: nn.Module) -> None:
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"tensors left uninitialised after loading: {_preview(left)}")


def save_weights(model: nn.Module, folder: Path, *, max_shard_bytes: int = 10 * 2**30) -> list[Path]:
    """Write the state dict as one file or as shards + index; each file is written atomically."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if any(t.is_meta for t in state.values()):
        raise CheckpointError("cannot save a model that still has tensors on the meta device")
    shards = _split_into_shards(state, max_shard_bytes)
    names = [WEIGHTS_NAME] if len(shards) == 1 else [
        f"diffusion_pytorch_model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for name, shard in zip(names, shards):
        tmp = folder / (name + ".tmp")
        save_file({k: state[k] for k in shard}, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, folder / name)
    index_path = folder / INDEX_NAME
    if len(shards) > 1:
        total = sum(t.numel() * t.element_size() for t in state.values())
        weight_map = {k: name for name, shard in zip(names, shards) for k in shard}
        write_json_atomic(index_path, {"metadata": {"total_size": total}, "weight_map": weight_map})
    _remove_stale(folder, keep=set(names) | ({INDEX_NAME} if len(shards) > 1 else set()))
    return [folder / n for n in names]


def _split_into_shards(state: dict[str, torch.Tensor], max_bytes: int) -> list[list[str]]:
    shards: list[list[str]] = [[]]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(key)
        size += nbytes
    return shards


def _remove_stale(folder: Path, keep: set[str]) -> None:
    for path in folder.iterdir():
        stale = path.name == INDEX_NAME or path.name == WEIGHTS_NAME or SHARD_PATTERN.match(path.name)
        if stale and path.name not in keep:
            log.info("removing stale checkpoint file %s", path)
            path.unlink()


def _cast(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    return tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


def _preview(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def parse_size(size: int | str) -> int:
    """'5GB' / '500MB' / 1024 -> bytes."""
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B)?\s*", size, flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"cannot parse a size from {size!r}; use e.g. '5GB' or '500MB'")
    units = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
    return int(float(match.group(1)) * units.get((match.group(2) or "").lower(), 1))
