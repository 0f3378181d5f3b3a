"""The data plane on local Ray (2 CPUs): two producer actors and a consumer; every sample exactly once per
epoch, the second epoch from the cache, and producers killed mid-epoch (ray.kill, SIGKILL) lose nothing."""

import logging
import os
import time
import signal

import pytest

from qwenimage.train.dataplane import Feed, ProducerSpec, Schedule
from qwenimage.train.dataplane.synthetic import SyntheticEncoder
from tests.unit.test_dataplane import RECORDS, make_config, records_dir, take_epoch  # noqa: F401

ray = pytest.importorskip("ray")
PER_EPOCH = RECORDS // 4  # micro-batches of 4


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, logging_level=logging.WARNING, include_dashboard=False)
    yield ray
    ray.shutdown()


def ray_feed(tmp_path, schedule, seconds, max_restarts=3):
    from qwenimage.train.dataplane.ray_pool import RayOptions, RayPool

    spec = ProducerSpec(SyntheticEncoder(seconds), str(tmp_path / "cache"), "enc")
    pool = RayPool(spec, 2, RayOptions(max_restarts=max_restarts))
    return Feed(pool, schedule.jobs, schedule.config.total_steps, prefetch=2)


def ids(pairs):
    return sorted(job.record.id for job, _ in pairs)


def test_two_actors_deliver_every_sample_once_and_the_second_epoch_from_the_cache(local_ray, tmp_path,
                                                                                 records_dir):  # noqa: F811
    schedule = Schedule(make_config(tmp_path, [records_dir], steps=2 * PER_EPOCH))
    feed = ray_feed(tmp_path, schedule, 0.01)
    everything = sorted(f"cards/{i:02d}" for i in range(RECORDS))
    assert ids(take_epoch(feed, schedule, 0, PER_EPOCH)) == everything  # contents checked in take_epoch
    first = feed.metrics()
    assert first["cache_misses"] == RECORDS and first["cache_hits"] == 0
    assert ids(take_epoch(feed, schedule, PER_EPOCH, PER_EPOCH)) == everything
    second = feed.metrics()
    assert second["cache_misses"] == RECORDS and second["cache_hits"] == RECORDS, "epoch 2 encoded again"
    assert second["producers_alive"] == 2 and second["producer_resubmits"] == 0
    feed.close()


def test_producers_killed_mid_epoch_are_restarted_and_nothing_is_lost(local_ray, tmp_path,
                                                                      records_dir):  # noqa: F811
    schedule = Schedule(make_config(tmp_path, [records_dir], steps=2 * PER_EPOCH))
    feed = ray_feed(tmp_path, schedule, 0.05)
    pool = feed.pool
    before = pool.pids()
    seen = take_epoch(feed, schedule, 0, 1)
    ray.kill(pool.actors[0], no_restart=False)  # Ray restarts it; its jobs in flight go to the other producer
    seen += take_epoch(feed, schedule, 1, 1)
    os.kill(before[1], signal.SIGKILL)  # the process dies under Ray's feet
    seen += take_epoch(feed, schedule, 2, 2 * PER_EPOCH - 2)
    everything = sorted(f"cards/{i:02d}" for i in range(RECORDS))
    assert ids(seen[:RECORDS]) == everything and ids(seen[RECORDS:]) == everything
    stats = pool.stats()
    assert stats["producer_resubmits"] >= 1 and stats["producers_alive"] == 2
    after = pool.pids()
    assert after[0] != before[0] and after[1] != before[1]  # both were restarted and serve again
    feed.close()


def test_a_producer_that_cannot_restart_leaves_its_work_to_the_others(local_ray, tmp_path,
                                                                      records_dir):  # noqa: F811
    schedule = Schedule(make_config(tmp_path, [records_dir], steps=PER_EPOCH))
    feed = ray_feed(tmp_path, schedule, 0.05, max_restarts=0)
    seen = take_epoch(feed, schedule, 0, 1)
    ray.kill(feed.pool.actors[1], no_restart=True)
    seen += take_epoch(feed, schedule, 1, PER_EPOCH - 1)
    assert ids(seen) == sorted(f"cards/{i:02d}" for i in range(RECORDS))
    assert alive_after_polling(feed.pool, 1) == 1
    ray.kill(feed.pool.actors[0], no_restart=True)  # between jobs: only stats()'s own calls can notice this
    assert alive_after_polling(feed.pool, 0) == 0
    feed.close()


def alive_after_polling(pool, expected: int, seconds: float = 30.0) -> int:
    """stats() until it reports `expected` live producers: Ray confirms deaths asynchronously."""
    deadline = time.time() + seconds
    while pool.stats()["producers_alive"] != expected and time.time() < deadline:
        time.sleep(0.1)
    return pool.stats()["producers_alive"]
