"""True CFG: one batched forward (cond + uncond) vs two sequential forwards, per sampling step.

    python benchmarks/bench_cfg.py [--blocks 4 --heads 8 --head-dim 64 --side 16 --text 64 --repeats 5]
                                   [--device cuda --dtype bf16]

Runs the same guided velocity function both ways on the same inputs, prints the median time per step of
each, their ratio (sequential / batched; > 1 means batching wins) and the max abs difference.
"""

from __future__ import annotations

import argparse
import torch

from common import add_model_args, medium_config, median_time

from qwenimage.dtypes import DTYPES

from qwenimage.model import QwenImageMMDiT
from qwenimage.sampling.conditioning import TextConditioning, TokenLayout
from qwenimage.sampling.guidance import Guidance, guided_velocity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser, side=16, text=64)
    parser.add_argument("--batch", type=int, default=1, help="requests per step")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    args = parser.parse_args()
    device, dtype = torch.device(args.device), DTYPES[args.dtype]

    config = medium_config(args)
    torch.manual_seed(0)
    model = QwenImageMMDiT(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model.to(device, dtype)
    b, n = args.batch, args.side * args.side
    layout = TokenLayout([(args.side, args.side)] * b)
    positive = TextConditioning(torch.randn(b, args.text, 512, device=device, dtype=dtype))
    negative = TextConditioning(torch.randn(b, args.text, 512, device=device, dtype=dtype))
    x, sigma = torch.randn(b, n, 64, device=device, dtype=dtype), torch.full((b,), 0.7, device=device)
    scales = torch.full((b,), 4.0)
    batched = guided_velocity(model, layout, positive, Guidance(scales, negative, batched=True))
    sequential = guided_velocity(model, layout, positive, Guidance(scales, negative, batched=False))
    with torch.inference_mode():
        diff = (batched(x, sigma) - sequential(x, sigma)).abs().max().item()
        t_batched = median_time(lambda: batched(x, sigma), args.repeats, device)
        t_sequential = median_time(lambda: sequential(x, sigma), args.repeats, device)
    where = f"threads={torch.get_num_threads()}" if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"config: {args.blocks} blocks, {args.heads} heads x {args.head_dim}, {n} image + {args.text} text tokens, "
          f"batch {b}, {args.dtype}, device={device} ({where})")
    print(f"sequential CFG: {t_sequential * 1000:8.1f} ms/step")
    print(f"batched CFG   : {t_batched * 1000:8.1f} ms/step")
    print(f"speed ratio (sequential / batched): {t_sequential / t_batched:.2f}x")
    print(f"max abs diff: {diff:.2e}")


if __name__ == "__main__":
    main()
