"""Training checkpoints with exact resume: model, optimizer, LR schedule, EMA, RNG states, step.

Written with torch.distributed.checkpoint (sharded for FSDP2, works unchanged for one process and DDP)
into `checkpoints/step-NNNNNNNN.tmp/`, renamed to `step-NNNNNNNN/` once every rank has written, so a
killed run never leaves a checkpoint that looks complete but is not. The data position needs no state:
the batch plan is a pure function of the step.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from qwenimage.train.parallel import DistInfo, barrier

PREFIX = "step-"


def checkpoint_dir(output: Path, step: int) -> Path:
    return output / "checkpoints" / f"{PREFIX}{step:08d}"


def latest_checkpoint(output: Path) -> Path | None:
    folder = output / "checkpoints"
    done = sorted(p for p in folder.glob(f"{PREFIX}*") if p.is_dir() and not p.name.endswith(".tmp")) \
        if folder.is_dir() else []
    return done[-1] if done else None


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(output: Path, step: int, model, optimizer, scheduler, ema, info: DistInfo, keep: int = 2) -> Path:
    final = checkpoint_dir(output, step)
    tmp = final.with_name(final.name + ".tmp")
    if info.is_main and tmp.exists():
        shutil.rmtree(tmp)
    barrier()
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    if ema is not None:
        state["ema"] = ema.state_dict()
    dcp.save(state, checkpoint_id=str(tmp))
    torch.save({"step": step, "scheduler": scheduler.state_dict(), "rng": _rng_state()},
               tmp / f"trainer-rank{info.rank}.pt")
    barrier()
    if info.is_main:
        tmp.rename(final)
        for old in sorted((output / "checkpoints").glob(f"{PREFIX}*"))[:-keep]:
            if not old.name.endswith(".tmp"):
                shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def load_checkpoint(path: Path, model, optimizer, scheduler, ema, info: DistInfo) -> int:
    """Restore everything saved by save_checkpoint; returns the step to continue from."""
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    if ema is not None:
        state["ema"] = ema.state_dict()
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    if ema is not None:
        ema.load_state_dict(state["ema"])
    trainer_file = path / f"trainer-rank{info.rank}.pt"
    if not trainer_file.is_file():
        raise ValueError(f"{path}: no {trainer_file.name}; was it written with another number of ranks?")
    extra = torch.load(trainer_file, weights_only=False)
    scheduler.load_state_dict(extra["scheduler"])
    _set_rng_state(extra["rng"])
    return int(extra["step"])
