"""`qwenimage serve --ray`: the SDK suite (tests/e2e/serve_sdk.py) against two CPU replicas of Ray Serve on this
machine, behind Ray Serve's own proxy and routing; plus a check that both replicas answer."""

from __future__ import annotations

import logging
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'qwenimage[serve]'")
serve = pytest.importorskip("ray.serve", reason="Ray Serve is not installed: pip install 'qwenimage[serve]'")

from qwenimage.serve.ray_serve import REPLICA_HEADER, RayServeConfig, start, stop  # noqa: E402
from tests.e2e.serve_sdk import (FAST, client, edit_plus_dir, server_config,  # noqa: E402, F401
                                 test_concurrent_mixed_sizes_equal_the_same_requests_alone,
                                 test_edit_with_two_images_and_with_a_mask, test_generate_b64_and_url,
                                 test_streaming_partial_images, test_wrong_key_and_bad_requests)

RAY = RayServeConfig(replicas=2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(edit_plus_dir, tmp_path_factory):  # noqa: F811
    # a fresh local Ray with two CPUs: one per replica
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    try:
        yield start(server_config(edit_plus_dir, tmp_path_factory.mktemp("serve_files"), port=free_port()), RAY)
    finally:
        stop(RAY)


def test_two_replicas_run_and_share_the_requests(client):  # noqa: F811
    deployment = serve.status().applications[RAY.app_name].deployments[RAY.app_name]
    assert deployment.replica_states == {"RUNNING": 2}

    def replica_of(i: int) -> str:
        response = client.images.with_raw_response.generate(prompt=f"p{i}", size="32x32", extra_body=FAST)
        assert response.parse().data[0].b64_json
        return response.headers[REPLICA_HEADER]
    with ThreadPoolExecutor(8) as pool:  # 8 clients at once: Ray Serve routes to the less busy replica
        replicas = set(pool.map(replica_of, range(8)))
    assert len(replicas) == 2, f"one replica answered every request: {replicas}"
