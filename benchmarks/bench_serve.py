"""The images server under load: requests/s and p50/p95 latency at several concurrencies, batching on vs off.

    python benchmarks/bench_serve.py [--model DIR] [--concurrency 1 4 16] [--requests 32] [--steps 2]
                                     [--sizes 32x32 48x32 32x64] [--max-batch 8] [--device cpu]

One model is loaded once; the same app runs twice on loopback (uvicorn in a thread): with --max-batch and
with max_batch=1. At each concurrency, that many client threads send --requests text-to-image requests in
all (sizes cycling through --sizes, so batches mix sizes). Without --model a tiny random model is built in a
temporary folder (its numbers measure the server's overhead and batching, not a real model's speed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from qwenimage.serve import PipelineWorker, ServeConfig, create_app
from qwenimage.serve.loopback import LoopbackServer


def post(base: str, body: dict) -> float:
    request = urllib.request.Request(f"{base}/v1/images/generations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        response.read()
    return time.perf_counter() - start


def load(base: str, concurrency: int, total: int, sizes: list[str], steps: int) -> dict:
    bodies = [{"prompt": f"benchmark picture {i}", "size": sizes[i % len(sizes)], "seed": i,
               "num_inference_steps": steps} for i in range(total)]
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = sorted(pool.map(lambda body: post(base, body), bodies))
    wall = time.perf_counter() - start
    return {"rps": total / wall, "p50": statistics.median(latencies),
            "p95": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: a tiny random model)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", default=["32x32", "48x32", "32x64"])
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bf16")
    args = parser.parse_args()
    model = args.model
    if model is None:
        from qwenimage.tiny import build_tiny_model

        model = build_tiny_model(Path(tempfile.mkdtemp(prefix="bench-serve-")) / "tiny")
    worker = PipelineWorker.load(model, device=args.device, dtype=args.dtype)
    post_warmup = {"prompt": "warm up", "size": args.sizes[0], "num_inference_steps": args.steps}
    results = {}
    for label, max_batch in (("batched", args.max_batch), ("unbatched", 1)):
        config = ServeConfig(model=model, max_batch=max_batch, max_queue=max(64, max(args.concurrency) * 2),
                             batch_wait_s=0.01 if max_batch > 1 else 0.0)
        with LoopbackServer(create_app(config, worker)) as server:
            post(server.url, post_warmup)
            for concurrency in args.concurrency:
                results[label, concurrency] = load(server.url, concurrency, args.requests, args.sizes, args.steps)
    print(f"{'clients':>7} | {'batched (max ' + str(args.max_batch) + ')':^30} | {'unbatched':^30}")
    print(f"{'':>7} | {'req/s':>8} {'p50 s':>9} {'p95 s':>9}   | {'req/s':>8} {'p50 s':>9} {'p95 s':>9}")
    for concurrency in args.concurrency:
        row = [results[label, concurrency] for label in ("batched", "unbatched")]
        cells = " | ".join(f"{r['rps']:8.2f} {r['p50']:9.3f} {r['p95']:9.3f}  " for r in row)
        print(f"{concurrency:>7} | {cells}")


if __name__ == "__main__":
    main()
