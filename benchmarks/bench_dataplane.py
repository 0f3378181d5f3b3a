"""The consumer's idle share with 1, 2, 4 producers, when encoding a sample costs k times its share of a
training step.

    python benchmarks/bench_dataplane.py [--cost 3 --step-ms 120 --batch 4 --positions 30 --prefetch 4]

A stand-in encoder (SyntheticEncoder: sleeps, like a GPU-bound encoder that leaves the CPU free, and returns
tensors of realistic size: 640-px latents [16, 80, 80] and a [256, 3584] Qwen2.5-VL-7B text embedding)
costs `cost * step_ms / batch` per sample; the consumer sleeps `step_ms` per micro-batch (a GPU train step).
Epoch 1 encodes everything (after `prefetch + 1` warm-up micro-batches); epoch 2 is served from the disk
cache. Producers: `local` = worker threads, `ray` = actors (a local Ray with as many logical CPUs as actors).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

from PIL import Image

from qwenimage.train.dataplane import EncodeJob, Feed, LatentCache, LocalPool, Producer, ProducerSpec
from qwenimage.train.dataplane.synthetic import SyntheticEncoder
from qwenimage.train.records import Record


def make_pool(backend: str, producers: int, encoder: SyntheticEncoder, cache_dir: str):
    if backend == "local":
        return LocalPool(Producer(encoder, LatentCache(cache_dir, "bench"), name="local"), producers)
    from qwenimage.train.dataplane.ray_pool import RayPool

    pool = RayPool(ProducerSpec(encoder, cache_dir, "bench"), producers)
    pool.pids()  # wait until every actor is up: start-up is not part of the measurement
    return pool


def measure(pool, args) -> list[dict]:
    """Two epochs through a feed: the metrics of each (epoch 1 after its warm-up)."""
    image = Image.new("RGB", (8, 8))
    count = args.positions * args.batch
    records = [Record(id=f"bench/{i:05d}", image=image, caption=f"sample {i}") for i in range(count)]

    def jobs_at(position: int) -> list[EncodeJob]:
        first = position % args.positions * args.batch
        return [EncodeJob(records[first + k], "t2i", args.resolution) for k in range(args.batch)]

    feed = Feed(pool, jobs_at, 2 * args.positions, args.prefetch)
    out = []
    for epoch in range(2):
        for i in range(args.positions):
            if epoch == 0 and i == args.prefetch + 1:
                feed.metrics()  # the warm-up (filling the pipeline) is not steady state
            feed.take(epoch * args.positions + i)
            time.sleep(args.step_ms / 1000)  # the training step
        out.append(feed.metrics())
    feed.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cost", type=float, default=3.0, help="encoding cost per sample / train cost per sample")
    parser.add_argument("--step-ms", type=float, default=120.0, help="one micro-batch's train step")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--positions", type=int, default=30, help="micro-batches per epoch")
    parser.add_argument("--prefetch", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=640)
    parser.add_argument("--producers", default="1,2,4")
    parser.add_argument("--backends", default="local,ray")
    args = parser.parse_args()
    encode_s = args.cost * args.step_ms / 1000 / args.batch
    encoder = SyntheticEncoder(encode_s, channels=16, text_tokens=256, text_dim=3584)
    counts = [int(n) for n in args.producers.split(",")]
    if "ray" in args.backends:
        import ray

        ray.init(num_cpus=max(counts), include_dashboard=False, logging_level=logging.WARNING)
    print(f"encoder {encode_s * 1000:.0f} ms/sample = {args.cost:g}x the train step's {args.step_ms / args.batch:.0f} "
          f"ms/sample; micro-batch {args.batch}, prefetch {args.prefetch}, {args.positions} micro-batches/epoch")
    print(f"{'producers':>9} {'backend':>7} | {'idle % (encode)':>15} {'wait ms/step':>12} "
          f"{'producer samples/s':>18} | {'idle % (cache)':>14} {'cache hits':>10}")
    for backend in args.backends.split(","):
        for producers in counts:
            with tempfile.TemporaryDirectory() as cache_dir:
                encode, cached = measure(make_pool(backend, producers, encoder, cache_dir), args)
            print(f"{producers:>9} {backend:>7} | {encode['data_idle_pct']:>15.1f} "
                  f"{encode['data_wait_s'] * 1000:>12.1f} {encode['producer_samples_per_s']:>18.1f} | "
                  f"{cached['data_idle_pct']:>14.1f} {cached['cache_hit_rate']:>10.0%}")


if __name__ == "__main__":
    main()
