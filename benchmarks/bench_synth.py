"""Synthetic text: samples per second per core for each strategy, rendering alone and with OCR verification.

    python benchmarks/bench_synth.py [--size 512 --lang zh,en --samples 100 --ocr-samples 12]

One process, the runner's own per-sample path (`ShardRenderer.render_index`: plan, render, retries on
discards). Columns: `render` = strategy.render only; `+png` = what a job without OCR does (render + PNG +
JSON); `+ocr` = with OCR verification of every sample. Rates are kept samples per CPU-second of this
process (per core: onnxruntime may use several threads, CPU time counts them all) and per wall second.

The last line is the default `qwenimage synth` job (mix of the three strategies, zh + en, the default
--verify-fraction, so a documented share of samples is OCR-checked): its samples/s per core must be >= 20.
The CPU model and the load average are printed with it (the machine may be busy with other work).
"""

from __future__ import annotations

import argparse
import time

from qwenimage.synth.job import SynthJob, attempt_rng, parse_weights, plan_sample
from qwenimage.synth.worker import ShardRenderer, ShardStats, ocr_engine


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def render_only(renderer: ShardRenderer, indices: range) -> int:
    """strategy.render with the runner's retries on Discard; returns the number of kept samples."""
    from qwenimage.synth.sample import Discard

    job, kept = renderer.job, 0
    for index in indices:
        plan = plan_sample(job, index)
        for attempt in range(job.max_attempts):
            try:
                renderer.strategies[plan.strategy].render(attempt_rng(job, index, attempt), job.width, job.height,
                                                          plan.language)
                kept += 1
                break
            except Discard:
                continue
    return kept


def full_path(renderer: ShardRenderer, indices: range) -> tuple[int, ShardStats]:
    stats, kept = ShardStats(shard=0, seconds={"render": 0.0, "ocr": 0.0, "encode": 0.0}), 0
    for index in indices:
        kept += renderer.render_index(index, stats, {}) is not None
    return kept, stats


def bench(strategy: str, args: argparse.Namespace) -> dict:
    common = dict(count=10**6, strategies={strategy: 1.0}, languages=parse_weights(args.lang, "language"),
                  width=args.size, height=args.size, seed=args.seed)
    plain = ShardRenderer(SynthJob(**common, verify_fraction=0.0))
    verified = ShardRenderer(SynthJob(**common, verify_fraction=1.0, ocr_threshold=0.0))
    render_only(plain, range(10**5, 10**5 + 3))  # warm caches (fonts, corpora, backgrounds)
    row = {"strategy": strategy}
    n, m = args.samples, args.ocr_samples
    result = {}
    row["render"] = _rates(timed(lambda: result.setdefault("render", render_only(plain, range(n)))), result["render"])
    row["+png"] = _rates(timed(lambda: result.setdefault("png", full_path(plain, range(n))[0])), result["png"])
    row["+ocr"] = _rates(timed(lambda: result.setdefault("ocr", full_path(verified, range(m)))), result["ocr"][0])
    scores = [s for values in result["ocr"][1].ocr_all.values() for s in values]
    row["ocr_mean"] = sum(scores) / len(scores) if scores else float("nan")
    return row


def default_job(args: argparse.Namespace) -> tuple[float, float, SynthJob, ShardStats]:
    """(samples/s per core, per wall second) of the default job's path over `args.default_samples` samples."""
    job = SynthJob(count=10**6, width=args.size, height=args.size, seed=args.seed)
    renderer = ShardRenderer(job)
    full_path(renderer, range(10**5, 10**5 + 6))  # warm caches, as a worker does after its first samples
    result = {}
    times = timed(lambda: result.setdefault("run", full_path(renderer, range(args.default_samples))))
    kept, stats = result["run"]
    return (*_rates(times, kept), job, stats)


def machine() -> str:
    import os
    import platform

    model = platform.processor() or "?"
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8")
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores, load average {load}"


def _rates(times: tuple[float, float], kept: int) -> tuple[float, float]:
    wall, cpu = times
    return kept / max(cpu, 1e-9), kept / max(wall, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", default="pure,compositional,complex")
    parser.add_argument("--lang", default="zh,en", help="languages with weights, as for qwenimage synth")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--samples", type=int, default=100, help="samples timed without OCR")
    parser.add_argument("--ocr-samples", type=int, default=12, help="samples timed with OCR (~0.5 s each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--default-samples", type=int, default=300, help="samples timed for the default job")
    args = parser.parse_args()

    ocr_engine().read(__import__("PIL.Image", fromlist=["Image"]).new("RGB", (64, 64)))  # load the OCR models
    print(f"{args.size}x{args.size}, languages {args.lang}; samples/s per core (per wall second in brackets)")
    print(f"{'strategy':<14}{'render':>18}{'+png':>18}{'+ocr':>18}{'ocr mean':>10}")
    for strategy in filter(None, args.strategies.split(",")):
        row = bench(strategy, args)
        cells = "".join(f"{row[k][0]:>10.1f} ({row[k][1]:5.1f})" for k in ("render", "+png", "+ocr"))
        print(f"{strategy:<14}{cells}{row['ocr_mean']:>10.3f}")
    per_core, per_wall, job, stats = default_job(args)
    print(f"default job (mix, zh+en, verify_fraction {job.verify_fraction}, {stats.verified} OCR reads in "
          f"{args.default_samples} samples): {per_core:.1f} samples/s per core ({per_wall:.1f} per wall second)")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
