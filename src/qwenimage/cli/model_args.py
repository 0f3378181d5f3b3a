"""Flags that choose how a model is loaded and sampled, shared by `generate`/`edit`, `eval text` and `serve`/`ui`:
one spelling, one help text and one parser for each, so a setting measured with `eval text` is the one `serve`
runs. What they become: load_pipeline's `revision`, `quantize` and `scheduler`, pipe.compile(), and
GenerationRequest.cache_threshold / .scheduler."""

from __future__ import annotations

import argparse

from qwenimage.sampling.schedule import ScheduleConfig, override_schedule, parse_schedule_overrides
from qwenimage.sampling.step_cache import DEFAULT_CACHE_THRESHOLD
from qwenimage.weights.quantize import QUANTIZE_MODES



def add_model_arguments(p: argparse.ArgumentParser, *, revision: bool = True, cache: bool = True) -> None:
    """--revision, --quantize, --compile, --scheduler and (with `cache`) --cache-threshold."""
    if revision:
        p.add_argument("--revision", default=None,
                       help="Hub branch, tag or commit to pin a repo id to (default: main)")
    p.add_argument("--quantize", choices=QUANTIZE_MODES, default=None,
                   help="quantise the transformer's linears while loading (torchao): int8 weights, int8 weights and "
                        "activations, or fp8 (CUDA, compute capability >= 8.9) (default: off)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the transformer blocks (the first step pays the compile; CPU needs a C "
                        "compiler)")
    p.add_argument("--scheduler", action="append", default=[], metavar="KEY=VALUE",
                   help="override the model's scheduler config, repeatable: shift=3 samples with that fixed shift "
                        "instead of the resolution-dependent one (Lightning 8/4-step LoRAs: --steps 8 --scheduler "
                        "shift=3 --scheduler shift_terminal=none); keys are those of scheduler_config.json")
    if cache:
        p.add_argument("--cache-threshold", type=float, nargs="?", const=DEFAULT_CACHE_THRESHOLD, default=None,
                       metavar="X",
                       help="step cache: skip the transformer's later blocks on steps where its first block's "
                            "output changed (relatively) less than X since the last full step; faster, slightly "
                            f"different images. Alone: {DEFAULT_CACHE_THRESHOLD} (default: off)")


def scheduler_overrides(args: argparse.Namespace) -> dict[str, object]:
    """--scheduler KEY=VALUE flags as a checked dict (ValueError naming a bad key or value)."""
    overrides = dict(parse_schedule_overrides(getattr(args, "scheduler", [])))
    override_schedule(ScheduleConfig(), overrides)  # unknown keys and bad values, before any model loads
    return overrides
