"""One denoising step of the official transformer on a GPU, ours beside diffusers on the same weights, in one run:

    python benchmarks/bench_gpu.py [--size 1328 --text-tokens 128 --repeats 3 --steps 10 --json results.json]
    python benchmarks/bench_gpu.py --device cpu --tiny     # a tiny config in seconds on CPU (what the test runs)

The official config (60 blocks, 24 heads x 128, text dim 3584) is built on the meta device and filled with random
weights directly on the device in the chosen dtype (bf16 on CUDA): the same cost as the real weights, with no fp32
copy on the CPU first. One step = one guided velocity at CFG 4: two transformer forwards (sequential CFG) or one of
batch 2 (batched CFG), plus the norm-preserving combination. Variants, each timed on its own (median of --repeats
after a warm-up), a failing or unsupported one printing "skipped: <reason>" while the rest still run:

  eager_sequential      ours, eager, cond and uncond one after the other (the baseline of the speedup column)
  eager_batched         ours, eager, cond and uncond in one forward of batch 2 (checked against sequential)
  diffusers_sequential  diffusers' QwenImageTransformer2DModel sharing our weight tensors (checked against ours)
  compiled              ours with the regional torch.compile of the blocks (compile time apart; checked against eager)
  fp8                   ours with torchao fp8 weights and activations (CUDA, compute capability >= 8.9 only)
  fp8_compiled          fp8 and the regional compile together
  step_cache            a --steps run with the first-block step cache at its default threshold, per step, beside
                        the same run uncached (with random weights the skips say little about real images)

compiled, fp8, fp8_compiled and step_cache use the device's default CFG mode (batched on a GPU): compare them with
the eager row of the same mode. Peak memory: torch.cuda.max_memory_allocated on CUDA (weights included), the
process's peak RSS on CPU. --json writes every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from common import load_average, machine, median_time, synchronize

from qwenimage.dtypes import DTYPES
from qwenimage.model import MMDIT_PRESETS, MMDiTConfig, QwenImageMMDiT
from qwenimage.model.compile import compile_blocks
from qwenimage.sampling.conditioning import TextConditioning, TokenLayout
from qwenimage.sampling.guidance import Guidance, batch_cfg_by_default, guided_velocity, renormalized_cfg
from qwenimage.sampling.packing import token_grid
from qwenimage.sampling.sampler import sample
from qwenimage.sampling.schedule import sigmas_for
from qwenimage.sampling.step_cache import DEFAULT_CACHE_THRESHOLD, StepCaching
from qwenimage.weights.quantize import check_quantize, quantize_model

VARIANTS = ("eager_sequential", "eager_batched", "diffusers_sequential", "compiled", "fp8", "fp8_compiled",
            "step_cache")
CFG_SCALE = 4.0
SIGMA = 0.7  # the timestep of the timed step
TINY = {"size": 128, "text_tokens": 16}  # with MMDIT_PRESETS["tiny"]: 8x8 image tokens


class Skip(Exception):
    """A variant that cannot run here; its message is the reason printed."""


@dataclass
class Bench:
    model: QwenImageMMDiT
    device: torch.device
    layout: TokenLayout
    x: torch.Tensor  # [1, S_img, C_in] noisy latent tokens
    sigma: torch.Tensor  # [1]
    positive: TextConditioning  # [1, S_txt, D_txt]
    negative: TextConditioning  # [1, S_txt, D_txt]
    repeats: int
    steps: int
    default_batched: bool  # the device's CFG mode, for the compile, fp8 and cache variants
    eager: dict[bool, torch.Tensor] = dataclasses.field(default_factory=dict)  # batched? -> velocity [1, S_img, C]

    def velocity(self, batched: bool, caching: StepCaching | None = None):
        guidance = Guidance(torch.full((1,), CFG_SCALE), self.negative, batched=batched)
        return guided_velocity(self.model, self.layout, self.positive, guidance, caching)

    def step(self, batched: bool) -> Callable[[], torch.Tensor]:
        """One guided velocity evaluation -> [1, S_img, C_out]."""
        velocity = self.velocity(batched)
        return lambda: velocity(self.x, self.sigma)

    def eager_output(self, batched: bool) -> torch.Tensor:
        """The eager model's guided velocity [1, S_img, C_out], the reference of the other variants."""
        if batched not in self.eager:
            self.eager[batched] = self.step(batched)()
        return self.eager[batched]

    def mode(self, batched: bool | None = None) -> str:
        return "batched CFG" if (self.default_batched if batched is None else batched) else "sequential CFG"


# -- setup ---------------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test config (2 blocks, 4 heads x 16) at "
                        f"{TINY['size']}x{TINY['size']} with {TINY['text_tokens']} text tokens, unless given")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels, a multiple of 16 (default 1328)")
    parser.add_argument("--text-tokens", type=int, default=None, help="prompt tokens (default 128)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant; the median is reported")
    parser.add_argument("--steps", type=int, default=10, help="steps of the step-cache run")
    parser.add_argument("--skip-diffusers", action="store_true", help="leave out diffusers' transformer")
    parser.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile variants")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), metavar="NAME",
                        help=f"run only these (default all: {', '.join(VARIANTS)}); eager_sequential always runs")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    args.size = args.size or (TINY["size"] if args.tiny else 1328)
    args.text_tokens = args.text_tokens or (TINY["text_tokens"] if args.tiny else 128)
    return args


def resolve(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA GPU here (use --device cpu --tiny for a CPU check)")
    name = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    return device, DTYPES[name]


def random_model(config: MMDiTConfig, device: torch.device, dtype: torch.dtype) -> QwenImageMMDiT:
    """The transformer with random weights allocated once, on `device` in `dtype` (no fp32 or CPU copy first):
    matrices ~ N(0, 1 / fan_in), so every layer, the modulation gates included, passes on activations of order
    one and each block changes the output; norm scales 1, biases 0."""
    with torch.device("meta"):
        model = QwenImageMMDiT(config)
    model = model.to(dtype).to_empty(device=device).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim > 1:
                parameter.normal_(0.0, parameter.shape[1] ** -0.5)
            else:
                parameter.fill_(1.0 if "norm" in name else 0.0)
            parameter.requires_grad_(False)
    return model


def build(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> Bench:
    config = MMDIT_PRESETS["tiny" if args.tiny else "official"]
    torch.manual_seed(0)
    model = random_model(config, device, dtype)
    rows, cols = token_grid(args.size, args.size)  # 1328 px -> 83 x 83 tokens
    text_shape = (1, args.text_tokens, config.joint_attention_dim)
    x = torch.randn(1, rows * cols, config.in_channels, device=device, dtype=dtype)  # [1, S_img, C_in]
    positive = TextConditioning(torch.randn(text_shape, device=device, dtype=dtype))  # [1, S_txt, D_txt]
    negative = TextConditioning(torch.randn(text_shape, device=device, dtype=dtype))
    return Bench(model, device, TokenLayout([(rows, cols)]), x, torch.full((1,), SIGMA, device=device), positive,
                 negative, args.repeats, args.steps,
                 default_batched=batch_cfg_by_default(device, rows * cols + args.text_tokens))


# -- measuring -----------------------------------------------------------------------------------------------------

class PeakMemory:
    """Peak memory of what runs between reset() and peak(): CUDA's allocator peak, or on CPU the process's
    peak RSS (VmHWM, reset through /proc/self/clear_refs where the kernel allows it)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.what = "cuda max_memory_allocated" if device.type == "cuda" else "peak RSS"

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.what = "peak RSS since the process started (could not reset)"

    def peak(self) -> int:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        try:
            return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) * 1024
        except (OSError, IndexError, ValueError):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports kB


def timed(bench: Bench, fn: Callable[[], torch.Tensor], memory: PeakMemory) -> dict:
    """Median seconds of `fn` and the peak memory while it runs."""
    memory.reset()
    seconds = median_time(fn, bench.repeats, bench.device)
    return {"seconds": seconds, "peak_memory_bytes": memory.peak(), "peak_memory_kind": memory.what}


def difference(out: torch.Tensor, reference: torch.Tensor) -> dict:
    """Largest absolute difference, and that relative to the reference's largest magnitude."""
    diff = float((out.float() - reference.float()).abs().max())
    scale = float(reference.float().abs().max())
    return {"max_abs_diff": diff, "relative_diff": diff / scale if scale else diff,
            "finite": bool(torch.isfinite(out).all())}


# -- variants ------------------------------------------------------------------------------------------------------

def eager(bench: Bench, memory: PeakMemory, batched: bool) -> dict:
    result = timed(bench, bench.step(batched), memory)
    if batched:
        result |= difference(bench.eager_output(True), bench.eager_output(False)) | {"against": "eager_sequential"}
    return result


def diffusers_twin(model: QwenImageMMDiT):
    """diffusers' transformer of the same config whose parameters are our model's tensors (no second copy)."""
    try:
        from accelerate import init_empty_weights
        from diffusers import QwenImageTransformer2DModel
    except ImportError as err:
        raise Skip(f"diffusers or accelerate is not importable ({err})") from err
    with init_empty_weights():  # parameters on meta; diffusers' RoPE tables stay real
        twin = QwenImageTransformer2DModel(**dataclasses.asdict(model.config))
    twin.load_state_dict(model.state_dict(), strict=True, assign=True)
    return twin.eval()


def diffusers_sequential(bench: Bench, memory: PeakMemory, skip: str | None) -> dict:
    if skip:
        raise Skip(skip)
    twin = diffusers_twin(bench.model)
    shapes = bench.layout.img_shapes()
    sigma = bench.sigma.to(bench.x.dtype)

    def forward(text: TextConditioning) -> torch.Tensor:  # -> [1, S_img, C_out]
        return twin(hidden_states=bench.x, encoder_hidden_states=text.embeds, timestep=sigma, img_shapes=shapes,
                    return_dict=False)[0]

    def step() -> torch.Tensor:
        scale = torch.full((1,), CFG_SCALE, device=bench.device)
        return renormalized_cfg(forward(bench.positive), forward(bench.negative), scale)

    out = step()
    return timed(bench, step, memory) | difference(out, bench.eager_output(False)) | {"against": "eager_sequential"}


def compiled(bench: Bench, memory: PeakMemory, skip: str | None) -> dict:
    if skip:
        raise Skip(skip)
    bench.eager_output(bench.default_batched)  # the reference, before the blocks are compiled
    compile_blocks(bench.model)  # CompileUnavailableError (one line) when inductor cannot run here
    try:
        return compiled_timing(bench, memory)
    finally:
        uncompile(bench.model)


def compiled_timing(bench: Bench, memory: PeakMemory) -> dict:
    step = bench.step(bench.default_batched)
    start = time.perf_counter()
    out = step()  # the first call compiles
    synchronize(bench.device)
    first = time.perf_counter() - start
    return (timed(bench, step, memory) | {"compile_seconds": first}
            | difference(out, bench.eager_output(bench.default_batched))
            | {"against": f"eager ({bench.mode()})"})


def uncompile(model: QwenImageMMDiT) -> None:
    """Back to eager blocks (undoes nn.Module.compile) and drops the compiled graphs."""
    for block in model.transformer_blocks:
        block._compiled_call_impl = None
    torch._dynamo.reset()


def fp8(bench: Bench, memory: PeakMemory) -> dict:
    reference = bench.eager_output(bench.default_batched)
    quantize(bench)
    step = bench.step(bench.default_batched)
    out = step()
    return timed(bench, step, memory) | difference(out, reference) | {"against": f"eager ({bench.mode()})"}


def fp8_compiled(bench: Bench, memory: PeakMemory, skip: str | None) -> dict:
    if skip:
        raise Skip(skip)
    bench.eager_output(bench.default_batched)  # before quantising
    quantize(bench)
    compile_blocks(bench.model)
    try:
        return compiled_timing(bench, memory)
    finally:
        uncompile(bench.model)


def quantize(bench: Bench) -> None:
    """fp8 in place, once (the last variants run on the quantised model)."""
    if getattr(bench.model, "quantization", None) == "fp8":
        return
    try:
        check_quantize("fp8", bench.device)
    except ValueError as err:
        raise Skip(str(err)) from err
    with torch.inference_mode(False), torch.no_grad():  # as the loaders quantise: plain tensors, no autograd
        quantize_model(bench.model, "fp8", bench.device)


def step_cache(bench: Bench, memory: PeakMemory) -> dict:
    sigmas = sigmas_for(bench.steps, bench.x.shape[1])[None].to(bench.device)  # [1, steps + 1]
    noise = bench.x

    def run(threshold: float | None) -> Callable[[], StepCaching | None]:
        def go() -> StepCaching | None:
            caching = None if threshold is None else StepCaching(torch.full((1,), threshold))
            sample(bench.velocity(bench.default_batched, caching), noise, sigmas)
            return caching
        return go

    uncached = timed(bench, run(None), memory)
    cached = timed(bench, run(DEFAULT_CACHE_THRESHOLD), memory)
    skipped = sum(run(DEFAULT_CACHE_THRESHOLD)().skipped())
    return {"seconds": cached["seconds"] / bench.steps, "run_seconds": cached["seconds"],
            "uncached_run_seconds": uncached["seconds"], "cache_speedup": uncached["seconds"] / cached["seconds"],
            "threshold": DEFAULT_CACHE_THRESHOLD, "steps": bench.steps, "skipped_passes": skipped,
            "passes": 2 * bench.steps, "peak_memory_bytes": cached["peak_memory_bytes"],
            "peak_memory_kind": cached["peak_memory_kind"]}


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_variant(name: str, fn: Callable[[], dict], device: torch.device) -> dict:
    """The variant's figures, or {"skipped": reason} when it raised (any error: the other variants still run);
    what it built (diffusers' module, compiled graphs, an out-of-memory's leftovers) is freed after it."""
    print(f"running {name} ...", flush=True)
    try:
        with torch.inference_mode():
            result = fn()
        print(f"  {name}: {json.dumps(result)}", flush=True)  # each figure as it comes: a run cut short keeps them
        return result
    except Exception as err:  # noqa: BLE001  (an unsupported variant must not stop the benchmark)
        lines = str(err).strip().splitlines()
        reason = lines[0] if isinstance(err, Skip) and lines else f"{type(err).__name__}: {lines[0] if lines else ''}"
        print(f"  skipped: {reason}", flush=True)
        return {"skipped": reason}
    finally:
        release(device)


# -- report --------------------------------------------------------------------------------------------------------

LABELS = {"eager_sequential": "ours eager, sequential CFG", "eager_batched": "ours eager, batched CFG",
          "diffusers_sequential": "diffusers, sequential CFG", "compiled": "ours + compile", "fp8": "ours + fp8",
          "fp8_compiled": "ours + fp8 + compile", "step_cache": "ours + step cache"}


def note(result: dict) -> str:
    parts = []
    if "compile_seconds" in result:
        parts.append(f"first call (compiling) {result['compile_seconds']:.1f} s")
    if "max_abs_diff" in result:
        parts.append(f"vs {result['against']}: max|diff| {result['max_abs_diff']:.1e} "
                     f"(rel {result['relative_diff']:.1e})" + ("" if result["finite"] else ", NOT FINITE"))
    if "cache_speedup" in result:
        parts.append(f"{result['steps']} steps, threshold {result['threshold']:g}: {result['cache_speedup']:.2f}x "
                     f"the uncached run, {result['skipped_passes']}/{result['passes']} passes skipped")
    return "; ".join(parts)


def print_table(results: dict, bench: Bench) -> None:
    base = results["eager_sequential"].get("seconds")
    print(f"\n{'variant':38s} {'s/step':>9s} {'speedup':>8s} {'peak MiB':>10s}  notes")
    for name, result in results.items():
        label = LABELS[name] + ("" if name.startswith(("eager", "diffusers")) else f" ({bench.mode()})")
        if "skipped" in result:
            print(f"{label:38s} skipped: {result['skipped']}")
            continue
        speedup = f"{base / result['seconds']:7.2f}x" if base else "       -"
        print(f"{label:38s} {result['seconds']:9.4f} {speedup} {result['peak_memory_bytes'] / 2**20:10.1f}  "
              f"{note(result)}")
    kinds = {r["peak_memory_kind"] for r in results.values() if "peak_memory_kind" in r}
    print(f"speedup: ours eager sequential / this (> 1: faster); peak memory: {', '.join(sorted(kinds)) or '-'}")


def header(args: argparse.Namespace, bench: Bench, dtype: torch.dtype) -> dict:
    config = bench.model.config
    where = (f"{torch.cuda.get_device_name(bench.device)}, compute capability "
             f"{'.'.join(map(str, torch.cuda.get_device_capability(bench.device)))}"
             if bench.device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads")
    rows, cols = bench.layout.target_grids[0]
    info = {"machine": machine(), "device": str(bench.device), "device_name": where,
            "config": "tiny" if args.tiny else "official", "blocks": config.num_layers,
            "heads": config.num_attention_heads, "head_dim": config.attention_head_dim,
            "parameters": bench.model.num_parameters(), "dtype": str(dtype).removeprefix("torch."),
            "size": args.size, "image_tokens": rows * cols, "text_tokens": args.text_tokens,
            "repeats": args.repeats, "default_cfg": bench.mode()}
    print(info["machine"])
    print(f"device: {bench.device} ({where})")
    print(f"transformer: {info['config']} config, {config.num_layers} blocks, {config.num_attention_heads} heads x "
          f"{config.attention_head_dim}, {info['parameters'] / 1e6:,.1f}M random parameters in {info['dtype']}; "
          f"{args.size}x{args.size} px = {rows}x{cols} image tokens + {args.text_tokens} text tokens, CFG "
          f"{CFG_SCALE:g}, median of {args.repeats}")
    return info


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device, dtype = resolve(args)
    bench = build(args, device, dtype)
    info = header(args, bench, dtype)
    memory = PeakMemory(device)
    skip_compile = "--skip-compile" if args.skip_compile else None
    skip_diffusers = "--skip-diffusers" if args.skip_diffusers else None
    variants = {
        "eager_sequential": lambda: eager(bench, memory, batched=False),
        "eager_batched": lambda: eager(bench, memory, batched=True),
        "diffusers_sequential": lambda: diffusers_sequential(bench, memory, skip_diffusers),
        "step_cache": lambda: step_cache(bench, memory),
        "compiled": lambda: compiled(bench, memory, skip_compile),
        "fp8": lambda: fp8(bench, memory),  # quantises in place: the fp8 variants run last
        "fp8_compiled": lambda: fp8_compiled(bench, memory, skip_compile),
    }
    chosen = {"eager_sequential", *args.variants}  # the baseline of the speedup column
    ran = {name: run_variant(name, fn, device) for name, fn in variants.items() if name in chosen}
    results = {name: ran[name] for name in VARIANTS if name in ran}
    print_table(results, bench)
    print(f"after: load average (1/5/15 min): {load_average()}")
    report = info | {"load_after": load_average(), "variants": results}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
