"""What the glibc malloc settings of `import qwenimage` (src/qwenimage/allocator.py) are worth, in one run.

    python benchmarks/bench_malloc.py [--rounds 3 --repeats 5 --blocks 4 --heads 8 --head-dim 64 --side 32]

The settings are per process, so each measurement is a fresh process: the medium transformer's forward in fp32,
bf16 (where the CPU computes it) and int8-dynamic, with QWENIMAGE_MALLOC_TUNING=1 and =0 in alternation, `rounds`
times each; the median per setting and the ratio untuned / tuned (> 1: the settings pay) are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

from common import add_model_args, load_average, machine

CHILD = textwrap.dedent("""
    import json, sys, tempfile, argparse
    sys.path.insert(0, sys.argv[1])
    import torch
    from bench_mmdit import interleaved_medians
    from bench_quant import random_model
    from common import medium_config
    from qwenimage.devices import cpu_has_bf16
    from qwenimage.model import QwenImageMMDiT
    args = argparse.Namespace(**json.loads(sys.argv[2]))
    config = medium_config(args)
    model = random_model(config)
    variants = {"fp32": (None, torch.float32), "int8-dynamic": ("int8-dynamic", torch.float32)}
    if cpu_has_bf16():
        variants.update({"bf16": (None, torch.bfloat16), "int8-dynamic+bf16": ("int8-dynamic", torch.bfloat16)})
    models = {}
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        for name, (mode, dtype) in variants.items():
            models[name] = QwenImageMMDiT.from_pretrained(folder, quantize=mode, dtype=dtype)
    x = torch.randn(1, args.side * args.side, config.in_channels)
    text = torch.randn(1, args.text, config.joint_attention_dim)
    def run(name):
        dtype = variants[name][1]
        return models[name](x.to(dtype), text.to(dtype), torch.tensor([0.5]), [(1, args.side, args.side)])
    with torch.inference_mode():
        times = interleaved_medians([lambda n=n: run(n) for n in models], args.repeats)
    print(json.dumps(dict(zip(models, times))))
""")


def measure(tuned: bool, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "QWENIMAGE_MALLOC_TUNING": "1" if tuned else "0"}
    fields = {k: getattr(args, k) for k in ("blocks", "heads", "head_dim", "side", "text", "repeats")}
    result = subprocess.run([sys.executable, "-c", CHILD, os.path.dirname(os.path.abspath(__file__)),
                             json.dumps(fields)], capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser, side=32, text=128)
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per setting, in alternation")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per variant in each process")
    args = parser.parse_args()
    print(machine())
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(args.rounds):
        for tuned in (True, False):
            runs[tuned].append(measure(tuned, args))
    print(f"medium config ({args.blocks} blocks, {args.heads} heads x {args.head_dim}, {args.side ** 2} image + "
          f"{args.text} text tokens), forward, median of {args.rounds} processes x {args.repeats} timings:")
    for name in runs[True][0]:
        tuned, untuned = (statistics.median(run[name] for run in runs[flag]) for flag in (True, False))
        print(f"  {name:18s} glibc defaults {untuned * 1e3:7.1f} ms | tuned {tuned * 1e3:7.1f} ms | "
              f"untuned / tuned {untuned / tuned:.2f}x")
    print(f"load average after the run (1/5/15 min): {load_average()}")


if __name__ == "__main__":
    main()
