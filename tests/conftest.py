import os

import pytest
import torch

# tiny diffusers-layout pipeline folders (session-scoped, read-only; copy before changing)
from tests.fixtures import tiny_pipeline_dir, tiny_t2i_pipeline_dir  # noqa: F401

# Parity tests compare fp32 numbers; keep CPU math deterministic and single-threaded per worker.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
