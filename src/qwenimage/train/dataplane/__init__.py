"""The producer-consumer data plane: producers encode (Qwen2.5-VL + VAE) ahead of the trainer, consumers
(trainer ranks) only train.

    schedule = Schedule(config, rank, world)              # position -> samples: a pure function
    feed = build_feed(config, schedule, encoder, lock)    # local threads or Ray actors, by config
    samples = feed.take(position)                         # in order; producers stay `prefetch` ahead
    feed.metrics()                                        # wait / idle %, throughput, queue, cache hits

Modules: jobs (the unit of work), cache (persistent safetensors cache), producer (memory -> disk -> encode),
local / ray_pool (the two producer pools), feed (the consumer), schedule (stages x data versions),
updates (live data changes), synthetic (a stand-in encoder for tests and benchmarks).
"""

from __future__ import annotations

import threading
from pathlib import Path

from qwenimage.images import EDIT_AREA
from qwenimage.train.config import TrainConfig
from qwenimage.train.data import pipeline_edit_area
from qwenimage.train.dataplane.cache import ENCODER_PARTS, LatentCache, encoder_identity
from qwenimage.train.dataplane.feed import Feed, ProducerPool
from qwenimage.train.dataplane.jobs import EncodeJob, ProduceInfo
from qwenimage.train.dataplane.local import LocalPool
from qwenimage.train.dataplane.producer import PipelineEncoders, Producer, ProducerSpec
from qwenimage.train.dataplane.schedule import DataVersion, Schedule


def cache_folder(config: TrainConfig) -> str | None:
    if not config.data.disk_cache:
        return None
    return config.data.cache_dir or str(Path(config.output.dir) / "latent-cache")


def build_pool(config: TrainConfig, local_encoder=None, lock: threading.Lock | None = None,
               world: int = 1) -> ProducerPool:
    """data.producer=local: threads sharing `local_encoder` (the trainer's); ray: actors that load their own."""
    data, cache_dir = config.data, cache_folder(config)
    text_ids = config.model.train_text_encoder
    # token ids do not depend on the text encoder's weights: runs that train it share their cached samples
    parts = tuple(p for p in ENCODER_PARTS if p != "text_encoder") if text_ids else ENCODER_PARTS
    # the edit area shapes TI2I encodings (the VL copy of the source); the official 1024^2 adds nothing, so caches
    # written before the setting existed stay valid
    area = pipeline_edit_area(config.model.pipeline)
    extra = ("text_ids" if text_ids else "") + (f"|edit_area={area}" if area != EDIT_AREA else "")
    encoder_id = encoder_identity(config.model.pipeline, extra, parts)
    if data.producer == "local":
        disk = LatentCache(cache_dir, encoder_id) if cache_dir else None
        return LocalPool(Producer(local_encoder, disk, data.cache_size, "local", lock), data.producers)
    if world > 1 and not data.ray_address:
        raise ValueError("data.producer=ray with several trainer ranks needs data.ray_address (e.g. auto) so that "
                         "the ranks share one Ray cluster")
    from qwenimage.train.dataplane.ray_pool import RayOptions, RayPool

    device = "cuda" if data.producer_gpus > 0 else "cpu"
    spec = ProducerSpec(PipelineEncoders(config.model.pipeline, device, text_ids), cache_dir, encoder_id,
                        data.cache_size)
    options = RayOptions(data.ray_address, data.producer_cpus, data.producer_gpus, data.max_restarts)
    return RayPool(spec, data.producers, options)


def build_feed(config: TrainConfig, schedule: Schedule, local_encoder=None, lock: threading.Lock | None = None,
               world: int = 1) -> Feed:
    accumulation = config.optim.grad_accumulation
    return Feed(build_pool(config, local_encoder, lock, world), schedule.jobs, config.total_steps * accumulation,
                config.data.prefetch, positions_per_step=accumulation)


__all__ = ["DataVersion", "EncodeJob", "Feed", "LatentCache", "LocalPool", "PipelineEncoders", "ProduceInfo",
           "Producer", "ProducerSpec", "Schedule", "build_feed", "build_pool", "cache_folder", "encoder_identity"]
