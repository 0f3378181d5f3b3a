"""Training step time and tokens/s on a medium CPU config, with and without activation checkpointing.

    python benchmarks/bench_train.py [--blocks 4 --heads 8 --head-dim 64 --side 32 --text 128 --batch 2]

Times forward + backward + AdamW step of the transformer on random packed latents (the encoders are not
part of a training step once latents are cached), both settings side by side in one run, and once more
with the oneDNN CPU linear turned off (plain F.linear) to show what it contributes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import add_model_args, medium_config

from qwenimage.model import QwenImageMMDiT
from qwenimage.model.linear import onednn_linear
from qwenimage.sampling.conditioning import TextConditioning, TokenLayout
from qwenimage.train.objective import FlowBatch, flow_matching_loss


def step_time(model, batch, repeats: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    t = torch.full((batch.batch,), 0.5)
    noise = torch.randn_like(batch.x0)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        flow_matching_loss(model, batch, t, noise).mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:  # the first step warms up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser, side=32, text=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = medium_config(args)
    torch.manual_seed(0)
    model = QwenImageMMDiT(config).train()
    tokens = args.side * args.side
    batch = FlowBatch(torch.randn(args.batch, tokens, 64), TokenLayout([(args.side, args.side)] * args.batch),
                      TextConditioning(torch.randn(args.batch, args.text, 512)))
    def timed(checkpointing: bool, onednn: bool) -> float:
        model.set_activation_checkpointing(checkpointing)
        with onednn_linear(onednn):
            return step_time(model, batch, args.repeats)

    fast, checkpointed, plain = timed(False, True), timed(True, True), timed(False, False)
    print(f"config: {args.blocks} blocks, {args.heads} heads x {args.head_dim}, batch {args.batch} x "
          f"({tokens} image + {args.text} text tokens), threads={torch.get_num_threads()}, device=cpu")
    for label, seconds in (("without activation checkpointing", fast), ("with activation checkpointing", checkpointed),
                           ("without, F.linear only", plain)):
        print(f"{label:32}: {seconds * 1000:8.1f} ms/step  {args.batch * tokens / seconds:9.0f} image tokens/s")
    print(f"checkpointing slowdown: {checkpointed / fast:.2f}x; oneDNN linear speed-up: {plain / fast:.2f}x")


if __name__ == "__main__":
    main()
