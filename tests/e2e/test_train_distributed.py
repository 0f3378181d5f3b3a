"""`qwenimage train` as users run it: one process, torchrun DDP and FSDP2 (gloo, CPU), and kill -9 + resume."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
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


def train(config, *overrides, nproc=1, background=False):
    prefix = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
              "--master_addr=127.0.0.1", f"--master_port={29500 + os.getpid() % 1000}",
              "-m", "qwenimage.cli.main"] if nproc > 1 else [sys.executable, "-m", "qwenimage.cli.main"]
    command = [*prefix, "train", "--config", str(config), *overrides]
    if background:  # its own process group, so that kill -9 reaches every process of the run
        return subprocess.Popen(command, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
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


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_pipeline_dir, data_dir):  # noqa: F811
    steps = 8
    reference = write_config(tmp_path, tiny_pipeline_dir, data_dir, "reference", steps=steps)
    train(reference)
    config = write_config(tmp_path, tiny_pipeline_dir, data_dir, "killed", steps=steps, every=1)
    process = train(config, background=True)
    checkpoint = tmp_path / "killed" / "checkpoints" / "step-00000004"
    deadline = time.time() + 300
    while not checkpoint.is_dir() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "transformer").exists(), "the run finished before it was killed"
    done = train(config)
    assert "trained to step 8" in done.stdout
    assert max_diff(weights(tmp_path / "reference"), weights(tmp_path / "killed")) == 0
