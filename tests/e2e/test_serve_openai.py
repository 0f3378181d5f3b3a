"""The images server end to end: the SDK suite (tests/e2e/serve_sdk.py) against `qwenimage serve`'s app on
loopback uvicorn, the single-process default."""

from __future__ import annotations

import gc
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from qwenimage.serve import PipelineWorker, create_app
from qwenimage.serve.loopback import LoopbackServer
from tests.e2e.serve_sdk import (FAST, client, edit_plus_dir, server_config,  # noqa: F401  (fixtures and tests)
                                 test_concurrent_mixed_sizes_equal_the_same_requests_alone,
                                 test_edit_with_two_images_and_with_a_mask, test_generate_b64_and_url,
                                 test_streaming_partial_images, test_wrong_key_and_bad_requests)


@pytest.fixture(scope="module")
def server(edit_plus_dir, tmp_path_factory):  # noqa: F811
    config = server_config(edit_plus_dir, tmp_path_factory.mktemp("serve_files"))
    worker = PipelineWorker.load(edit_plus_dir, device="cpu", dtype="fp32")
    with LoopbackServer(create_app(config, worker)) as server:
        yield server.url


def rss_mib() -> float:
    """This process's resident memory (the loopback server runs in it), from /proc."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")
def test_memory_is_back_near_its_start_after_a_load_of_20_clients(server, client):  # noqa: F811
    sizes = ["32x32", "48x32", "32x64", "64x48", "48x48"] * 4
    send = lambda i: client.images.generate(prompt=f"load {i}", size=sizes[i],  # noqa: E731
                                            extra_body={**FAST, "seed": i}).data[0].b64_json
    send(0)  # warm: the first call of each shape allocates what the process then keeps
    gc.collect()
    start = rss_mib()
    for _ in range(3):  # three waves of 20 concurrent clients
        with ThreadPoolExecutor(len(sizes)) as pool:
            assert all(pool.map(send, range(len(sizes))))
    gc.collect()
    grown = rss_mib() - start
    assert grown < 48, f"resident memory grew by {grown:.0f} MiB over 60 requests (from {start:.0f} MiB)"
