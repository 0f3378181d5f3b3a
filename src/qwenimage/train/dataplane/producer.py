"""A producer serves encode jobs: from memory, else from the disk cache, else by running the frozen encoders
(and then fills both caches).

An encoder is any object with `encode_uncached(record, task, resolution) -> EncodedSample`: the trainer's
SampleEncoder (Qwen2.5-VL + VAE), or the SyntheticEncoder of tests and benchmarks.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qwenimage.train.data import EncodedSample, SampleEncoder, load_frozen_encoders, pipeline_edit_area
from qwenimage.train.dataplane.cache import LatentCache
from qwenimage.train.dataplane.jobs import EncodeJob, ProduceInfo


class Producer:
    """One set of encoders with its caches. `lock` serialises encoder calls when the encoders are shared with
    other threads (the in-process mode shares the trainer's); `to_cpu` returns CPU tensors (other processes)."""

    def __init__(self, encoder, disk: LatentCache | None = None, memory_size: int = 0, name: str = "producer",
                 lock: threading.Lock | None = None, to_cpu: bool = False):
        self.encoder, self.disk, self.name, self.to_cpu = encoder, disk, name, to_cpu
        self.lock = lock if lock is not None else contextlib.nullcontext()
        self.memory: OrderedDict[str, EncodedSample] = OrderedDict()
        self.memory_size = memory_size
        self._memory_lock = threading.Lock()

    def produce(self, job: EncodeJob) -> tuple[EncodedSample, ProduceInfo]:
        start = time.perf_counter()
        key = job.fingerprint()
        sample = self._recall(key)
        if sample is None and self.disk is not None:
            sample = self.disk.get(job)
        hit = sample is not None
        if sample is None:
            with self.lock:
                sample = self.encoder.encode_uncached(job.record, job.task, job.resolution)
            if self.to_cpu:
                sample = sample.cpu()
            if self.disk is not None:
                self.disk.put(job, sample)
        self._remember(key, sample)
        return sample, ProduceInfo(self.name, hit, time.perf_counter() - start)

    def _recall(self, key: str) -> EncodedSample | None:
        with self._memory_lock:
            sample = self.memory.get(key)
            if sample is not None:
                self.memory.move_to_end(key)
            return sample

    def _remember(self, key: str, sample: EncodedSample) -> None:
        if self.memory_size <= 0:
            return
        with self._memory_lock:
            self.memory[key] = sample
            self.memory.move_to_end(key)
            while len(self.memory) > self.memory_size:
                self.memory.popitem(last=False)


@dataclass(frozen=True)
class ProducerSpec:
    """How to build a producer in another process (a Ray actor); everything in it is picklable."""

    encoders: Callable[[], Any]  # builds the encoder object, once per producer
    cache_dir: str | None = None  # None: no disk cache
    encoder_id: str = ""
    memory_size: int = 0

    def build(self, name: str) -> Producer:
        disk = LatentCache(self.cache_dir, self.encoder_id) if self.cache_dir else None
        return Producer(self.encoders(), disk, self.memory_size, name, to_cpu=True)


@dataclass(frozen=True)
class PipelineEncoders:
    """Loads the frozen condition encoder and VAE of a pipeline folder onto `device`."""

    pipeline: str
    device: str = "cpu"  # "cuda": the GPU Ray assigned to the producer actor
    text_ids: bool = False  # tokenize prompts only (the trainer trains the text encoder)

    def __call__(self) -> SampleEncoder:
        encoder, vae = load_frozen_encoders(self.pipeline, self.device)
        return SampleEncoder(encoder, vae, cache_size=0, device=self.device, text_ids=self.text_ids,
                             edit_area=pipeline_edit_area(self.pipeline))
