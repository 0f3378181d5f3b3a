"""Transformer forward: qwenimage vs diffusers on the same weights, side by side in one run (CPU, fp32).

    python benchmarks/bench_mmdit.py [--blocks 4 --heads 8 --head-dim 64 --image-tokens 1024 --text-tokens 128]

Prints the median time of each and the ratio diffusers/ours (> 1 means ours is faster), plus the max abs diff.
A third column times qwenimage with its oneDNN CPU linear turned off (plain F.linear, as diffusers uses), to
show what that path contributes (see qwenimage/model/linear.py).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch


def interleaved_medians(fns, repeats: int) -> list[float]:
    """Median wall time of each function, timed in alternation so that machine drift hits both alike."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--image-tokens", type=int, default=1024, help="a square grid: must be a perfect square")
    parser.add_argument("--text-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from diffusers import QwenImageTransformer2DModel

    from qwenimage.model import QwenImageMMDiT
    from qwenimage.model.linear import onednn_linear

    side = int(args.image_tokens**0.5)
    if side * side != args.image_tokens:
        raise SystemExit(f"--image-tokens {args.image_tokens} is not a perfect square")
    rope = (args.head_dim // 8, args.head_dim * 7 // 16, args.head_dim * 7 // 16)
    rope = (rope[0] + args.head_dim - sum(rope), rope[1], rope[2])
    torch.manual_seed(0)
    reference = QwenImageTransformer2DModel(num_layers=args.blocks, num_attention_heads=args.heads,
                                            attention_head_dim=args.head_dim, joint_attention_dim=1024,
                                            axes_dims_rope=rope).eval()
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        ours = QwenImageMMDiT.from_pretrained(folder)

    hidden = torch.randn(1, args.image_tokens, 64)
    text = torch.randn(1, args.text_tokens, 1024)
    t = torch.tensor([0.5])
    shapes = [[(1, side, side)]]
    with torch.inference_mode():
        expected = reference(hidden_states=hidden, encoder_hidden_states=text, timestep=t, img_shapes=shapes,
                             return_dict=False)[0]
        actual = ours(hidden, text, t, shapes)
        def ours_plain_linear():
            with onednn_linear(False):
                return ours(hidden, text, t, shapes)

        t_ref, t_ours, t_plain = interleaved_medians([
            lambda: reference(hidden_states=hidden, encoder_hidden_states=text, timestep=t, img_shapes=shapes,
                              return_dict=False),
            lambda: ours(hidden, text, t, shapes), ours_plain_linear], args.repeats)
    print(f"config: {args.blocks} blocks, {args.heads} heads x {args.head_dim}, "
          f"{args.image_tokens} image + {args.text_tokens} text tokens, threads={torch.get_num_threads()}")
    print(f"diffusers : {t_ref * 1000:8.1f} ms")
    print(f"qwenimage : {t_ours * 1000:8.1f} ms")
    print(f"qwenimage, F.linear only: {t_plain * 1000:8.1f} ms")
    print(f"speed ratio (diffusers / qwenimage): {t_ref / t_ours:.2f}x "
          f"(with F.linear only: {t_ref / t_plain:.2f}x)")
    print(f"max abs diff: {(expected - actual).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
