"""`qwenimage serve`: the OpenAI-compatible images API (FastAPI on uvicorn) over one loaded model, with the
web UI at /ui; `qwenimage ui` runs the same app with the UI at the root."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from qwenimage.dtypes import DTYPES

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible images API server",
                       description="Serve POST /v1/images/generations and /v1/images/edits (the OpenAI images "
                                   "API; the openai SDK works unchanged), GET /v1/models, /health and /metrics. "
                                   "Waiting requests with the same step count are batched into one pipeline call. "
                                   "The web UI is at /ui.")
    add_server_arguments(p, port=8000)
    p.add_argument("--no-ui", dest="ui_path", action="store_const", const=None, default="/ui",
                   help="do not mount the web UI at /ui (it shares the API's queue, batches and key)")
    p.set_defaults(run=run_serve, ui_required=False)


def add_server_arguments(p: argparse.ArgumentParser, port: int) -> None:
    """The flags of `serve` and `ui`: one app runs both (the UI drives the API's scheduler)."""
    p.add_argument("--model", type=Path, default=os.environ.get("QWENIMAGE_MODEL"),
                   help="diffusers-layout model folder (default: $QWENIMAGE_MODEL, else the built-in qwenimage-mini)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=port, help="port (default: %(default)s)")
    p.add_argument("--api-key", default=os.environ.get("QWENIMAGE_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on every route but /health (default: "
                        "$QWENIMAGE_API_KEY, else no key)")
    p.add_argument("--max-batch", type=int, default=4, help="images per pipeline call; 1 = no batching (default: 4)")
    p.add_argument("--max-queue", type=int, default=64,
                   help="waiting requests before new ones get 429 with Retry-After (default: %(default)s)")
    p.add_argument("--max-pixels", type=int, default=40_000_000,
                   help="largest uploaded or generated image, in pixels (default: %(default)s)")
    p.add_argument("--max-upload-bytes", type=int, default=64 * 2**20,
                   help="largest request body in bytes (default: 64 MiB)")
    p.add_argument("--output-dir", type=Path, default=None,
                   help="folder for response_format=url files (default: a fresh temporary folder)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps or xpu (default: cuda if available)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="(default: %(default)s; fp32 on CPU)")


def run_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from qwenimage.serve import PipelineWorker, ServeConfig, create_app
    except ImportError as err:
        raise ValueError(f"qwenimage serve needs the server packages ({err.name} is missing): "
                         "pip install 'qwenimage[serve]'") from err
    if args.model is None:
        from qwenimage.mini.ship import default_model_dir

        args.model = default_model_dir()
    config = ServeConfig(model=args.model, host=args.host, port=args.port, api_key=args.api_key,
                         device=args.device, dtype=args.dtype, max_batch=args.max_batch, max_queue=args.max_queue,
                         max_pixels=args.max_pixels, max_upload_bytes=args.max_upload_bytes,
                         output_dir=args.output_dir)
    worker = PipelineWorker.load(config.model, device=config.device, dtype=config.dtype)
    log.info("serving %s on http://%s:%d/v1 (API key %s)", worker.model_id, config.host, config.port,
             "required" if config.api_key else "off")
    app = create_app(config, worker)
    if args.ui_path is not None and mount_web_ui(app, args.ui_path, required=args.ui_required):
        log.info("web UI on http://%s:%d%s", config.host, config.port, args.ui_path)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info")
    return 0


def mount_web_ui(app, path: str, required: bool) -> bool:
    """Mount the Gradio UI at `path`. Without gradio installed, `serve` runs the API alone (with a warning)
    and `ui`, whose whole point the page is, stops with the install command. True when mounted."""
    try:
        from qwenimage.serve.ui import mount_ui
    except ImportError as err:
        if required:
            raise ValueError(f"the web UI needs gradio ({err.name} is missing): "
                             "pip install 'qwenimage[serve]'") from err
        log.warning("web UI off: %s is missing (pip install 'qwenimage[serve]')", err.name)
        return False
    mount_ui(app, path=path)
    return True
