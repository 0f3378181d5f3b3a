"""`qwenimage serve`: the OpenAI-compatible images API (FastAPI on uvicorn) over one loaded model, with the
web UI at /ui; `qwenimage ui` runs the same app with the UI at the root."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from qwenimage.cli.model_args import add_model_arguments, scheduler_overrides
from qwenimage.dtypes import DTYPES

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible images API server",
                       description="Serve POST /v1/images/generations and /v1/images/edits (the OpenAI images "
                                   "API; the openai SDK works unchanged), GET /v1/models, /health and /metrics. "
                                   "Waiting requests with the same step count are batched into one pipeline call. "
                                   "The web UI is at /ui. With --ray, the same app runs as a Ray Serve deployment: "
                                   "one model per replica, Ray Serve routing between them.")
    add_server_arguments(p, port=8000)
    p.add_argument("--no-ui", dest="ui_path", action="store_const", const=None, default="/ui",
                   help="do not mount the web UI at /ui (it shares the API's queue, batches and key)")
    ray = p.add_argument_group("scale-out with Ray Serve (pip install 'qwenimage[serve]')")
    ray.add_argument("--ray", action="store_true",
                     help="run the app as a Ray Serve deployment: each replica loads the model and batches its own "
                          "requests; one GPU per replica when Ray has GPUs, else CPU replicas (no web UI)")
    ray.add_argument("--replicas", type=int, default=None,
                     help="replicas with --ray; the minimum when --max-replicas is given (default: 1)")
    ray.add_argument("--max-replicas", type=int, default=None,
                     help="with --ray: autoscale between --replicas and this many by queued requests")
    ray.add_argument("--ray-address", default=None,
                     help="with --ray: join this Ray cluster ('auto', 'ray://head:10001'; default: start Ray on "
                          "this machine)")
    p.set_defaults(run=run_serve, ui_required=False)


def add_server_arguments(p: argparse.ArgumentParser, port: int) -> None:
    """The flags of `serve` and `ui`: one app runs both (the UI drives the API's scheduler)."""
    p.add_argument("--model", type=Path, default=os.environ.get("QWENIMAGE_MODEL"),
                   help="diffusers-layout model folder, or a Hub repo id (as in qwenimage generate) (default: "
                        "$QWENIMAGE_MODEL, else the built-in qwenimage-mini)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=port, help="port (default: %(default)s)")
    p.add_argument("--api-key", default=os.environ.get("QWENIMAGE_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on every route but /health (default: "
                        "$QWENIMAGE_API_KEY, else no key)")
    p.add_argument("--max-batch", type=int, default=4, help="images per pipeline call; 1 = no batching (default: 4)")
    p.add_argument("--batch-wait", type=float, default=0.01, metavar="SECONDS",
                   help="how long a lone request waits for companions to batch with; 0 runs it at once "
                        "(default: %(default)s)")
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
    add_model_arguments(p.add_argument_group("loading and sampling (as in qwenimage generate; --cache-threshold "
                                             "applies to every request)"))


def run_serve(args: argparse.Namespace) -> int:
    ray_config = ray_serve_config(args)  # flag mistakes first, before any import or model load
    try:
        import uvicorn

        from qwenimage.serve import PipelineWorker, create_app
    except ImportError as err:
        raise ValueError(f"qwenimage serve needs the server packages ({err.name} is missing): "
                         "pip install 'qwenimage[serve]'") from err
    config = serve_config(args)
    if ray_config is not None:
        return run_ray(config, ray_config)
    worker = PipelineWorker.from_config(config)
    log.info("serving %s on http://%s:%d/v1 (API key %s)", worker.model_id, config.host, config.port,
             "required" if config.api_key else "off")
    app = create_app(config, worker)
    if args.ui_path is not None and mount_web_ui(app, args.ui_path, required=args.ui_required):
        log.info("web UI on http://%s:%d%s", config.host, config.port, args.ui_path)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info")
    return 0


def serve_config(args: argparse.Namespace):
    """The ServeConfig the flags describe; the model resolved to a local folder (a Hub id downloads here)."""
    from qwenimage.cli.generate_cmd import resolve_model
    from qwenimage.serve import ServeConfig

    source = args.model
    resolve_model(args)  # the default model, or a Hub repo id at --revision, as a local folder
    hub_id = source is not None and not Path(source).exists()  # /v1/models names it by its repo id
    return ServeConfig(model=args.model, host=args.host, port=args.port, api_key=args.api_key,
                       device=args.device, dtype=args.dtype, max_batch=args.max_batch, batch_wait_s=args.batch_wait,
                       max_queue=args.max_queue, max_pixels=args.max_pixels, max_upload_bytes=args.max_upload_bytes,
                       output_dir=args.output_dir, quantize=args.quantize,
                       compile=args.compile, scheduler=scheduler_overrides(args),
                       cache_threshold=args.cache_threshold, model_id=str(source) if hub_id else None)


def ray_serve_config(args: argparse.Namespace):
    """The RayServeConfig of `--ray ...`, None without --ray; ValueError for Ray flags given without it."""
    if not getattr(args, "ray", False):
        given = [flag for flag, value in (("--replicas", getattr(args, "replicas", None)),
                                          ("--max-replicas", getattr(args, "max_replicas", None)),
                                          ("--ray-address", getattr(args, "ray_address", None))) if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} needs --ray (the default server is one process, one model)")
        return None
    from qwenimage.serve.ray_serve import RayServeConfig

    return RayServeConfig(replicas=1 if args.replicas is None else args.replicas, max_replicas=args.max_replicas,
                          address=args.ray_address)


def run_ray(config, ray_config) -> int:
    """Deploy on Ray Serve and wait for Ctrl-C, then take the deployment down."""
    try:
        import ray.serve  # noqa: F401  (the `serve` extra: ray[serve])

        from qwenimage.serve import ray_serve
    except ImportError as err:
        raise ValueError(f"qwenimage serve --ray needs Ray Serve ({err.name} is missing): "
                         "pip install 'qwenimage[serve]'") from err
    try:
        ray_serve.start(config, ray_config)
        signal.signal(signal.SIGTERM, _interrupt)  # `kill`, `docker stop`: shut down as on Ctrl-C
        threading.Event().wait()
    except KeyboardInterrupt:
        log.info("stopping the Ray Serve deployment")
    finally:
        ray_serve.stop(ray_config)
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


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
