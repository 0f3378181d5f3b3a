"""bf16 on CPU, side by side in one run: our transformer forward in fp32 and bf16, diffusers' in bf16 on the same
weights, the velocity's PSNR (bf16 against our fp32), and one training step with and without bf16 autocast.

    python benchmarks/bench_bf16_cpu.py [--blocks 4 --heads 8 --head-dim 64 --side 32 --text 128 --batch 2]

bf16 pays only where the CPU computes it in hardware (AVX512-BF16 or AMX, through oneDNN); the header names
the CPU, its flags and the machine's load, which the timings depend on.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch

from bench_mmdit import interleaved_medians
from common import add_model_args, load_average, machine, medium_config

from qwenimage.model import QwenImageMMDiT
from qwenimage.sampling.conditioning import TextConditioning, TokenLayout
from qwenimage.train.objective import FlowBatch, flow_matching_loss


def psnr(test: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB, the peak being the reference's range."""
    reference, test = reference.float(), test.float()
    mse = (test - reference).pow(2).mean().item()
    peak = (reference.max() - reference.min()).item()
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def forward_models(config, folder: str):
    """diffusers' transformer with random weights (its output layers perturbed off zero), saved, loaded by us."""
    from diffusers import QwenImageTransformer2DModel

    torch.manual_seed(0)
    reference = QwenImageTransformer2DModel(num_layers=config.num_layers, num_attention_heads=config.num_attention_heads,
                                            attention_head_dim=config.attention_head_dim,
                                            joint_attention_dim=config.joint_attention_dim,
                                            axes_dims_rope=config.axes_dims_rope).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    reference.save_pretrained(folder)
    ours32 = QwenImageMMDiT.from_pretrained(folder)
    ours16 = QwenImageMMDiT.from_pretrained(folder, dtype=torch.bfloat16)
    return ours32, ours16, reference.to(torch.bfloat16)


def train_step_time(config, args, autocast: bool) -> float:
    torch.manual_seed(0)
    model = QwenImageMMDiT(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens = args.side * args.side
    batch = FlowBatch(torch.randn(args.batch, tokens, 64), TokenLayout([(args.side, args.side)] * args.batch),
                      TextConditioning(torch.randn(args.batch, args.text, config.joint_attention_dim)))
    t, noise = torch.full((args.batch,), 0.5), torch.randn_like(batch.x0)
    times = []
    for i in range(args.train_repeats + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = flow_matching_loss(model, batch, t, noise).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:  # the first step warms up
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser, side=32, text=128)
    parser.add_argument("--batch", type=int, default=2, help="training batch")
    parser.add_argument("--repeats", type=int, default=5, help="forward timings per model")
    parser.add_argument("--train-repeats", type=int, default=3)
    args = parser.parse_args()
    config = medium_config(args)
    print(machine())
    print(f"config: {args.blocks} blocks, {args.heads} heads x {args.head_dim}, {args.side * args.side} image + "
          f"{args.text} text tokens (forward batch 1, training batch {args.batch})")

    with tempfile.TemporaryDirectory() as folder:
        ours32, ours16, reference16 = forward_models(config, folder)
    hidden = torch.randn(1, args.side * args.side, 64)
    text = torch.randn(1, args.text, config.joint_attention_dim)
    t, shapes = torch.tensor([0.5]), [[(1, args.side, args.side)]]
    h16, text16 = hidden.bfloat16(), text.bfloat16()
    run32 = lambda: ours32(hidden, text, t, shapes)  # noqa: E731
    run16 = lambda: ours16(h16, text16, t, shapes)  # noqa: E731
    run_ref = lambda: reference16(hidden_states=h16, encoder_hidden_states=text16, timestep=t,  # noqa: E731
                                  img_shapes=shapes, return_dict=False)[0]
    with torch.inference_mode():
        v32, v16, v_ref = run32(), run16(), run_ref()
        fp32, bf16, ref = interleaved_medians([run32, run16, run_ref], args.repeats)
    print(f"forward  qwenimage fp32 {fp32 * 1e3:8.1f} ms | qwenimage bf16 {bf16 * 1e3:8.1f} ms | "
          f"diffusers bf16 {ref * 1e3:8.1f} ms")
    print(f"forward  bf16 speed-up over our fp32: {fp32 / bf16:.2f}x; over diffusers bf16: {ref / bf16:.2f}x")
    print(f"velocity PSNR against our fp32: qwenimage bf16 {psnr(v16, v32):.1f} dB, "
          f"diffusers bf16 {psnr(v_ref, v32):.1f} dB")

    step32, step16 = train_step_time(config, args, False), train_step_time(config, args, True)
    print(f"training step (fwd + bwd + AdamW)  fp32 {step32:.2f} s | bf16 autocast {step16:.2f} s | "
          f"speed-up {step32 / step16:.2f}x")
    print(f"load average after the run (1/5/15 min): {load_average()}")


if __name__ == "__main__":
    main()
