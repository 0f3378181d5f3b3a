"""`qwenimage train` as users run it: one process, torchrun DDP and FSDP2 (gloo, CPU); kill -9 and resume in
test_train_kill_resume.py."""

import os
import subprocess
import sys

import pytest
import yaml

from qwenimage.model import QwenImageMMDiT
from tests.unit.test_train import data_dir  # noqa: F401  (the module-scoped card dataset fixture)

STEPS = 3


def write_config(tmp_path, pipeline, data, name, **extra):
    config = {
        "model": {"pipeline": str(pipeline), "preset": "tiny"},
        "data": {"sources": [str(data)], "batch_size": 4},
        "stages": [{"name": "main", "steps": extra.pop("steps", STEPS), "resolution": 32}],
        "optim": {"lr": 1e-3, "grad_clip": 1.0},
        "output": {"dir": str(tmp_path / name), "log_every": 1, "checkpoint_every": extra.pop("every", 100),
                   "tensorboard": False},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}


def train(config, *overrides, nproc=1):
    prefix = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
              "--master_addr=127.0.0.1", f"--master_port={29500 + os.getpid() % 1000}",
              "-m", "qwenimage.cli.main"] if nproc > 1 else [sys.executable, "-m", "qwenimage.cli.main"]
    command = [*prefix, "train", "--config", str(config), *overrides]
    done = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def weights(folder):
    return QwenImageMMDiT.from_pretrained(folder / "transformer").state_dict()


def max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_pipeline_dir, data_dir):  # noqa: F811
    tmp = tmp_path_factory.mktemp("single")
    train(write_config(tmp, tiny_pipeline_dir, data_dir, "run"))
    return weights(tmp / "run")


def test_ddp_two_ranks_equal_one_process(single, tmp_path, tiny_pipeline_dir, data_dir):  # noqa: F811
    train(write_config(tmp_path, tiny_pipeline_dir, data_dir, "ddp"), "parallel.strategy=ddp", nproc=2)
    assert max_diff(single, weights(tmp_path / "ddp")) <= 1e-5


def test_fsdp2_two_ranks_equal_one_process(single, tmp_path, tiny_pipeline_dir, data_dir):  # noqa: F811
    train(write_config(tmp_path, tiny_pipeline_dir, data_dir, "fsdp"), "parallel.strategy=fsdp", nproc=2)
    assert max_diff(single, weights(tmp_path / "fsdp")) <= 1e-5  # fp32 params and fp32 reduce-scatter
