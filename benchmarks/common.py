"""Shared pieces of the benchmarks: the machine they ran on, the medium config's arguments and a median timer."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time

import torch

from qwenimage.devices import cpu_has_bf16
from qwenimage.model import MMDiTConfig

CPU_FLAGS = ("avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile")  # what decides bf16 / int8 speed


def machine() -> str:
    """lscpu's model name, family and model, its bf16/int8 flags, cores, threads and the load average (uptime):
    a figure means little without them."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}
    except (OSError, subprocess.CalledProcessError):
        fields = {}
    flags = set(fields.get("Flags", "").split())
    present = [f for f in CPU_FLAGS if f in flags] or ["none of avx512_bf16/vnni/amx"]
    return (f"cpu: {fields.get('Model name', platform.processor())} (family {fields.get('CPU family', '?')}, "
            f"model {fields.get('Model', '?')}), {', '.join(present)}, oneDNN bf16: {cpu_has_bf16()}; "
            f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, torch {torch.__version__}; "
            f"load average (1/5/15 min): {load_average()}")


def load_average() -> str:
    """uptime's three load averages: print them again after a run, since the load moves while it runs."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def add_model_args(parser: argparse.ArgumentParser, side: int, text: int) -> None:
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--side", type=int, default=side, help=f"token grid side ({side} -> {side * side} tokens)")
    parser.add_argument("--text", type=int, default=text, help="text tokens")


def medium_config(args: argparse.Namespace, text_dim: int = 512) -> MMDiTConfig:
    """The benchmark transformer; RoPE axes split the head dim like the official (16, 56, 56) of 128."""
    spatial = args.head_dim * 7 // 16
    return MMDiTConfig(num_layers=args.blocks, num_attention_heads=args.heads, attention_head_dim=args.head_dim,
                       joint_attention_dim=text_dim, axes_dims_rope=(args.head_dim - 2 * spatial, spatial, spatial))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, repeats: int, device: torch.device = torch.device("cpu")) -> float:
    """Median wall time of `fn` over `repeats` runs after one warm-up run (waiting for the GPU if any)."""
    fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
