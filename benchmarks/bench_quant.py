"""torchao quantisation of the transformer on this machine, in one run:

    python benchmarks/bench_quant.py [--widths 384 768 1152 --layers 2 --repeats 3]

1. Speed and accuracy at the medium config (benchmarks/common.py): forward time of fp32 (our oneDNN path),
   int8 weight-only and int8 dynamic (W8A8), timed in alternation, with the ratio fp32 / quantised (> 1:
   faster) and the PSNR of the velocity against fp32; the transformer's bytes against fp32.
2. Peak RSS while loading, on random configs of growing width saved as safetensors: each load runs in a fresh
   process and reports its peak RSS above the RSS it had before loading (python + torch + torchao), for a
   full-precision checkpoint quantised while loading and for the saved quantised checkpoint (all pages read).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap

import torch

from common import add_model_args, machine, medium_config

from qwenimage.devices import cpu_has_bf16
from qwenimage.model import MMDiTConfig, QwenImageMMDiT
from qwenimage.weights.quantize import model_bytes, quantize_model

LOAD_SCRIPT = textwrap.dedent("""
    import json, sys, psutil, torch
    import torchao.quantization
    from qwenimage.model import QwenImageMMDiT
    from qwenimage.weights.quantize import model_bytes
    before = psutil.Process().memory_info().rss
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
    model = QwenImageMMDiT.from_pretrained(sys.argv[1], quantize=sys.argv[2] if sys.argv[2] != "-" else None)
    for tensor in model.state_dict().values():  # read every page (a memory-mapped load reads lazily)
        inner = [getattr(tensor, n) for n in tensor.__tensor_flatten__()[0]] if type(tensor) is not torch.Tensor \\
            else [tensor]
        for t in inner:
            t.flatten().max()
    peak = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
    print(json.dumps({"growth": peak - before, "bytes": model_bytes(model)}))
""")


def random_model(config: MMDiTConfig) -> QwenImageMMDiT:
    torch.manual_seed(0)
    model = QwenImageMMDiT(config).eval()
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.02)
    return model


def psnr(reference: torch.Tensor, other: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.pow(2).max() / (reference - other).pow(2).mean()))


def speed(args: argparse.Namespace) -> None:
    from bench_mmdit import interleaved_medians

    config = medium_config(args)
    models = {"fp32": random_model(config)}
    with tempfile.TemporaryDirectory() as folder:
        models["fp32"].save_pretrained(folder)
        for mode in ("int8", "int8-dynamic"):
            models[mode] = QwenImageMMDiT.from_pretrained(folder, quantize=mode)
        if cpu_has_bf16():  # int8 GEMMs, with the rest (attention, norms) in bf16 on a CPU that computes it
            models["bf16"] = QwenImageMMDiT.from_pretrained(folder, dtype=torch.bfloat16)
            models["int8-dyn+bf16"] = QwenImageMMDiT.from_pretrained(folder, quantize="int8-dynamic",
                                                                      dtype=torch.bfloat16)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, args.side * args.side, config.in_channels, generator=generator)  # [B, S_img, C_in]
    text = torch.randn(1, args.text, config.joint_attention_dim, generator=generator)  # [B, S_txt, D_txt]

    dtypes = {name: model.proj_out.weight.dtype for name, model in models.items()}  # fp32 or bf16 (never quantised)
    inputs = {name: (x.to(dtype), text.to(dtype)) for name, dtype in dtypes.items()}

    def run(name):
        with torch.inference_mode():
            return models[name](*inputs[name], torch.tensor([0.5]), [(1, args.side, args.side)])

    outputs = {name: run(name).float() for name in models}
    times = dict(zip(models, interleaved_medians([lambda n=n: run(n) for n in models], args.repeats)))
    fp32_bytes = model_bytes(models["fp32"])
    print(f"medium config ({config.num_layers} blocks, D={config.inner_dim}, {args.side ** 2} image + {args.text} "
          f"text tokens), median of {args.repeats}:")
    for name in models:
        print(f"  {name:13s} {times[name] * 1000:8.1f} ms  fp32/this {times['fp32'] / times[name]:5.2f}x  "
              f"PSNR {psnr(outputs['fp32'], outputs[name]):6.1f} dB  "
              f"memory {model_bytes(models[name]) / fp32_bytes:.3f}x fp32")


def load_peaks(args: argparse.Namespace) -> None:
    print(f"peak RSS while loading ({args.layers} blocks, growth above the RSS before loading):")
    for width in args.widths:
        config = MMDiTConfig(num_layers=args.layers, num_attention_heads=width // 64, attention_head_dim=64,
                             joint_attention_dim=512, axes_dims_rope=(8, 28, 28))
        with tempfile.TemporaryDirectory() as folder:
            model = random_model(config)
            fp32 = model_bytes(model)
            model.save_pretrained(f"{folder}/fp32")
            quantize_model(model, "int8").save_pretrained(f"{folder}/int8")
            del model
            quantised = _load_in_subprocess(f"{folder}/fp32", "int8")
            stored = _load_in_subprocess(f"{folder}/int8", "-")
        q = quantised["bytes"]
        print(f"  D={width:5d}  fp32 {fp32 / 2**20:7.1f} MiB  int8 {q / 2**20:6.1f} MiB  "
              f"quantise-while-loading peak {quantised['growth'] / 2**20:7.1f} MiB = {quantised['growth'] / q:4.2f}x "
              f"int8 ({quantised['growth'] / fp32:4.2f}x fp32)  quantised checkpoint peak "
              f"{stored['growth'] / 2**20:7.1f} MiB = {stored['growth'] / q:4.2f}x int8")


def _load_in_subprocess(folder: str, mode: str) -> dict:
    result = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, folder, mode], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser, side=32, text=128)
    parser.add_argument("--widths", type=int, nargs="+", default=[384, 768, 1152], help="multiples of 64")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    speed(args)
    load_peaks(args)


if __name__ == "__main__":
    main()
