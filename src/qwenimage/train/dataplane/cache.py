"""A persistent cache of encoded samples: one safetensors file per (sample, encoder identity, tier, task).

Layout: `<root>/<encoder id>/r<resolution>/<task>/<ab>/<fingerprint>.safetensors`, where the fingerprint
covers the sample id, prompt and image files (jobs.py) and the two-character shard `ab` keeps directories
small. Files are written to a temporary name and renamed, so a reader (another producer, another rank, a
restarted run) sees a whole file or none. An unreadable file counts as a miss and is re-encoded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from qwenimage.train.data import EncodedSample
from qwenimage.train.dataplane.jobs import EncodeJob

log = logging.getLogger(__name__)

FORMAT = "qwenimage-encoded-sample/1"
ENCODING_VERSION = "1"  # bump when the encoding itself changes (bucketing, prompt templates), to retire old entries
SMALL_FILE = 1 << 20  # files up to this size are hashed by content; larger ones (weights) by size and mtime
ENCODER_PARTS = ("text_encoder", "tokenizer", "processor", "vae")


def encoder_identity(pipeline: str | Path, extra: str = "", parts: tuple[str, ...] = ENCODER_PARTS) -> str:
    """A short hash of everything that shapes an encoding: the pipeline's encoder, tokenizer, processor and
    VAE folders (`parts`; configs by content, weight files by size and mtime) and the encoding version."""
    pipeline = Path(pipeline)
    digest = hashlib.sha256(f"{ENCODING_VERSION}|{extra}".encode())
    for part in parts:
        folder = pipeline / part
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if not path.is_file():
                continue
            stat = path.stat()
            digest.update(str(path.relative_to(pipeline)).encode())
            digest.update(path.read_bytes() if stat.st_size <= SMALL_FILE else f"{stat.st_size}:{stat.st_mtime_ns}"
                          .encode())
    return digest.hexdigest()[:16]


class LatentCache:
    def __init__(self, root: str | Path, encoder_id: str):
        self.root, self.encoder_id = Path(root), encoder_id

    def path(self, job: EncodeJob) -> Path:
        fingerprint = job.fingerprint()
        return (self.root / self.encoder_id / f"r{job.resolution}" / job.task / fingerprint[:2]
                / f"{fingerprint}.safetensors")

    def get(self, job: EncodeJob) -> EncodedSample | None:
        path = self.path(job)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            log.warning("unreadable cache entry %s (%s): encoding again", path, err)
            return None
        if meta.get("format") != FORMAT or meta.get("sample_id") != job.record.id:
            return None
        conditions = [tensors[f"condition.{i}"] for i in range(int(meta["conditions"]))]
        return EncodedSample(tensors["latents"], tensors.get("text"), conditions, tensors.get("text_ids"))

    def put(self, job: EncodeJob, sample: EncodedSample) -> Path:
        path = self.path(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"latents": sample.latents}
        tensors |= {name: t for name, t in (("text", sample.text), ("text_ids", sample.text_ids)) if t is not None}
        tensors |= {f"condition.{i}": c for i, c in enumerate(sample.conditions)}
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        meta = {"format": FORMAT, "sample_id": job.record.id, "task": job.task,
                "resolution": str(job.resolution), "conditions": str(len(sample.conditions))}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            save_file(tensors, str(tmp), metadata=meta)
            os.replace(tmp, path)  # atomic: readers see the old file, the new one, or none
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def __len__(self) -> int:
        folder = self.root / self.encoder_id
        return sum(1 for _ in folder.rglob("*.safetensors")) if folder.is_dir() else 0

