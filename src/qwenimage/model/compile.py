"""Regional `torch.compile`: compile the repeated transformer block, not the whole model.

All N blocks share one forward, so one compiled graph serves every block (their weights are graph inputs),
and compiling with dynamic shapes lets one graph serve every batch size and sequence length of a bucket, so
compile time stays that of one block. The model itself is untouched (applied from outside, like offload).
On CPU inductor generates C++ and needs a working C compiler; when compiling cannot work here
`compile_blocks` raises one clear line (or, with `fallback=True`, logs it and leaves the model eager).
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


class CompileUnavailableError(ValueError):
    """torch.compile cannot run on this machine (no C compiler, backend error, unsupported device)."""


@functools.lru_cache(maxsize=None)
def compile_problem(device_type: str, backend: str = "inductor") -> str | None:
    """None when `backend` compiles and runs a small dynamic-shape function on `device_type`, else why not
    (the error's first line). Checked once per process and device type."""
    def probe(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.silu(x) * 2 + 1

    try:
        compiled = torch.compile(probe, backend=backend, dynamic=True)
        x = torch.arange(6.0, device=device_type)
        if not torch.allclose(compiled(x), probe(x)):
            return "the compiled probe gives a different result"
    except Exception as err:  # noqa: BLE001  (any failure means: not usable here)
        lines = str(err).strip().splitlines()
        return f"{type(err).__name__}: {lines[0] if lines else ''}".strip()
    return None


def compile_blocks(model: nn.Module, *, dynamic: bool = True, backend: str = "inductor",
                   fallback: bool = False) -> bool:
    """Compile each of `model.transformer_blocks` in place; True when compiled, False when left eager
    (only with `fallback=True`). Raises CompileUnavailableError when compiling cannot work here."""
    blocks = getattr(model, "transformer_blocks", None)
    if not isinstance(blocks, nn.ModuleList) or not len(blocks):
        raise ValueError(f"compile_blocks needs a model with transformer_blocks, got {type(model).__name__}")
    device = next(model.parameters()).device
    problem = compile_problem(device.type, backend)
    if problem is not None:
        message = f"torch.compile ({backend}) does not work on {device.type} here: {problem}"
        if not fallback:
            raise CompileUnavailableError(f"{message}; run without --compile")
        log.warning("%s; running the transformer blocks uncompiled", message)
        return False
    for block in blocks:
        block.compile(backend=backend, dynamic=dynamic)
    log.info("compiled %d transformer blocks (%s, dynamic=%s); the first step pays the compile", len(blocks),
             backend, dynamic)
    return True


def is_compiled(model: nn.Module) -> bool:
    """True when the blocks of `model` run compiled."""
    return any(getattr(block, "_compiled_call_impl", None) is not None for block in model.transformer_blocks)
