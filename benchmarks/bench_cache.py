"""Step cache and compiled blocks, end to end on the package's default model (qwenimage-mini).

    python benchmarks/bench_cache.py [--model DIR] [--thresholds 0.08 0.12 0.2] [--prompts 2] [--repeats 1]
                                     [--no-compile]

One image per prompt at the model's native size with its default steps and CFG (128x128, 20 steps, CFG 4 for
qwenimage-mini). Every setting runs in the same process, interleaved round by round, and is printed beside
the uncached eager run: seconds per image (median), speedup, transformer passes skipped (conditional and
unconditional counted apart), and the PSNR of the 8-bit image against the uncached one (the worst prompt).
Then the same for the regional torch.compile of the blocks (compile time printed apart) and its largest
latent difference from eager.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from common import load_average, machine
from qwenimage.eval.image_metrics import psnr
from qwenimage.pipelines.loading import load_pipeline, model_settings
from qwenimage.pipelines.request import GenerationRequest
from qwenimage.sampling.step_cache import DEFAULT_CACHE_THRESHOLD

PROMPTS = ['a shop sign that says "harbor"', "a red bicycle leaning on a blue wall", "a poster with the word OPEN",
           "a bowl of lemons on a wooden table"]


def requests(defaults: dict, prompts: int, threshold: float | None) -> list[GenerationRequest]:
    return [GenerationRequest(p, seed=i, cache_threshold=threshold, width=defaults.get("width", 128),
                              height=defaults.get("height", 128), num_steps=defaults.get("num_steps", 20),
                              true_cfg_scale=defaults.get("true_cfg_scale", 4.0),
                              negative_prompt=defaults.get("negative_prompt", " "))
            for i, p in enumerate(PROMPTS[:prompts])]


def timed(pipe, batch: list[GenerationRequest]) -> tuple[float, list]:
    """Seconds per image, one request at a time (as a user would), and the results."""
    start, results = time.perf_counter(), []
    for request in batch:
        results += pipe.generate(request)
    return (time.perf_counter() - start) / len(batch), results


def bench_cache(pipe, defaults: dict, thresholds: list[float], prompts: int, repeats: int) -> None:
    settings = [None] + thresholds
    timed(pipe, requests(defaults, 1, None))  # warm-up: kernels, caches
    times = {t: [] for t in settings}
    results = {}
    for _ in range(repeats):  # interleaved, so a change in the machine's load hits every setting alike
        for t in settings:
            seconds, results[t] = timed(pipe, requests(defaults, prompts, t))
            times[t].append(seconds)
    steps = defaults.get("num_steps", 20)
    base = statistics.median(times[None])
    print(f"\nstep cache ({prompts} prompts x {repeats} rounds; {steps} steps, CFG: 2 passes per step)")
    print(f"{'threshold':>10} {'s/image':>8} {'speedup':>8} {'skipped passes':>15} {'PSNR dB (min)':>14}")
    for t in settings:
        seconds = statistics.median(times[t])
        skipped = statistics.mean(r.cache_skips for r in results[t])
        worst = min(psnr(np.asarray(r.image), np.asarray(u.image)) for r, u in zip(results[t], results[None]))
        label = "off" if t is None else f"{t:g}" + (" (default)" if t == DEFAULT_CACHE_THRESHOLD else "")
        print(f"{label:>10} {seconds:8.2f} {base / seconds:7.2f}x {skipped:8.1f} / {2 * steps:<4} {worst:14.1f}")


def bench_compile(model: Path, defaults: dict, prompts: int, repeats: int) -> None:
    eager = load_pipeline(model, dtype=torch.float32)
    compiled = load_pipeline(model, dtype=torch.float32)
    start = time.perf_counter()
    if not compiled.compile(fallback=True):
        print("\ncompile: unavailable here (see the warning above)")
        return
    first, _ = timed(compiled, requests(defaults, 1, None))
    compile_seconds = time.perf_counter() - start
    timed(eager, requests(defaults, 1, None))
    times = {"eager": [], "compiled": []}
    outputs = {}
    for _ in range(repeats):
        for name, pipe in (("eager", eager), ("compiled", compiled)):
            seconds, outputs[name] = timed(pipe, requests(defaults, prompts, None))
            times[name].append(seconds)
    diff = max(float((c.latents - e.latents).abs().max()) for c, e in zip(outputs["compiled"], outputs["eager"]))
    e, c = statistics.median(times["eager"]), statistics.median(times["compiled"])
    print(f"\ncompiled blocks (inductor, dynamic shapes): first image incl. compile {compile_seconds:.1f} s "
          f"({first:.1f} s for the image)")
    print(f"eager {e:.2f} s/image, compiled {c:.2f} s/image: compiled / eager = {c / e:.2f} (speedup {e / c:.2f}x); "
          f"max |latent difference| {diff:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="pipeline folder (default: the shipped mini)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.1, DEFAULT_CACHE_THRESHOLD, 0.3])
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds; the median is printed")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile comparison")
    args = parser.parse_args()
    if args.model is None:
        from qwenimage.mini.ship import default_model_dir

        args.model = default_model_dir()
    defaults = model_settings(args.model).get("defaults", {})
    print(machine())
    print(f"model: {args.model}, {defaults.get('width', 128)}x{defaults.get('height', 128)}, "
          f"{defaults.get('num_steps', 20)} steps, CFG {defaults.get('true_cfg_scale', 4.0)}, fp32")
    bench_cache(load_pipeline(args.model, dtype=torch.float32), defaults, args.thresholds, args.prompts,
                args.repeats)
    if not args.no_compile:
        bench_compile(args.model, defaults, args.prompts, args.repeats)
    print(f"\nafter: load average (1/5/15 min): {load_average()}")


if __name__ == "__main__":
    main()
