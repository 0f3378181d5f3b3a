"""The consumer side of the data plane: each trainer rank reads its encoded micro-batches from here.

The batch plan is a pure function of the position (global micro-step), so the feed knows what comes next:
it keeps the next `prefetch` micro-batches submitted to the producers while the current one trains, and
hands results out strictly in order. The window bounds memory (backpressure): producers never run more
than `prefetch` micro-batches ahead. A sample that is already in flight (the same record at the end of one
epoch and the start of the next, within the window) is not submitted twice: both positions share one
result. Seeking (a resumed run) simply starts the window at the new position.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from qwenimage.train.data import EncodedSample
from qwenimage.train.dataplane.jobs import EncodeJob, ProduceInfo


class ProducerPool(Protocol):
    size: int

    def submit(self, job: EncodeJob) -> Any: ...
    def wait(self, ticket: Any) -> tuple[EncodedSample, ProduceInfo]: ...
    def count_done(self, tickets: list[Any]) -> int: ...
    def cancel(self, tickets: list[Any]) -> None: ...
    def stats(self) -> dict[str, float]: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Pending:
    key: str  # the job's fingerprint
    ticket: Any  # the pool's handle on the result
    shared: bool  # another position submitted the same sample: not counted as producer work again


@dataclass
class Counters:
    takes: int = 0
    samples: int = 0
    hits: int = 0
    wait_s: float = 0.0
    producer_s: float = 0.0

    def add(self, infos: list[ProduceInfo], wait_s: float) -> None:
        self.takes += 1
        self.samples += len(infos)
        self.hits += sum(i.hit for i in infos)
        self.wait_s += wait_s
        self.producer_s += sum(i.seconds for i in infos)


class Feed:
    def __init__(self, pool: ProducerPool, jobs_at: Callable[[int], list[EncodeJob]], end: int, prefetch: int = 4,
                 positions_per_step: int = 1):
        if prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {prefetch}")
        self.pool, self.jobs_at, self.end, self.prefetch = pool, jobs_at, end, prefetch
        self.positions_per_step = positions_per_step
        self.window: deque[tuple[int, list[Pending]]] = deque()  # in position order
        self.inflight: dict[str, tuple[Any, int]] = {}  # fingerprint -> (ticket, positions waiting for it)
        self.next_position = self.submitted_until = 0
        self.total, self.recent = Counters(), Counters()
        self.since = time.perf_counter()

    def take(self, position: int) -> list[EncodedSample]:
        """The encoded samples of `position`, in plan order; blocks only if producers are behind."""
        if position != self.next_position or not self.window:
            self.seek(position)
        self._fill(max(position + 1, min(position + 1 + self.prefetch, self.end)))  # this one and `prefetch` more
        first, pending = self.window.popleft()
        assert first == position, (first, position)
        start = time.perf_counter()
        results = [self._collect(p) for p in pending]
        waited = time.perf_counter() - start
        infos = [info for _, info in results]
        self.total.add(infos, waited)
        self.recent.add(infos, waited)
        self.next_position = position + 1
        return [sample for sample, _ in results]

    def seek(self, position: int) -> None:
        self.pool.cancel([ticket for ticket, _ in self.inflight.values()])
        self.window.clear()
        self.inflight.clear()
        self.next_position = self.submitted_until = position

    def _fill(self, until: int) -> None:
        while self.submitted_until < until:
            position = self.submitted_until
            self.window.append((position, [self._submit(job) for job in self.jobs_at(position)]))
            self.submitted_until += 1

    def _submit(self, job: EncodeJob) -> Pending:
        key = job.fingerprint()
        ticket, waiting = self.inflight.get(key, (None, 0))
        if ticket is None:
            ticket = self.pool.submit(job)
        self.inflight[key] = (ticket, waiting + 1)
        return Pending(key, ticket, shared=waiting > 0)

    def _collect(self, pending: Pending) -> tuple[EncodedSample, ProduceInfo]:
        sample, info = self.pool.wait(pending.ticket)
        ticket, waiting = self.inflight.pop(pending.key)
        if waiting > 1:
            self.inflight[pending.key] = (ticket, waiting - 1)
        return sample, replace(info, hit=True, seconds=0.0) if pending.shared else info

    def metrics(self) -> dict[str, float]:
        """Since the last call: consumer wait per step and idle share, producer throughput, queue depth and
        cache hit rate; and the run's cache hit / miss (= encode) counts."""
        now = time.perf_counter()
        recent, wall = self.recent, max(now - self.since, 1e-9)
        steps = max(recent.takes / self.positions_per_step, 1e-9)
        pending = [ticket for ticket, _ in self.inflight.values()]
        out = {"data_wait_s": recent.wait_s / steps if recent.takes else 0.0,
               "data_idle_pct": 100.0 * recent.wait_s / wall,
               "data_samples_per_s": recent.samples / wall,
               "producer_samples_per_s": self.pool.size * recent.samples / recent.producer_s
               if recent.producer_s > 0 else 0.0,
               "queue_depth": len(pending), "queue_ready": self.pool.count_done(pending),
               "cache_hit_rate": recent.hits / recent.samples if recent.samples else 0.0,
               "cache_hits": self.total.hits, "cache_misses": self.total.samples - self.total.hits,
               **self.pool.stats()}
        self.recent, self.since = Counters(), now
        return out

    def close(self) -> None:
        self.seek(self.next_position)
        self.pool.close()
