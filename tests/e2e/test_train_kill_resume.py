"""The acceptance test of resumable training: kill -9 a tiny CPU run at many moments (inside a checkpoint
write, in the middle of a log.jsonl append, and at random times while it trains), run the same command
again each time: it always finishes, with the weights of an uninterrupted run and a log of whole lines."""

import json
import os
import random
import signal
import subprocess
import sys
import time

from qwenimage.train.faults import ENV
from qwenimage.train.monitor import read_log
from tests.e2e.test_train_distributed import env, max_diff, train, weights, write_config
from tests.unit.test_train import data_dir  # noqa: F401  (the module-scoped card dataset fixture)

STEPS = 16
RANDOM_KILLS = 2


def start(config, kill_at: str | None = None) -> subprocess.Popen:
    extra = {ENV: kill_at} if kill_at else {}
    return subprocess.Popen([sys.executable, "-m", "qwenimage.cli.main", "train", "--config", str(config)],
                            env={**env(), **extra}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def log_lines(folder) -> int:
    path = folder / "log.jsonl"
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def kill_while_training(config, folder, rng: random.Random) -> bool:
    """Start the run, wait until it logs a step (it is training), then kill -9 it a random moment later;
    whether it was still running."""
    process = start(config)
    logged, deadline = log_lines(folder), time.time() + 120
    while log_lines(folder) == logged and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.3))
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    return process.wait() == -signal.SIGKILL


def test_kill_9_at_any_moment_then_the_same_command_finishes_like_an_uninterrupted_run(tmp_path, tiny_pipeline_dir,
                                                                                     data_dir):  # noqa: F811
    train(write_config(tmp_path, tiny_pipeline_dir, data_dir, "reference", steps=STEPS))
    config = write_config(tmp_path, tiny_pipeline_dir, data_dir, "killed", steps=STEPS, every=2)
    folder = tmp_path / "killed"

    assert start(config, kill_at="checkpoint:4").wait() == -signal.SIGKILL  # shards written, no marker yet
    assert (folder / "checkpoints" / "step-00000004.tmp").is_dir()
    assert not (folder / "checkpoints" / "step-00000004").exists()

    assert start(config, kill_at="log:5").wait() == -signal.SIGKILL  # half of step 5's line written
    assert not (folder / "log.jsonl").read_bytes().endswith(b"\n")

    rng = random.Random(os.environ.get("KILL_SEED", "0"))
    killed = [kill_while_training(config, folder, rng) for _ in range(RANDOM_KILLS)]
    assert killed[0], "the run finished before the first random kill"

    done = train(config)
    assert f"trained to step {STEPS}" in done.stdout or "nothing to do" in done.stdout
    assert max_diff(weights(tmp_path / "reference"), weights(folder)) == 0
    lines = (folder / "log.jsonl").read_text().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)  # the torn line was repaired on resume
    assert [row["step"] for row in read_log(folder / "log.jsonl")] == list(range(1, STEPS + 1))
