"""Prometheus metrics of one server, in a registry of its own (no process-wide singletons, so two apps in
one process, as in the tests, count separately)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the /metrics route)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge("qwenimage_queue_depth", "requests waiting for the worker", registry=r)
        self.batch_size = Histogram("qwenimage_batch_size", "images per pipeline call", buckets=BATCH_BUCKETS,
                                    registry=r)
        self.request_latency = Histogram("qwenimage_request_latency_seconds",
                                         "from admission to the last image of a request", ["endpoint"],
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.batch_seconds = Histogram("qwenimage_batch_seconds", "time of one pipeline call",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.images = Counter("qwenimage_images", "images generated", registry=r)
        self.images_per_second = Gauge("qwenimage_images_per_second", "throughput of the last pipeline call",
                                       registry=r)
        self.rejected = Counter("qwenimage_rejected_requests", "requests refused because the queue was full",
                                registry=r)
        self.cancelled = Counter("qwenimage_cancelled_requests", "requests whose client went away", registry=r)

    def observe_batch(self, images: int, seconds: float) -> None:
        self.batch_size.observe(images)
        self.batch_seconds.observe(seconds)
        self.images.inc(images)
        self.images_per_second.set(images / seconds if seconds > 0 else 0.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
