"""From admitted GenerationRequests to an HTTP answer: queue a job, await its events (watching for the
client going away), and render the OpenAI response body or its Server-Sent Events stream."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import AsyncIterator, Literal

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool

from qwenimage.pipelines.request import GenerationRequest
from qwenimage.serve.config import ServeConfig
from qwenimage.serve.errors import ServeError, as_serve_error
from qwenimage.serve.metrics import ServeMetrics
from qwenimage.serve.outputs import ImageStore, b64, encode_image
from qwenimage.serve.protocol import ImageData, ImageParams, ImagesResponse, event_names
from qwenimage.serve.scheduler import Done, Failed, Job, Partial, QueueFull, Scheduler, ShuttingDown
from qwenimage.serve.worker import Worker

DISCONNECT_POLL_S = 0.25  # how often a waiting handler checks that its client is still there
Kind = Literal["generation", "edit"]


@dataclass
class Serving:
    config: ServeConfig
    worker: Worker
    scheduler: Scheduler
    store: ImageStore
    metrics: ServeMetrics

    async def respond(self, request: Request, params: ImageParams, requests: list[GenerationRequest], kind: Kind):
        for r in requests:
            self.worker.admit(r)  # ValueError naming the bad value -> 400, before taking a queue slot
        job = Job(requests, asyncio.get_running_loop(), partial_images=(params.partial_images or 0)
                  if params.stream else 0)
        try:
            self.scheduler.submit(job)
        except QueueFull as err:
            raise ServeError(429, str(err), code="queue_full", headers={"Retry-After": str(err.retry_after)}) from err
        if params.stream:
            return StreamingResponse(self._stream(job, params, kind), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        images = await self._wait(job, request, kind)
        data = [await run_in_threadpool(self._image_data, image, params, request) for image in images]
        body = ImagesResponse(created=int(time.time()), data=data, output_format=params.output_format or "png",
                              quality=params.quality, size=_size(images[0]))
        return JSONResponse(body.model_dump(exclude_none=True))

    async def _wait(self, job: Job, request: Request, kind: Kind) -> list[Image.Image]:
        done = False
        try:
            while True:
                try:
                    event = await asyncio.wait_for(job.events.get(), timeout=DISCONNECT_POLL_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        raise ServeError(499, "the client closed the connection", code="client_closed") from None
                    continue
                if isinstance(event, Failed):
                    done = True
                    raise client_error(event.error)
                if isinstance(event, Done):
                    done = True
                    self.metrics.request_latency.labels(kind).observe(time.monotonic() - job.submitted)
                    return event.images
        finally:
            if not done:  # client gone or handler cancelled: free the queue slot or stop the batch
                self.scheduler.cancel(job)

    def _image_data(self, image: Image.Image, params: ImageParams, request: Request) -> ImageData:
        data = encode_image(image, params.output_format or "png", params.output_compression)
        if params.response_format == "url":
            name = self.store.put(data, params.output_format or "png")
            return ImageData(url=str(request.url_for("image_file", name=name)))
        return ImageData(b64_json=b64(data))

    async def _stream(self, job: Job, params: ImageParams, kind: Kind) -> AsyncIterator[str]:
        """partial_image events as the sampler's x0 previews arrive, then one completed event per image; a
        failure ends the stream with the error body as its last event."""
        partial_name, completed_name = event_names(kind)
        fmt = params.output_format or "png"
        common = {"background": "opaque", "output_format": fmt, "quality": params.quality or "auto"}
        done = False
        try:
            while True:
                event = await job.events.get()
                if isinstance(event, Partial):
                    data = await run_in_threadpool(encode_image, event.image, fmt, params.output_compression)
                    yield _sse(partial_name, {"type": partial_name, "b64_json": b64(data),
                                              "created_at": int(time.time()), "size": _size(event.image),
                                              "partial_image_index": event.partial_index, **common})
                elif isinstance(event, Done):
                    done = True
                    self.metrics.request_latency.labels(kind).observe(time.monotonic() - job.submitted)
                    for image in event.images:
                        data = await run_in_threadpool(encode_image, image, fmt, params.output_compression)
                        yield _sse(completed_name, {"type": completed_name, "b64_json": b64(data),
                                                    "created_at": int(time.time()), "size": _size(image),
                                                    "usage": _NO_USAGE, **common})
                    return
                else:
                    done = True
                    yield _sse("error", client_error(event.error).body())
                    return
        finally:
            if not done:
                self.scheduler.cancel(job)


def client_error(err: BaseException) -> ServeError:
    if isinstance(err, ShuttingDown):
        return ServeError(503, str(err), code="shutting_down")
    return as_serve_error(err)


_NO_USAGE = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
             "input_tokens_details": {"image_tokens": 0, "text_tokens": 0}}


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _size(image: Image.Image) -> str:
    return f"{image.width}x{image.height}"
