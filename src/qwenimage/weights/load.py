"""Reading and writing safetensors checkpoints in the diffusers component layout.

A component folder holds `config.json` and either one `diffusion_pytorch_model.safetensors` or shards
listed in `diffusion_pytorch_model.safetensors.index.json`. Loading is strict: every key the model
expects must be present with the right shape, and nothing else may be there; errors name the file
and the key. Tensors are assigned module by module into a model built on the meta device, so a large
model never exists twice in memory. On the CPU safetensors hands out tensors that live in the file's memory
map (copy-on-write): loading in the stored dtype copies nothing, and pages are read when first used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Callable, Iterable

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
ModuleHook = Callable[[str, nn.Module], None]
Flatten = Callable[[dict[str, torch.Tensor]], tuple[dict[str, torch.Tensor], dict[str, str]]]
READ_BATCH_ELEMENTS = 4 * 2**20  # tensors read per opening of a file when a hook replaces them


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
                 device: str | torch.device = "cpu", after_module: ModuleHook | None = None) -> None:
    """Assign the tensors of `files` into `model` (typically built on the meta device), strictly.

    Tensors are assigned module by module; `after_module(name, module)` runs after each (the quantiser).
    With a hook, the file is reopened every ~16 MB read and what the hook keeps is copied out of its mapping,
    so the pages of the full-precision weights it replaces do not stay resident."""
    device = resolve_device(device)  # a bad device name is the caller's error, not a corrupt file
    found = read_shapes(files)
    check_against_model(expected_shapes(model), found, source=str(files[0].parent))
    batch_elements = READ_BATCH_ELEMENTS if after_module is not None else None
    for path in files:
        keys = [key for key, (source, _) in found.items() if source == path]
        for batch in _module_batches(keys, {k: found[k][1] for k in keys}, batch_elements):
            try:
                with safe_open(str(path), framework="pt", device=str(device)) as handle:
                    for prefix, names in batch:
                        module = model.get_submodule(prefix)
                        chunk = {name: _cast(handle.get_tensor(f"{prefix}.{name}" if prefix else name), dtype)
                                 for name in names}
                        module.load_state_dict(chunk, strict=False, assign=True)
                        if after_module is not None:
                            after_module(prefix, module)
                            _copy_out_of_mapping(module, chunk)
                            _return_freed_memory()
            except SafetensorError as err:
                raise CheckpointError(f"{path}: failed to read tensor data, truncated or corrupt ({err})") from err
    assert_materialized(model)


def split_key(key: str) -> tuple[str, str]:
    """'transformer_blocks.0.attn.to_q.weight' -> ('transformer_blocks.0.attn.to_q', 'weight')."""
    prefix, _, name = key.rpartition(".")
    return prefix, name


def _module_batches(keys: list[str], shapes: dict[str, Shape],
                    max_elements: int | None) -> Iterable[list[tuple[str, list[str]]]]:
    """Keys grouped by module (in file order), in batches of about `max_elements` (None: one batch)."""
    modules: dict[str, list[str]] = {}
    for key in keys:
        prefix, name = split_key(key)
        modules.setdefault(prefix, []).append(name)
    batch, size = [], 0
    for prefix, names in modules.items():
        batch.append((prefix, names))
        size += sum(math.prod(shapes[f"{prefix}.{n}" if prefix else n]) for n in names)
        if max_elements is not None and size >= max_elements:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _return_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc only). The full-precision temporaries freed while
    quantising otherwise stay in the process between the small quantised tensors, as if still in use."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _glibc() if sys.platform.startswith("linux") else None


def _copy_out_of_mapping(module: nn.Module, chunk: dict[str, torch.Tensor]) -> None:
    """Copy the tensors the hook kept as read (biases, norms) so that the file mapping can close."""
    for name, tensor in chunk.items():
        current = getattr(module, name)
        if type(current) in (torch.Tensor, nn.Parameter) and current.data_ptr() == tensor.data_ptr():
            current.data = current.data.clone()


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


def save_weights(model: nn.Module, folder: Path, *, max_shard_bytes: int = 10 * 2**30,
                 flatten: Flatten | None = None) -> list[Path]:
    """Write the state dict as one file or as shards + index; each file is written atomically.

    `flatten` turns the state dict into plain tensors + string metadata (torchao's quantised tensors); each
    file then carries the metadata of its own tensors under the same names, and a module never spans files."""
    state = {k: v.detach() for k, v in model.state_dict().items()}
    if any(t.is_meta for t in state.values()):
        raise CheckpointError("cannot save a model that still has tensors on the meta device")
    tensors, metadata = flatten(state) if flatten else (state, {})
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    shards = _split_into_shards(tensors, max_shard_bytes)
    names = [WEIGHTS_NAME] if len(shards) == 1 else [
        f"diffusion_pytorch_model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for name, shard in zip(names, shards):
        tmp = folder / (name + ".tmp")
        save_file({k: tensors[k] for k in shard}, str(tmp),
                  metadata={"format": "pt", **_shard_metadata(metadata, shard)})
        os.replace(tmp, folder / name)
    index_path = folder / INDEX_NAME
    if len(shards) > 1:
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        weight_map = {k: name for name, shard in zip(names, shards) for k in shard}
        write_json_atomic(index_path, {"metadata": {"total_size": total}, "weight_map": weight_map})
    _remove_stale(folder, keep=set(names) | ({INDEX_NAME} if len(shards) > 1 else set()))
    return [folder / n for n in names]


def _shard_metadata(metadata: dict[str, str], shard: list[str]) -> dict[str, str]:
    """The flattened metadata of the tensors whose keys (`a.weight`, or flattened `a._weight_qdata`) are in `shard`."""
    if not metadata:
        return {}
    modules = {split_key(key)[0] for key in shard}
    names = [n for n in json.loads(metadata["tensor_names"]) if split_key(n)[0] in modules]
    return {"tensor_names": json.dumps(names), **{n: metadata[n] for n in names}}


def _split_into_shards(state: dict[str, torch.Tensor], max_bytes: int) -> list[list[str]]:
    """Consecutive keys in files of at most `max_bytes` (or one module), never splitting a module."""
    shards: list[list[str]] = [[]]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        new_module = not shards[-1] or split_key(shards[-1][-1])[0] != split_key(key)[0]
        if shards[-1] and size + nbytes > max_bytes and new_module:
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
