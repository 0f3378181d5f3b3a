"""qwenimage-mini on this CPU: one image at the native size with the model's default steps and CFG.

    python benchmarks/bench_mini.py [--model DIR] [--repeats 5] [--threads 2]

Prints (1) the cold start: a fresh `qwenimage generate` process from launch to the PNG on disk (interpreter,
imports, loading and hash-checking the weights, sampling, saving), and (2) the warm time of one image in a
loaded pipeline (median of --repeats), each beside its target (10 s and 3 s on 2 CPU cores). The default
model is the shipped one; --model measures any mini-layout folder (e.g. a training snapshot).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from qwenimage.pipelines.loading import load_pipeline, model_settings
from qwenimage.pipelines.request import GenerationRequest

PROMPT = 'a shop sign that says "harbor"'


def cold_start(model: Path | None, threads: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "qwenimage.cli.main", "generate", "--prompt", PROMPT, "--out", out]
        if model is not None:
            command += ["--model", str(model)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env, capture_output=True)
        elapsed = time.perf_counter() - start
        if not list(Path(out).glob("*.png")):
            raise RuntimeError("generate wrote no image")
    return elapsed


def warm(model: Path, repeats: int) -> tuple[float, dict]:
    defaults = model_settings(model).get("defaults", {})
    pipe = load_pipeline(model, dtype=torch.float32)
    request = dict(width=defaults.get("width", 128), height=defaults.get("height", 128),
                   num_steps=defaults.get("num_steps", 20), true_cfg_scale=defaults.get("true_cfg_scale", 4.0),
                   negative_prompt=defaults.get("negative_prompt", " "))
    times = []
    for i in range(repeats + 1):  # the first call warms the kernels up
        start = time.perf_counter()
        pipe.generate(GenerationRequest(PROMPT, seed=i, **request))
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]), request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a mini-layout folder (default: the shipped model)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (OMP_NUM_THREADS / torch)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from qwenimage.mini.ship import default_model_dir

    model = args.model or default_model_dir()
    cold = cold_start(args.model, args.threads)
    seconds, request = warm(model, args.repeats)
    print(f"model {model}: {request['width']}x{request['height']}, {request['num_steps']} steps, "
          f"CFG {request['true_cfg_scale']}, {args.threads} threads")
    print(f"cold start (new process to PNG): {cold:.2f} s   (target <= 10 s)")
    print(f"one image, warm (median of {args.repeats}): {seconds:.2f} s   (target <= 3 s)")


if __name__ == "__main__":
    main()
