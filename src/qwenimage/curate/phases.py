"""The work done per input shard, as picklable callables for the executors.

    ScanPhase    S1's per-record checks and hashes
    AssessPhase  S2, S3, S4, S5 and S6's categories, then thumbnails (the driver deduplicates afterwards)
    WritePhase   output shards and the per-record outcome table (after the driver's S6/S7 decisions)

Each takes a task that carries all it needs (the shard, and earlier decisions for its records) and returns
(shard index, records); pixels and image bytes never leave the worker.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from qwenimage.curate.config import CurateConfig
from qwenimage.curate.decode import thumbnail_b64
from qwenimage.curate.inputs import InputShard, read_shard
from qwenimage.curate.record import Record
from qwenimage.curate.stages.base import Stage, pixels
from qwenimage.curate.stages.s1_preprocess import S1Preprocess
from qwenimage.curate.stages.s2_quality import S2Quality
from qwenimage.curate.stages.s3_alignment import S3Alignment
from qwenimage.curate.stages.s4_text import S4Text
from qwenimage.curate.stages.s5_highres import S5HighRes
from qwenimage.curate.stages.s6_balance import S6Categorize
from qwenimage.curate.writer import write_shard_outputs

THUMBNAIL_DRAFT_SIDE = 256


def run_operators(records: list[Record], operators: list[Stage], batch_size: int) -> list[Record]:
    """Every operator over each batch of records in turn; pixels are freed after each batch."""
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
        for operator in operators:
            batch = operator(batch)
        for record in batch:
            record.decoded = None
    return records


def strip(records: list[Record]) -> list[Record]:
    for record in records:
        record.image_bytes, record.decoded = None, None
    return records


@dataclass
class ScanPhase:
    config: CurateConfig

    def __post_init__(self) -> None:
        self.operators = [S1Preprocess(self.config)]

    def __call__(self, shard: InputShard) -> tuple[int, list[Record]]:
        records = run_operators(read_shard(shard), self.operators, self.config.executor.batch_size)
        return shard.index, strip(records)


@dataclass
class AssessTask:
    shard: InputShard
    scanned: list[dict]  # the shard's records after S1 (JSON)


def merge_scan(fresh: list[Record], scanned: list[Record]) -> list[Record]:
    """The scanned records (S1 state) with the image bytes of the freshly read ones."""
    by_id = {r.id: r for r in fresh}
    for record in scanned:
        if record.id in by_id:
            record.image_bytes, record.image_path = by_id[record.id].image_bytes, by_id[record.id].image_path
    return scanned


@dataclass
class AssessPhase:
    config: CurateConfig

    def __post_init__(self) -> None:
        c = self.config
        self.operators = [S2Quality(c), S3Alignment(c), S4Text(c), S5HighRes(c), S6Categorize(c)]

    def __call__(self, task: AssessTask) -> tuple[int, list[Record]]:
        records = merge_scan(read_shard(task.shard), [Record.from_json(r) for r in task.scanned])
        run_operators(records, self.operators, self.config.executor.batch_size)
        add_thumbnails(records, self.config)
        return task.shard.index, strip(records)


def add_thumbnails(records: list[Record], config: CurateConfig) -> None:
    """A thumbnail for the first few rejected records of each reason in this shard (for the report)."""
    per_reason: Counter = Counter()
    for record in records:
        if record.kept:
            continue
        key = (record.rejection.stage, record.rejection.reason)
        if per_reason[key] >= config.output.thumbnails_per_reason:
            continue
        try:
            image = pixels(record, config.s1.max_pixels, THUMBNAIL_DRAFT_SIDE)
        except (ValueError, OSError):
            continue  # broken files have no picture
        record.thumbnail = thumbnail_b64(image.rgb, config.output.thumbnail_side)
        record.decoded = None
        per_reason[key] += 1


@dataclass
class WriteTask:
    shard: InputShard
    records: list[dict]  # final records (JSON), in shard order


@dataclass
class WritePhase:
    config: CurateConfig
    out: str

    def __call__(self, task: WriteTask) -> tuple[int, dict]:
        records = [Record.from_json(r) for r in task.records]
        merge_scan(read_shard(task.shard), records)
        return task.shard.index, write_shard_outputs(self.out, task.shard.index, records, self.config)
