"""Training checkpoints with exact resume: model, optimizer, LR schedule, EMA, RNG states, step.

Written with torch.distributed.checkpoint (sharded for FSDP2, works unchanged for one process and DDP)
into `checkpoints/step-NNNNNNNN.tmp/`, then `complete.json` (the size of every file, and the SHA-256 of
those up to HASHED_BYTES) is written last, and the folder is renamed to `step-NNNNNNNN/`. So a killed run
never leaves a checkpoint that looks complete, and a file damaged later (truncated by a full disk or a
partial copy, overwritten) is named when the run resumes. Resuming takes the newest checkpoint that loads:
damaged ones are named in a warning and skipped. Checkpoints written before the marker existed ("legacy")
are checked against the shard extents in DCP's `.metadata` and validated by loading them.

Nothing is unpickled unrestricted (a checkpoint folder from elsewhere cannot run code): `trainer-rank<R>.pt`
(step, LR schedule, RNG states) is read with `torch.load(weights_only=True)`, `.metadata` and DCP's
non-tensor values as safe_load.py says. New trainer files hold tensors and plain values only; legacy ones
also hold numpy's RNG state as an array, which is allowed explicitly.

The data position needs no state: the batch plan is a pure function of the step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from qwenimage.train.faults import kill_point
from qwenimage.train.parallel import DistInfo, barrier
from qwenimage.train.safe_load import UnsafePickle, WeightsOnlyLoadPlanner, read_metadata
from qwenimage.weights.errors import CheckpointError

log = logging.getLogger(__name__)

PREFIX = "step-"
MARKER = "complete.json"
MARKER_FORMAT = "qwenimage-train-checkpoint/1"
HASHED_BYTES = 64 << 20  # files up to this size (metadata, trainer state) are hashed; larger shards are sized


def checkpoint_dir(output: Path, step: int) -> Path:
    return output / "checkpoints" / f"{PREFIX}{step:08d}"


def finished_checkpoints(output: Path) -> list[Path]:
    """Renamed (finished) checkpoint folders, oldest first."""
    folder = output / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{PREFIX}*") if p.is_dir() and not p.name.endswith(".tmp"))


def latest_checkpoint(output: Path) -> Path | None:
    done = finished_checkpoints(output)
    return done[-1] if done else None


# ---- RNG state as tensors and plain values ------------------------------------------------------------
def _rng_state() -> dict:
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = torch.from_numpy(numpy_state["state"]["key"].astype(np.int64))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):  # new files: the key as a tensor; legacy files: numpy's tuple
        key = numpy_state["state"]["key"]
        numpy_state = {**numpy_state, "state": {**numpy_state["state"], "key": np.asarray(key, dtype=np.uint32)}}
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _legacy_numpy_globals() -> list:
    """What a legacy trainer-rank file's numpy RNG state (a uint32 array) needs, and nothing more."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_trainer_state(path: Path) -> dict:
    """A trainer-rank file, read without running code from it; CheckpointError names the file."""
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            extra = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - damaged bytes fail in many ways; every one means "unreadable"
        raise CheckpointError(f"{path}: unreadable trainer state ({_describe(err)})") from err
    if not isinstance(extra, dict) or not {"step", "scheduler", "rng"} <= set(extra):
        raise CheckpointError(f"{path}: not a trainer state (expected step, scheduler and rng)")
    return extra


# ---- the completeness marker -------------------------------------------------------------------------
def _fingerprint(path: Path) -> dict:
    size = path.stat().st_size
    if size > HASHED_BYTES:
        return {"size": size}
    return {"size": size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def write_marker(folder: Path, step: int, world: int) -> None:
    """complete.json: every file of the checkpoint with its size (and hash); written last, atomically."""
    files = {p.name: _fingerprint(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MARKER}
    record = {"format": MARKER_FORMAT, "step": step, "world": world, "files": files}
    tmp = folder / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(tmp, folder / MARKER)


def verify_files(folder: Path) -> None:
    """CheckpointError naming the first file that is missing, shorter than needed or has other bytes: checked
    against complete.json, and against the shard extents DCP's .metadata lists (all a legacy one has)."""
    marker = folder / MARKER
    if marker.is_file():
        _verify_marker(folder, marker)
    _verify_extents(folder)


def _verify_marker(folder: Path, marker: Path) -> None:
    try:
        files = json.loads(marker.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{marker}: unreadable completeness marker ({err})") from err
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing (listed in {MARKER})")
        if path.stat().st_size != expected["size"]:
            raise CheckpointError(f"{path}: {path.stat().st_size} bytes, {MARKER} says {expected['size']} "
                                  "(truncated or overwritten)")
        if "sha256" in expected and _fingerprint(path).get("sha256") != expected["sha256"]:
            raise CheckpointError(f"{path}: its SHA-256 differs from {MARKER} (damaged)")


def _verify_extents(folder: Path) -> None:
    try:
        metadata = read_metadata(folder / ".metadata")
    except Exception as err:  # noqa: BLE001 - a damaged pickle fails in many ways
        raise CheckpointError(f"{folder / '.metadata'}: unreadable ({_describe(err)})") from err
    needed: dict[str, int] = {}
    for info in (metadata.storage_data or {}).values():
        needed[info.relative_path] = max(needed.get(info.relative_path, 0), info.offset + info.length)
    for name, size in sorted(needed.items()):
        path = folder / name
        if not path.is_file() or path.stat().st_size < size:
            have = f"{path.stat().st_size} bytes" if path.is_file() else "missing"
            raise CheckpointError(f"{path}: {have}, .metadata needs {size} (truncated)")


# ---- save and load -----------------------------------------------------------------------------------
def _states(model, optimizer, ema) -> dict:
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    if ema is not None:
        state["ema"] = ema.state_dict()
    return state


def save_checkpoint(output: Path, step: int, model, optimizer, scheduler, ema, info: DistInfo, keep: int = 2) -> Path:
    final = checkpoint_dir(output, step)
    tmp = final.with_name(final.name + ".tmp")
    if info.is_main and tmp.exists():
        shutil.rmtree(tmp)
    barrier()
    dcp.save(_states(model, optimizer, ema), checkpoint_id=str(tmp))
    torch.save({"step": step, "scheduler": scheduler.state_dict(), "rng": _rng_state()},
               tmp / f"trainer-rank{info.rank}.pt")
    kill_point("checkpoint", step)
    barrier()
    if info.is_main:
        write_marker(tmp, step, info.world)
        if final.exists():  # a damaged checkpoint of this step, skipped when the run resumed
            shutil.rmtree(final)
        tmp.rename(final)
        for old in finished_checkpoints(output)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def load_checkpoint(path: Path, model, optimizer, scheduler, ema, info: DistInfo) -> int:
    """Restore everything saved by save_checkpoint; returns the step to continue from. CheckpointError names
    the damaged file (or the folder, for a legacy checkpoint that fails to load)."""
    verify_files(path)
    trainer_file = path / f"trainer-rank{info.rank}.pt"
    if not trainer_file.is_file():
        raise CheckpointError(f"{path}: no {trainer_file.name}; was it written with another number of ranks?")
    extra = load_trainer_state(trainer_file)
    state = _states(model, optimizer, ema)
    try:
        dcp.load(state, checkpoint_id=str(path), planner=WeightsOnlyLoadPlanner())
    except (Exception, CheckpointException) as err:  # noqa: BLE001 - any failure means this one cannot resume
        raise CheckpointError(f"{path}: cannot load the model and optimizer state ({_describe(err)})") from err
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    if ema is not None:
        ema.load_state_dict(state["ema"])
    scheduler.load_state_dict(extra["scheduler"])
    _set_rng_state(extra["rng"])
    return int(extra["step"])


def resume(output: Path, model, optimizer, scheduler, ema, info: DistInfo) -> int:
    """Load the newest checkpoint that loads (0 when there is none); damaged ones are named and skipped. If
    every checkpoint is damaged the run stops rather than start over from scratch."""
    problems = []
    for path in reversed(finished_checkpoints(output)):
        try:
            step = load_checkpoint(path, model, optimizer, scheduler, ema, info)
        except CheckpointError as err:
            log.warning("skipping checkpoint %s: %s", path.name, err)
            problems.append(str(err))
            continue
        log.info("resumed from %s at step %d", path, step)
        return step
    if problems:
        raise CheckpointError(f"no checkpoint in {output / 'checkpoints'} loads: {'; '.join(problems)} "
                              "(move the folder away to train from the start)")
    return 0


def _describe(err: BaseException) -> str:
    """One short line: DCP's per-rank failure, the global a weights-only load refused, or the first line."""
    if isinstance(err, CheckpointException) and err.failures:
        err = next(iter(err.failures.values()))[0]
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if isinstance(err, UnsafePickle):
        return str(err)
    if refused:
        return f"refused to unpickle {refused.group(1)}: a checkpoint may hold only tensors and plain values"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:300]
