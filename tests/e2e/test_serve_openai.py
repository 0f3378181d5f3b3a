"""The images server end to end: the SDK suite (tests/e2e/serve_sdk.py) against `qwenimage serve`'s app on
loopback uvicorn, the single-process default."""

from __future__ import annotations

import pytest

from qwenimage.serve import PipelineWorker, create_app
from qwenimage.serve.loopback import LoopbackServer
from tests.e2e.serve_sdk import (client, edit_plus_dir, server_config,  # noqa: F401  (fixtures and tests)
                                 test_concurrent_mixed_sizes_equal_the_same_requests_alone,
                                 test_edit_with_two_images_and_with_a_mask, test_generate_b64_and_url,
                                 test_streaming_partial_images, test_wrong_key_and_bad_requests)


@pytest.fixture(scope="module")
def server(edit_plus_dir, tmp_path_factory):  # noqa: F811
    config = server_config(edit_plus_dir, tmp_path_factory.mktemp("serve_files"))
    worker = PipelineWorker.load(edit_plus_dir, device="cpu", dtype="fp32")
    with LoopbackServer(create_app(config, worker)) as server:
        yield server.url
