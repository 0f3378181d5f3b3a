"""`create_app(config, worker)`: the FastAPI application of the images server.

The worker is injected (a loaded `PipelineWorker`, or a fake in tests), so the app holds no global state:
the scheduler, metrics registry and file store are built per app and started / stopped with its lifespan.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from qwenimage.serve.config import ServeConfig
from qwenimage.serve.errors import install_error_handlers
from qwenimage.serve.metrics import ServeMetrics
from qwenimage.serve.outputs import ImageStore
from qwenimage.serve.routes import build_router
from qwenimage.serve.scheduler import Scheduler
from qwenimage.serve.serving import Serving
from qwenimage.serve.uploads import BodyLimit
from qwenimage.serve.worker import Worker


def create_app(config: ServeConfig, worker: Worker) -> FastAPI:
    metrics = ServeMetrics()
    scheduler = Scheduler(worker.run, metrics, max_batch=config.max_batch, max_queue=config.max_queue,
                          batch_wait_s=config.batch_wait_s)
    store = ImageStore(config.output_dir, config.max_stored_files, config.shared_output_dir)
    serving = Serving(config, worker, scheduler, store, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()

    app = FastAPI(title="qwenimage images API", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.serving = serving  # for wrappers (Ray Serve, a web UI) that mount or drive the same app
    install_error_handlers(app)
    app.include_router(build_router(serving))
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    return app
