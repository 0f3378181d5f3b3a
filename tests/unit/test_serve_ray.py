"""`qwenimage serve --ray` without starting Ray: placement, replica count, capacity checks and the CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwenimage.serve import ServeConfig
from qwenimage.serve.outputs import ImageStore
from qwenimage.serve.ray_serve import RayServeConfig, check_capacity, deployment_options, replica_config

CPU_ONLY, TWO_GPUS = {"CPU": 8.0}, {"CPU": 16.0, "GPU": 2.0}


def test_one_gpu_per_replica_when_ray_has_gpus_else_cpus():
    config = ServeConfig(model=Path("m"), max_batch=4, max_queue=10)
    on_gpu = deployment_options(config, RayServeConfig(replicas=2), TWO_GPUS)
    assert on_gpu == {"ray_actor_options": {"num_gpus": 1, "num_cpus": 1}, "max_ongoing_requests": 14,
                      "num_replicas": 2}
    on_cpu = deployment_options(config, RayServeConfig(replicas=2, cpus_per_replica=2), CPU_ONLY)
    assert on_cpu["ray_actor_options"] == {"num_cpus": 2}
    forced = deployment_options(ServeConfig(device="cpu"), RayServeConfig(), TWO_GPUS)  # --device cpu wins
    assert forced["ray_actor_options"] == {"num_cpus": 1.0}
    assert replica_config(config, on_gpu).device == "cuda" and replica_config(config, on_cpu).device == "cpu"


def test_autoscaling_replaces_the_fixed_count():
    options = deployment_options(ServeConfig(max_batch=4), RayServeConfig(replicas=1, max_replicas=3), CPU_ONLY)
    assert "num_replicas" not in options
    assert options["autoscaling_config"] == {"min_replicas": 1, "initial_replicas": 1, "max_replicas": 3,
                                             "target_ongoing_requests": 4}


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="replicas must be an integer >= 1, got 0"):
        RayServeConfig(replicas=0)
    with pytest.raises(ValueError, match=r"max_replicas \(1\) is below replicas \(2\)"):
        RayServeConfig(replicas=2, max_replicas=1)
    with pytest.raises(ValueError, match="the Ray cluster has no GPUs"):
        deployment_options(ServeConfig(device="cuda"), RayServeConfig(), CPU_ONLY)
    with pytest.raises(ValueError, match="--device cuda:1 with --ray"):
        deployment_options(ServeConfig(device="cuda:1"), RayServeConfig(), TWO_GPUS)
    with pytest.raises(ValueError, match="3 replicas need 3 GPUs .1 each.; Ray has 2"):
        check_capacity(deployment_options(ServeConfig(), RayServeConfig(replicas=3), TWO_GPUS), 3, TWO_GPUS)
    check_capacity(deployment_options(ServeConfig(), RayServeConfig(replicas=8), CPU_ONLY), 8, CPU_ONLY)


def test_replicas_share_one_url_mode_folder(tmp_path):
    config = replica_config(ServeConfig(model=Path("m")), {"ray_actor_options": {"num_cpus": 1}})
    assert config.shared_output_dir and config.output_dir.is_dir() and config.model.is_absolute()
    writer, reader = ImageStore(tmp_path, 10, shared=True), ImageStore(tmp_path, 10, shared=True)
    name = writer.put(b"png bytes", "png")
    assert reader.path(name).read_bytes() == b"png bytes"  # written by another replica
    assert ImageStore(tmp_path, 10).path(name) is None  # not shared: only its own names
    assert reader.path("../" + name) is None
    with pytest.raises(ValueError, match="shared_output_dir needs an output_dir"):
        ServeConfig(shared_output_dir=True)


def test_ray_flags_need_ray():
    from qwenimage.cli.main import build_parser
    from qwenimage.cli.serve_cmd import ray_serve_config

    parse = build_parser().parse_args
    with pytest.raises(ValueError, match="--replicas, --ray-address needs --ray"):
        ray_serve_config(parse(["serve", "--replicas", "2", "--ray-address", "auto"]))
    assert ray_serve_config(parse(["serve"])) is None
    ray_config = ray_serve_config(parse(["serve", "--ray", "--replicas", "2", "--max-replicas", "4"]))
    assert (ray_config.replicas, ray_config.max_replicas, ray_config.address) == (2, 4, None)
    with pytest.raises(ValueError, match="replicas must be an integer >= 1, got 0"):
        ray_serve_config(parse(["serve", "--ray", "--replicas", "0"]))


def test_serve_flags_reach_the_config():
    from qwenimage.cli.main import build_parser
    from qwenimage.cli.serve_cmd import serve_config

    parse = build_parser().parse_args
    config = serve_config(parse(["serve", "--batch-wait", "0", "--max-batch", "6"]))
    assert (config.batch_wait_s, config.max_batch) == (0.0, 6)
    assert serve_config(parse(["serve"])).batch_wait_s == 0.01
    with pytest.raises(ValueError, match=r"batch_wait_s must be in \[0, 10\] seconds, got -1.0"):
        serve_config(parse(["serve", "--batch-wait", "-1"]))
