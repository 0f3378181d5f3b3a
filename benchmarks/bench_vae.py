"""Image decode/encode speed of our WanVAE against diffusers' AutoencoderKLQwenImage (same weights).

Builds the official VAE config with random weights in diffusers, saves it, loads it with
`WanVAE.from_pretrained`, and times both on one image under torch.inference_mode. Our image path is
all 2D (a T=1 causal conv only meets zero padding in its first two time taps), so it should be about
3x faster on the convolutions. Needs diffusers (a test dependency).

    python benchmarks/bench_vae.py --size 512 --repeats 3 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Callable

import torch


def best_time(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    """Run once to warm up, then `repeats` times; the fastest wall time in seconds and the last output."""
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def build_pair():
    """diffusers' official-config VAE with random weights, and ours loaded from its saved folder."""
    from diffusers import AutoencoderKLQwenImage

    from qwenimage.vae import WanVAE

    torch.manual_seed(0)
    reference = AutoencoderKLQwenImage().eval()
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        ours = WanVAE.from_pretrained(folder)
    return reference, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (multiple of 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up run")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--skip-encode", action="store_true", help="time decode only")
    parser.add_argument("--ablate", action="store_true",
                        help="also time ours with the single-frame fast path off (3D convs, like the reference)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reference, ours = build_pair()
    print(f"official VAE config, {ours.num_parameters() / 1e6:.1f}M parameters, fp32, CPU, {args.threads} threads, "
          f"{args.size}x{args.size} image, best of {args.repeats} after a warm-up")
    torch.manual_seed(1)
    z = torch.randn(1, 16, 1, args.size // 8, args.size // 8)
    x = torch.rand(1, 3, 1, args.size, args.size) * 2 - 1
    runs = {"decode": (lambda: reference.decode(z).sample, lambda: ours.decode(z))}
    if not args.skip_encode:
        runs["encode (mean)"] = (lambda: reference.encode(x).latent_dist.mean, lambda: ours.encode(x).mean)
    with torch.inference_mode():
        for what, (theirs, mine) in runs.items():
            baseline = best_time(theirs, args.repeats)
            report(what, "ours", baseline, best_time(mine, args.repeats))
            if args.ablate:
                ours.single_frame_fast_path = False
                report(what, "ours, 3D path", baseline, best_time(mine, args.repeats))
                ours.single_frame_fast_path = True


def report(what: str, name: str, theirs: tuple[float, torch.Tensor], ours: tuple[float, torch.Tensor]) -> None:
    diff = (theirs[1] - ours[1]).abs().max().item()
    print(f"{what:14s} diffusers {theirs[0]:7.3f} s   {name} {ours[0]:7.3f} s   speed-up {theirs[0] / ours[0]:5.2f}x"
          f"   max abs diff {diff:.2e}")


if __name__ == "__main__":
    main()
