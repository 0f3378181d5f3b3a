"""The data plane without Ray: persistent cache, producers, the consumer feed (order, exactly once,
backpressure), data versions (live updates) and the trainer's use of it all."""

import json
import os
import threading
import time
from dataclasses import replace

import pytest
import torch
from PIL import Image

from qwenimage.train.config import DataConfig, OutputConfig, StageConfig, TrainConfig
from qwenimage.train.data import BatchPlan, EncodedSample
from qwenimage.train.dataplane import (EncodeJob, Feed, LatentCache, LocalPool, Producer, Schedule,
                                       encoder_identity)
from qwenimage.train.dataplane.synthetic import SyntheticEncoder
from qwenimage.train.dataplane.updates import DataUpdates, load_versions

RECORDS = 12


def write_records(folder, count=RECORDS, prefix=""):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(folder / f"{prefix}{i:02d}.png")
        (folder / f"{prefix}{i:02d}.txt").write_text(f"card {prefix}{i}")
    return folder


@pytest.fixture
def records_dir(tmp_path):
    return write_records(tmp_path / "cards")


def make_config(tmp_path, sources, steps=6, batch=4, **data):
    return TrainConfig(data=DataConfig(sources=[str(s) for s in sources], batch_size=batch, **data),
                       stages=[StageConfig(steps=steps, resolution=32)], output=OutputConfig(dir=str(tmp_path / "run")))


class CountingEncoder(SyntheticEncoder):
    """A SyntheticEncoder that counts its calls (shared by the threads of a local pool)."""

    calls: list

    def __init__(self, seconds=0.0):
        super().__init__(seconds)
        object.__setattr__(self, "calls", [])

    def encode_uncached(self, record, task, resolution):
        self.calls.append(record.id)
        return super().encode_uncached(record, task, resolution)


def local_feed(schedule, encoder, cache_dir=None, prefetch=2, workers=2, end=None):
    disk = LatentCache(cache_dir, "enc") if cache_dir else None
    pool = LocalPool(Producer(encoder, disk, name="local"), workers)
    end = end if end is not None else schedule.config.total_steps
    return Feed(pool, schedule.jobs, end, prefetch)


def assert_same(sample, expected):
    assert torch.equal(sample.latents, expected.latents) and torch.equal(sample.text, expected.text)
    assert len(sample.conditions) == len(expected.conditions)


def take_epoch(feed, schedule, first, positions):
    """[(job, sample)] over `positions` micro-steps, checking every sample against a fresh encoding."""
    out = []
    for position in range(first, first + positions):
        jobs, samples = schedule.jobs(position), feed.take(position)
        assert len(jobs) == len(samples)
        for job, sample in zip(jobs, samples):
            assert_same(sample, SyntheticEncoder().encode_uncached(job.record, job.task, job.resolution))
            out.append((job, sample))
    return out


# ---- cache ------------------------------------------------------------------------------------------------
def test_cache_round_trip_atomic_files_and_unreadable_entries(tmp_path, records_dir):
    from qwenimage.train.records import read_records

    record = read_records([records_dir])[0]
    cache = LatentCache(tmp_path / "cache", "enc")
    job = EncodeJob(record, "i2i", 32)
    assert cache.get(job) is None
    sample = EncodedSample(torch.randn(16, 4, 4), torch.randn(5, 8), [torch.randn(16, 4, 4)])
    path = cache.put(job, sample)
    assert path.parent.parent.parent.name == "r32" and path.suffix == ".safetensors"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    back = cache.get(job)
    assert_same(back, sample) and torch.equal(back.conditions[0], sample.conditions[0])
    assert cache.get(EncodeJob(record, "t2i", 32)) is None and cache.get(EncodeJob(record, "i2i", 64)) is None
    path.write_bytes(path.read_bytes()[:40])  # a truncated file (e.g. written by hand) reads as a miss
    assert cache.get(job) is None and len(cache) == 1


def test_fingerprint_and_encoder_identity_follow_what_shapes_the_encoding(tmp_path, records_dir):
    from qwenimage.train.records import read_records

    record = read_records([records_dir])[0]
    before = EncodeJob(record, "t2i", 32).fingerprint()
    assert before == EncodeJob(record, "t2i", 32).fingerprint()
    assert before != EncodeJob(replace(record, caption="other"), "t2i", 32).fingerprint()
    assert before != EncodeJob(record, "i2i", 32).fingerprint() != EncodeJob(record, "i2i", 64).fingerprint()
    stat = record.image.stat()
    os.utime(record.image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the image file was replaced
    assert before != EncodeJob(record, "t2i", 32).fingerprint()
    pipeline = tmp_path / "pipe"
    (pipeline / "vae").mkdir(parents=True)
    (pipeline / "vae" / "config.json").write_text('{"z_dim": 16}')
    (pipeline / "transformer").mkdir()
    first = encoder_identity(pipeline)
    (pipeline / "transformer" / "config.json").write_text("{}")  # the trained model is not an encoder
    assert encoder_identity(pipeline) == first
    (pipeline / "vae" / "config.json").write_text('{"z_dim": 32}')
    assert encoder_identity(pipeline) != first


# ---- producer and feed ------------------------------------------------------------------------------------
def test_each_rank_gets_its_samples_in_order_and_every_sample_once_per_epoch(tmp_path, records_dir):
    config = make_config(tmp_path, [records_dir], steps=6, batch=4)
    per_epoch = RECORDS // 4  # positions (global micro-batches) per epoch
    seen = {0: [], 1: []}
    for epoch in range(2):
        for rank in (0, 1):
            schedule = Schedule(config, rank=rank, world=2)
            feed = local_feed(schedule, SyntheticEncoder(0.002))
            seen[epoch] += [job.record.id for job, _ in take_epoch(feed, schedule, epoch * per_epoch, per_epoch)]
            feed.close()
    for epoch in (0, 1):
        assert sorted(seen[epoch]) == sorted(f"cards/{i:02d}" for i in range(RECORDS))
    assert seen[0] != seen[1]  # each epoch has its own order


def test_second_epoch_and_a_restarted_run_come_from_the_disk_cache(tmp_path, records_dir):
    schedule = Schedule(make_config(tmp_path, [records_dir], steps=6, batch=4))
    encoder = CountingEncoder()
    feed = local_feed(schedule, encoder, tmp_path / "cache")
    take_epoch(feed, schedule, 0, 3)
    assert len(encoder.calls) == RECORDS and feed.metrics()["cache_misses"] == RECORDS
    take_epoch(feed, schedule, 3, 3)
    metrics = feed.metrics()
    assert len(encoder.calls) == RECORDS, "the second epoch encoded again"
    assert metrics["cache_hits"] == RECORDS and metrics["cache_hit_rate"] == 1.0
    feed.close()
    restarted = local_feed(schedule, CountingEncoder(), tmp_path / "cache")  # new process: empty memory
    take_epoch(restarted, schedule, 0, 3)
    assert restarted.pool.producer.encoder.calls == [] and restarted.metrics()["cache_hits"] == RECORDS
    restarted.close()


class RecordingPool(LocalPool):
    """Counts jobs submitted and not yet collected by the consumer."""

    def __init__(self, producer, workers):
        super().__init__(producer, workers)
        self.outstanding = self.peak = 0

    def submit(self, job):
        self.outstanding += 1
        self.peak = max(self.peak, self.outstanding)
        return super().submit(job)

    def wait(self, ticket):
        self.outstanding -= 1
        return super().wait(ticket)


def test_producers_work_ahead_within_the_prefetch_window(tmp_path, records_dir):
    schedule = Schedule(make_config(tmp_path, [records_dir], steps=12, batch=4))
    prefetch, step_s = 2, 0.04
    pool = RecordingPool(Producer(SyntheticEncoder(0.004), name="local"), 2)  # 4 x 4 ms / 2 threads < 40 ms
    feed = Feed(pool, schedule.jobs, 12, prefetch)
    feed.take(0)
    feed.metrics()
    for position in range(1, 12):
        time.sleep(step_s)  # the training step
        feed.take(position)
    metrics = feed.metrics()
    assert pool.peak <= (prefetch + 1) * 4  # backpressure: the window never grows past prefetch micro-batches
    assert metrics["data_idle_pct"] < 5, metrics
    assert metrics["queue_depth"] == 0 and feed.submitted_until == 12
    feed.close()


def test_feed_seeks_on_resume_and_the_local_lock_guards_shared_encoders(tmp_path, records_dir):
    schedule = Schedule(make_config(tmp_path, [records_dir], steps=6, batch=4))
    lock, inside, overlaps = threading.Lock(), [], []

    class Guarded(SyntheticEncoder):
        def encode_uncached(self, record, task, resolution):
            overlaps.append(len(inside))
            inside.append(1)
            time.sleep(0.002)
            inside.pop()
            return super().encode_uncached(record, task, resolution)

    feed = Feed(LocalPool(Producer(Guarded(), lock=lock), 3), schedule.jobs, 6, prefetch=3)
    take_epoch(feed, schedule, 4, 2)  # a run resumed at position 4
    take_epoch(feed, schedule, 1, 1)  # and a jump back
    assert max(overlaps) == 0
    feed.close()


# ---- schedule and live updates ----------------------------------------------------------------------------
def test_version_zero_is_the_trainers_batch_plan(tmp_path, records_dir):
    config = make_config(tmp_path, [records_dir], steps=6, batch=4)
    config.optim.grad_accumulation = 2
    schedule = Schedule(config, rank=1, world=2)
    from qwenimage.train.records import read_records

    plan = BatchPlan(read_records([records_dir]), config.stages[0], 0, config.seed, config.data.short_text_chars)
    for step in range(6):
        for micro in range(2):
            _, planned, _ = schedule.planned(step * 2 + micro)
            assert planned == plan.micro_batch(step * 2 + micro, 4, 1, 2)


def test_an_update_starts_at_an_epoch_boundary_after_the_prefetched_work(tmp_path, records_dir):
    extra = write_records(tmp_path / "more", 8, prefix="m")
    config = make_config(tmp_path, [records_dir], steps=40, batch=5)  # 12 records: epochs end mid-step
    schedule = Schedule(config)
    version = schedule.decide([str(records_dir), str(extra)], {"t2i": 1.0, "i2i": 1.0}, step=3, submitted_until=4)
    # positions 0..3 are with the producers; step 4 holds samples 20..24, where epoch 2 ends: start at step 5
    assert version.start_step == 5
    assert schedule.version_at(4).index == 0 and schedule.version_at(5).index == 1
    new_epoch = [schedule.planned(position)[1] for position in range(5, 9)]  # 20 new records = 4 steps of 5
    ids = [schedule.records[1][p.record].id for planned in new_epoch for p in planned]
    assert sorted(ids) == sorted([f"cards/{i:02d}" for i in range(12)] + [f"more/m{i:02d}" for i in range(8)])
    assert {p.task for planned in new_epoch for p in planned} == {"t2i", "i2i"}
    with pytest.raises(ValueError):
        schedule.decide([str(tmp_path / "missing")], None, step=10, submitted_until=10)
    assert len(schedule.versions) == 2  # the rejected update changed nothing


def test_sources_file_and_requests_become_changes(tmp_path, records_dir):
    schedule = Schedule(make_config(tmp_path, [records_dir]))
    latest = schedule.versions[-1]
    watched = tmp_path / "sources.yaml"
    updates = DataUpdates(str(watched))
    assert updates.poll(latest) is None  # no file yet
    watched.write_text(f"- {records_dir}\n")
    assert updates.poll(latest) is None  # the same sources as the running version
    watched.write_text(f"sources: [{records_dir}, /data/more]\ntasks: {{t2i: 2.0}}\n")
    assert updates.poll(latest) == {"sources": [str(records_dir), "/data/more"], "tasks": {"t2i": 2.0}}
    assert updates.poll(latest) is None  # unchanged file: nothing new
    updates.request(tasks={"i2i": 1.0})
    assert updates.poll(latest) == {"sources": [str(records_dir)], "tasks": {"i2i": 1.0}}


def test_trainer_takes_a_live_update_records_it_and_replays_it_on_resume(tmp_path, tiny_pipeline_dir):
    from qwenimage.train.config import ModelConfig, OptimConfig
    from qwenimage.train.trainer import Trainer

    cards, extra = write_records(tmp_path / "cards", 6), write_records(tmp_path / "more", 6, prefix="m")
    config = TrainConfig(model=ModelConfig(pipeline=str(tiny_pipeline_dir), preset="tiny"),
                         data=DataConfig(sources=[str(cards)], batch_size=4, prefetch=2, watch_every=2),
                         stages=[StageConfig(steps=10, resolution=32)], optim=OptimConfig(lr=1e-3),
                         output=OutputConfig(dir=str(tmp_path / "run"), log_every=1, checkpoint_every=4,
                                             tensorboard=False))
    trainer = Trainer(config)
    for _ in range(2):
        trainer.train_step(trainer.step)
        trainer.step += 1
    trainer.update_data(sources=[str(cards), str(extra)])
    trainer.run()
    # decided at step 2 (the next check); positions 2..3 are prefetched; step 4 holds samples 16..19, where the
    # third epoch of the 6 cards ends: the new data starts at step 5
    versions = load_versions(tmp_path / "run")
    assert [(v.index, v.decided_step) for v in versions] == [(0, 0), (1, 2)] and versions[1].start_step == 5
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["data_version"] for r in rows] == [0, 0, 0, 1, 1, 1, 1, 1]  # steps 2..9 as run
    assert {"data_idle_pct", "data_wait_s", "producer_samples_per_s", "queue_depth", "cache_hit_rate"} <= set(rows[0])
    jobs = [job.record.id for position in range(5, 8) for job in trainer.schedule.jobs(position)]
    assert sorted(jobs) == sorted([f"cards/{i:02d}" for i in range(6)] + [f"more/m{i:02d}" for i in range(6)])
    resumed = Trainer(config)  # a restarted run reads the recorded versions: the same data sequence
    assert [v.to_dict() for v in resumed.schedule.versions] == [v.to_dict() for v in versions]
