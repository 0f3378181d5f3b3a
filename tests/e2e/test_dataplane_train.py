"""`qwenimage train` with in-process producers (data.producer=local) and Ray producer actors (data.producer=ray):
the same tiny training gives the same parameters, since encoding is deterministic wherever it runs."""

import json

import pytest

from tests.e2e.test_train_distributed import max_diff, train, weights, write_config
from tests.unit.test_train import data_dir  # noqa: F401  (the module-scoped card dataset fixture)


def test_ray_producers_train_the_same_parameters_as_local_ones(tmp_path, tiny_pipeline_dir, data_dir):  # noqa: F811
    pytest.importorskip("ray")
    train(write_config(tmp_path, tiny_pipeline_dir, data_dir, "local"), "data.producer=local", "data.producers=2")
    train(write_config(tmp_path, tiny_pipeline_dir, data_dir, "ray"), "data.producer=ray", "data.producers=2")
    assert max_diff(weights(tmp_path / "local"), weights(tmp_path / "ray")) == 0
    last = json.loads((tmp_path / "ray" / "log.jsonl").read_text().splitlines()[-1])
    assert last["producers_alive"] == 2 and last["cache_misses"] == 12 and last["producer_resubmits"] == 0
    assert len(list((tmp_path / "ray" / "latent-cache").rglob("*.safetensors"))) == 3 * 4  # 3 steps x 4 samples
