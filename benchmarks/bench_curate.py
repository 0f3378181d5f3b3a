"""Curation throughput through S1-S2 (decode, file checks, hashes, EXIF, aspect; luma, saturation, entropy,
clarity, noise) at 512x512, in records per second per core.

    python benchmarks/bench_curate.py [--records 400 --side 512 --batch 16 --workers 2]

1. one core: the S1 operator, then the S2 operator (decoding again, as the pipeline's assess phase does)
   over batches of JPEG records in this process, one thread;
2. the local executor: the same over shards of records on `--workers` processes, divided by the workers
   (includes moving the records' bytes to the workers and back).
The records are crops of scikit-image's photos, re-encoded as 512x512 JPEGs (q90). Target: >= 50 / s / core.
"""

from __future__ import annotations

import argparse
import io
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image
from skimage import data as skdata

from qwenimage.curate.config import CurateConfig
from qwenimage.curate.executors import LocalExecutor, single_threaded
from qwenimage.curate.phases import run_operators, strip
from qwenimage.curate.record import Caption, Record
from qwenimage.curate.stages import S1Preprocess, S2Quality

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


def jpeg_records(count: int, side: int, seed: int = 0) -> list[Record]:
    rng = np.random.default_rng(seed)
    photos = [getattr(skdata, name)() for name in PHOTOS]
    records = []
    for i in range(count):
        photo = photos[i % len(photos)]
        crop = min(photo.shape[:2])
        top, left = rng.integers(0, photo.shape[0] - crop + 1), rng.integers(0, photo.shape[1] - crop + 1)
        image = Image.fromarray(photo[top:top + crop, left:left + crop]).resize((side, side), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        records.append(Record(id=f"bench/{i:06d}", source="bench", image_bytes=buffer.getvalue(),
                              captions=[Caption("a photo", "raw")]))
    return records


def fresh(records: list[Record]) -> list[Record]:
    return [Record(id=r.id, source=r.source, image_bytes=r.image_bytes, captions=list(r.captions)) for r in records]


def s1_then_s2(records: list[Record], config: CurateConfig) -> list[Record]:
    """As the pipeline runs them: S1 in the scan phase, S2 in the assess phase (which decodes again)."""
    run_operators(records, [S1Preprocess(config)], config.executor.batch_size)
    return run_operators(records, [S2Quality(config)], config.executor.batch_size)


def one_core(records: list[Record], batch: int) -> float:
    single_threaded()
    config = CurateConfig()
    config.executor.batch_size = batch
    s1_then_s2(fresh(records[:batch]), config)  # warm-up
    start = time.perf_counter()
    done = s1_then_s2(fresh(records), config)
    seconds = time.perf_counter() - start
    assert sum(r.kept for r in done) > 0.9 * len(done), "the benchmark photos should pass S1-S2"
    return len(records) / seconds


@dataclass
class ShardS1S2:
    """S1 then S2 over one shard of records, in a worker process."""

    config: CurateConfig

    def __call__(self, shard: list[Record]) -> list[Record]:
        return strip(s1_then_s2(shard, self.config))


def pooled(records: list[Record], workers: int, shard_size: int) -> float:
    executor = LocalExecutor(workers)
    phase = ShardS1S2(CurateConfig())
    shards = [fresh(records[i:i + shard_size]) for i in range(0, len(records), shard_size)]
    list(executor.map(phase, shards[:workers]))  # start the workers
    start = time.perf_counter()
    done = sum(len(result) for result in executor.map(phase, shards))
    seconds = time.perf_counter() - start
    executor.close()
    return done / seconds / workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=50)
    args = parser.parse_args()

    records = jpeg_records(args.records, args.side)
    single = one_core(records, args.batch)
    print(f"S1-S2 at {args.side}x{args.side}, one core:            {single:7.1f} records/s")
    if args.workers > 1:
        per_core = pooled(records, args.workers, args.shard_size)
        print(f"S1-S2 at {args.side}x{args.side}, {args.workers} worker processes: {per_core:7.1f} records/s per core")
    print("target: >= 50 records/s per core")


if __name__ == "__main__":
    main()
