"""The OpenAI-compatible images server: `qwenimage serve`.

    config.py     ServeConfig: the flags and limits
    protocol.py   the OpenAI request / response bodies (pydantic)
    convert.py    protocol -> GenerationRequest (pure)
    uploads.py    body-size limit, image decoding with a pixel limit
    scheduler.py  bounded queue + batching worker thread (no HTTP)
    worker.py     the pipeline behind the scheduler (a fake in tests)
    serving.py    job -> JSON response or SSE stream
    routes.py     thin routes;  app.py  create_app(config, worker)
    ray_serve.py  the same app as a Ray Serve deployment (`serve --ray`)
"""

from qwenimage.serve.app import create_app
from qwenimage.serve.config import ServeConfig
from qwenimage.serve.worker import PipelineWorker

__all__ = ["PipelineWorker", "ServeConfig", "create_app"]
