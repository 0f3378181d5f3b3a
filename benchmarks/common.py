"""Shared pieces of the transformer benchmarks: the medium config's arguments and a median timer."""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from qwenimage.model import MMDiTConfig


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
