"""The unit of producer work (encode one record for one task at one resolution tier) and its receipt."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from qwenimage.train.data import I2I_PROMPT
from qwenimage.train.records import ImageRef, Record


@dataclass(frozen=True, eq=False)
class EncodeJob:
    record: Record
    task: str  # t2i | ti2i | i2i
    resolution: int  # the square side of the resolution tier, in pixels

    def fingerprint(self) -> str:
        """What the encoded result depends on: sample id, task, tier, the prompt it encodes and the image files
        (size and mtime), so an edited record never hits a stale cache entry."""
        record = self.record
        prompt = {"t2i": record.caption, "ti2i": record.instruction,
                  "i2i": record.caption or I2I_PROMPT}.get(self.task)
        if prompt is None:
            raise ValueError(f"unknown task {self.task!r} (expected t2i, ti2i or i2i)")
        parts = [record.id, self.task, self.resolution, prompt, _file_stamp(record.image)]
        if self.task == "ti2i":
            parts.append(_file_stamp(record.source))
        return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class ProduceInfo:
    """How a producer served one job: who, from a cache or freshly encoded, and how long it took."""

    producer: str
    hit: bool
    seconds: float


def _file_stamp(image: ImageRef | None) -> str:
    if image is None or not isinstance(image, Path):
        return ""  # in-memory images and shard members are identified by the record id alone
    stat = Path(image).stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"
