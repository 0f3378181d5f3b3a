"""The batching scheduler: a bounded queue in front of one worker thread. It knows no HTTP.

Waiting jobs with the same batch key (steps and start step, the pipeline's own grouping; sizes, prompts
and tasks may differ) run as one pipeline call of up to `max_batch` images. The pipeline runs in the
worker thread, so the event loop only awaits events; results, previews and errors cross back with
`loop.call_soon_threadsafe`. A cancelled job leaves the queue at once; a running batch stops at the next
step when every job in it was cancelled (a batch shared with live jobs runs on for them).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from PIL import Image

from qwenimage.pipelines.request import GenerationRequest
from qwenimage.sampling.sampler import start_index
from qwenimage.serve.metrics import ServeMetrics

log = logging.getLogger(__name__)


class QueueFull(Exception):
    def __init__(self, depth: int, retry_after: int):
        super().__init__(f"the queue is full ({depth} requests waiting); retry in about {retry_after} s")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    """The job was still waiting when the server stopped."""


class Cancelled(Exception):
    """Raised inside the pipeline's progress callback to stop a batch nobody waits for."""


@dataclass
class Partial:
    index: int  # image within the job
    partial_index: int  # 0..partial_images-1
    image: Image.Image


@dataclass
class Done:
    images: list[Image.Image]


@dataclass
class Failed:
    error: BaseException


def batch_key(request: GenerationRequest) -> tuple[int, int]:
    return request.num_steps, start_index(request.num_steps, request.start_strength())


def preview_steps(steps: int, partial_images: int) -> list[int]:
    """The steps (1-based) whose x0 estimate is sent as a partial image: spread evenly, the last at or
    before the final step. Fewer than asked when there are fewer steps than partial images."""
    return sorted({max(1, math.ceil(steps * (j + 1) / (partial_images + 1))) for j in range(partial_images)})


@dataclass(eq=False)
class Job:
    """One HTTP request: its n GenerationRequests and the queue of events its handler awaits."""

    requests: list[GenerationRequest]
    loop: asyncio.AbstractEventLoop
    partial_images: int = 0
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple[int, int]:
        return batch_key(self.requests[0])

    def emit(self, event: Partial | Done | Failed) -> None:
        """Thread-safe: hand an event to the handler's loop (dropped when that loop has closed)."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:
            pass


RunBatch = Callable[..., list[Image.Image]]  # worker.run(requests, progress=, preview=, wants_preview=)


class Scheduler:
    def __init__(self, run_batch: RunBatch, metrics: ServeMetrics, *, max_batch: int, max_queue: int,
                 batch_wait_s: float = 0.0):
        self.run_batch, self.metrics = run_batch, metrics
        self.max_batch, self.max_queue, self.batch_wait_s = max_batch, max_queue, batch_wait_s
        self._pending: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._batch_seconds = 1.0  # moving average of a pipeline call, for Retry-After
        self._thread = threading.Thread(target=self._loop, name="qwenimage-serve-worker", daemon=True)

    # ---- the event-loop side --------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            for job in self._pending:
                job.emit(Failed(ShuttingDown("the server is shutting down; retry on another replica or later")))
            self._pending.clear()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    @property
    def depth(self) -> int:
        return len(self._pending)

    def submit(self, job: Job) -> None:
        """Queue a job, or QueueFull with a Retry-After estimate when `max_queue` jobs already wait."""
        with self._cond:
            if len(self._pending) >= self.max_queue:
                self.metrics.rejected.inc()
                rounds = math.ceil(len(self._pending) / self.max_batch)
                raise QueueFull(len(self._pending), max(1, math.ceil(rounds * self._batch_seconds)))
            self._pending.append(job)
            self.metrics.queue_depth.set(len(self._pending))
            self._cond.notify()

    def cancel(self, job: Job) -> None:
        """The client went away: drop the job if it still waits, else let a running batch notice."""
        if job.cancelled.is_set():
            return
        job.cancelled.set()
        self.metrics.cancelled.inc()
        with self._cond:
            if job in self._pending:
                self._pending.remove(job)
                self.metrics.queue_depth.set(len(self._pending))

    # ---- the worker thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while not self._pending and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return None
            deadline = time.monotonic() + self.batch_wait_s  # let concurrent requests arrive and join the batch
            while (not self._stopped and self._pending and time.monotonic() < deadline
                   and sum(len(job.requests) for job in self._pending) < self.max_batch):
                self._cond.wait(deadline - time.monotonic())
            if self._stopped:
                return None
            if not self._pending:  # every waiting job was cancelled meanwhile
                return []
            first = self._pending.popleft()
            batch, images = [first], len(first.requests)
            for job in list(self._pending):
                if job.key == first.key and images + len(job.requests) <= self.max_batch:
                    self._pending.remove(job)
                    batch.append(job)
                    images += len(job.requests)
            self.metrics.queue_depth.set(len(self._pending))
            return batch

    def _run(self, batch: list[Job]) -> None:
        owners = [(job, i) for job in batch for i in range(len(job.requests))]  # flat index -> (job, image)
        wanted = {}  # flat index -> {step: partial index}
        for flat, (job, i) in enumerate(owners):
            steps = job.requests[i].num_steps - job.key[1]
            wanted[flat] = {s: p for p, s in enumerate(preview_steps(steps, job.partial_images))}

        def progress(step: int, steps: int) -> None:
            if all(job.cancelled.is_set() for job in batch):
                raise Cancelled

        images: list[Image.Image] = []
        try:
            for offset in range(0, len(owners), self.max_batch):  # several calls only for a job with n > max_batch
                images += self._call(owners[offset: offset + self.max_batch], offset, wanted, progress)
        except Cancelled:
            log.info("batch of %d requests cancelled: every client went away", len(batch))
            return
        except BaseException as err:  # noqa: BLE001  (every failure goes to the clients; the thread lives on)
            for job in batch:
                job.emit(Failed(err))
            return
        offset = 0
        for job in batch:
            job.emit(Done(images[offset: offset + len(job.requests)]))
            offset += len(job.requests)

    def _call(self, owners: list[tuple[Job, int]], offset: int, wanted: dict[int, dict[int, int]],
              progress: Callable[[int, int], None]) -> list[Image.Image]:
        """One pipeline call for `owners` (flat indices offset.. of the batch); previews go to their jobs."""
        def preview(flat: int, step: int, steps: int, image: Image.Image) -> None:
            job, i = owners[flat]
            job.emit(Partial(i, wanted[offset + flat][step], image))

        start = time.monotonic()
        images = self.run_batch([job.requests[i] for job, i in owners], progress=progress,
                                preview=preview if any(job.partial_images for job, _ in owners) else None,
                                wants_preview=lambda flat, step, steps: step in wanted[offset + flat])
        seconds = time.monotonic() - start
        self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * seconds
        self.metrics.observe_batch(len(owners), seconds)
        return images
