"""`qwenimage serve --ray`: the same app as a Ray Serve deployment, one loaded model per replica.

Each replica loads the pipeline and builds `create_app(config, worker)`, so the routes, the scheduler and its
batching are those of the single-process server; Ray Serve's proxy spreads requests over the replicas (and
adds or removes replicas when autoscaling is on). A replica takes one GPU when the Ray cluster has GPUs,
otherwise `cpus_per_replica` CPUs. Every response names its replica in the `x-qwenimage-replica` header.

Replicas on several machines need the model folder at the same path on each, and url mode needs an
`output_dir` that all of them can reach (a shared file system), since a file may be fetched from any replica.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from qwenimage.serve.config import ServeConfig

log = logging.getLogger(__name__)

REPLICA_HEADER = "x-qwenimage-replica"


@dataclass(frozen=True)
class RayServeConfig:
    replicas: int = 1  # a fixed count, or the autoscaling minimum
    max_replicas: int | None = None  # autoscale between `replicas` and this many; None: a fixed count
    address: str | None = None  # a running cluster ("auto", "ray://head:10001"); None: start Ray here
    cpus_per_replica: float = 1.0  # CPU replicas only; a GPU replica takes one GPU
    app_name: str = "qwenimage"

    def __post_init__(self) -> None:
        if not isinstance(self.replicas, int) or isinstance(self.replicas, bool) or self.replicas < 1:
            raise ValueError(f"replicas must be an integer >= 1, got {self.replicas!r}")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below replicas ({self.replicas})")
        if not self.cpus_per_replica > 0:
            raise ValueError(f"cpus_per_replica must be positive, got {self.cpus_per_replica}")


def deployment_options(config: ServeConfig, ray_config: RayServeConfig, cluster: dict[str, float]) -> dict:
    """`serve.deployment` keywords for a cluster with these resources (`ray.cluster_resources()`): placement,
    a replica count or autoscaling, and how many requests Ray hands one replica at once (its own queue plus a
    batch, so the replica's scheduler batches them and its 429 stays the overload answer)."""
    gpus = cluster.get("GPU", 0)
    if config.device not in (None, "cpu", "cuda"):
        raise ValueError(f"--device {config.device} with --ray: Ray gives each replica its own device; "
                         "pass --device cpu, --device cuda, or none")
    if config.device == "cuda" and gpus < 1:
        raise ValueError("--device cuda, but the Ray cluster has no GPUs")
    on_gpu = gpus >= 1 and config.device != "cpu"
    actor = {"num_gpus": 1, "num_cpus": 1} if on_gpu else {"num_cpus": ray_config.cpus_per_replica}
    options = {"ray_actor_options": actor, "max_ongoing_requests": config.max_queue + config.max_batch}
    if ray_config.max_replicas is None:
        options["num_replicas"] = ray_config.replicas
    else:
        options["autoscaling_config"] = {"min_replicas": ray_config.replicas, "initial_replicas": ray_config.replicas,
                                         "max_replicas": ray_config.max_replicas,
                                         "target_ongoing_requests": config.max_batch}
    return options


def check_capacity(options: dict, replicas: int, cluster: dict[str, float]) -> None:
    """ValueError when `replicas` of this placement do not fit the cluster (Ray would wait for them forever)."""
    actor = options["ray_actor_options"]
    resource, each = ("GPU", actor["num_gpus"]) if "num_gpus" in actor else ("CPU", actor["num_cpus"])
    have = cluster.get(resource, 0)
    if replicas * each > have:
        raise ValueError(f"{replicas} replicas need {replicas * each:g} {resource}s ({each:g} each); "
                         f"Ray has {have:g}")


def replica_config(config: ServeConfig, options: dict) -> ServeConfig:
    """The config each replica runs: its own device, an absolute model path, and one url-mode folder shared by
    all replicas (a file may be fetched from any of them)."""
    if config.model is None:
        from qwenimage.mini.ship import default_model_dir

        config = replace(config, model=default_model_dir())
    on_gpu = "num_gpus" in options["ray_actor_options"]
    output_dir = config.output_dir or Path(tempfile.mkdtemp(prefix="qwenimage-serve-"))
    from qwenimage.weights.hub import resolve_model

    model = resolve_model(config.model, config.revision).resolve()  # every replica reads the same folder
    return replace(config, device="cuda" if on_gpu else "cpu", model=model, revision=None,
                   output_dir=Path(output_dir).resolve(), shared_output_dir=True)


def app_builder(config: ServeConfig):
    """The function Ray Serve calls in each replica to build its ASGI app (it loads the model there)."""
    def build():
        from ray import serve

        from qwenimage.serve.app import create_app
        from qwenimage.serve.worker import PipelineWorker

        worker = PipelineWorker.from_config(config)
        app = create_app(config, worker)
        app.add_middleware(ReplicaHeader, replica=serve.get_replica_context().replica_id.unique_id)
        return app
    return build


class ReplicaHeader:
    """ASGI middleware: names the replica that answered in every HTTP response's headers."""

    def __init__(self, app, replica: str):
        self.app, self.header = app, (REPLICA_HEADER.encode(), replica.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def tagged(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)
        await self.app(scope, receive, tagged)


def start(config: ServeConfig, ray_config: RayServeConfig) -> str:
    """Deploy the app and wait until its replicas run; returns the server's base URL. Starts Ray on this machine
    (or joins `ray_config.address`) unless this process is already connected."""
    import ray
    from ray import serve

    if ray_config.address is None and config.model is not None and not Path(config.model).is_dir():
        raise ValueError(f"model folder {config.model} not found")  # before Ray starts; the replicas load it
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # the driver's Serve chatter; the lines here say it
    if not ray.is_initialized():
        ray.init(address=ray_config.address or "local", logging_level=logging.WARNING, include_dashboard=False)
    cluster = ray.cluster_resources()
    options = deployment_options(config, ray_config, cluster)
    try:
        check_capacity(options, ray_config.replicas, cluster)
    except ValueError as err:
        if ray_config.address is None:
            raise
        log.warning("%s: replicas stay pending until the cluster grows", err)
    config = replica_config(config, options)
    deployment = serve.deployment(serve.ingress(app_builder(config))(), name=ray_config.app_name, **options)
    where = "GPU" if "num_gpus" in options["ray_actor_options"] else "CPU"
    count = ray_config.replicas if ray_config.max_replicas is None else \
        f"{ray_config.replicas}..{ray_config.max_replicas} (autoscaling)"
    log.info("starting %s %s replica(s) of %s on Ray (%s); each loads the model", count, where,
             Path(config.model).name, ray_config.address or "this machine")
    serve.start(http_options={"host": config.host, "port": config.port}, logging_config={"log_level": "WARNING"})
    serve.run(deployment.bind(), name=ray_config.app_name, route_prefix="/")
    url = f"http://{config.host}:{config.port}"
    log.info("Ray Serve is serving on %s/v1 (API key %s)", url, "required" if config.api_key else "off")
    return url


def stop(ray_config: RayServeConfig) -> None:
    """Take the app down: all of Serve on a Ray started here, only our app on a shared cluster."""
    import ray
    from ray import serve

    if not ray.is_initialized():  # `start` failed before connecting: nothing to take down (and no Ray to start)
        return
    if ray_config.address is None:
        serve.shutdown()
    else:
        serve.delete(ray_config.app_name)
    ray.shutdown()
