"""The embedded producer pool: worker threads in the trainer's process, no Ray needed.

The threads share one Producer, i.e. the trainer's own encoders (one copy of the weights); encoder calls
are serialised by the producer's lock, while cache reads, image decoding and resizing run in parallel and
everything overlaps with the training step.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from qwenimage.train.data import EncodedSample
from qwenimage.train.dataplane.jobs import EncodeJob, ProduceInfo
from qwenimage.train.dataplane.producer import Producer


class LocalPool:
    def __init__(self, producer: Producer, workers: int = 1):
        if workers < 1:
            raise ValueError(f"a local producer pool needs at least one worker thread, got {workers}")
        self.producer, self.size = producer, workers
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="qwenimage-producer")

    def submit(self, job: EncodeJob) -> Future:
        return self.executor.submit(self.producer.produce, job)

    def wait(self, ticket: Future) -> tuple[EncodedSample, ProduceInfo]:
        return ticket.result()

    def count_done(self, tickets: list[Future]) -> int:
        return sum(t.done() for t in tickets)

    def cancel(self, tickets: list[Future]) -> None:
        for ticket in tickets:
            ticket.cancel()

    def stats(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
