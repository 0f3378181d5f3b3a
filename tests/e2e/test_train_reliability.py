"""`qwenimage train` against bad configs, damaged checkpoints and changed configs on resume: refused with one
line naming the field, or resumed from the newest checkpoint that loads (the damaged one named)."""

import json
import logging
import pickle
import random
import shutil

import numpy as np
import pytest
import torch
import yaml

from qwenimage.cli.main import main
from qwenimage.train.checkpoint import MARKER, load_trainer_state
from qwenimage.train.config import OutputConfig, StageConfig
from qwenimage.train.trainer import Trainer
from qwenimage.weights.errors import CheckpointError
from tests.e2e.test_train_distributed import max_diff, weights, write_config
from tests.unit.test_train import config, data_dir  # noqa: F401  (data_dir: the module-scoped card dataset)

STEPS = 4


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_config(tmp_path, pipeline, data, name="run", every=1000):
    return config(tmp_path, pipeline, data, stages=[StageConfig(steps=STEPS, resolution=32)],
                  output=OutputConfig(dir=str(tmp_path / name), log_every=1, checkpoint_every=every,
                                      tensorboard=False))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_pipeline_dir, data_dir):  # noqa: F811
    """An uninterrupted run's weights, and a run folder with checkpoints at steps 2 and 4."""
    tmp = tmp_path_factory.mktemp("runs")
    Trainer(run_config(tmp, tiny_pipeline_dir, data_dir, "reference")).run()
    Trainer(run_config(tmp, tiny_pipeline_dir, data_dir, "checkpointed", every=2)).run()
    return weights(tmp / "reference"), tmp / "checkpointed"


def resumed_copy(runs, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(runs[1], folder)
    shutil.rmtree(folder / "transformer")
    return folder / "checkpoints" / "step-00000004"


@pytest.mark.parametrize("bad", ["config", "log", "batch"])
def test_zero_intervals_and_batch_size_are_refused_before_anything_loads(tmp_path, capsys, tiny_pipeline_dir,
                                                                        data_dir, bad):  # noqa: F811
    override = {"config": "output.checkpoint_every=0", "log": "output.log_every=0", "batch": "data.batch_size=0"}[bad]
    path = write_config(tmp_path, tiny_pipeline_dir, data_dir, "run")
    code, _, err = cli(capsys, "train", "--config", str(path), override)
    field = override.partition("=")[0]
    assert code == 2 and f"{field} must be >= 1, got 0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before the output folder, let alone a model


@pytest.mark.parametrize("damage", ["distcp", "metadata", "trainer", "distcp-legacy", "metadata-legacy",
                                    "trainer-legacy", "code-legacy", "metacode-legacy"])
def test_a_damaged_newest_checkpoint_is_named_and_the_previous_one_resumes(runs, tmp_path, tiny_pipeline_dir,
                                                                           data_dir, caplog, damage):  # noqa: F811
    newest = resumed_copy(runs, tmp_path)
    kind, _, legacy = damage.partition("-")
    if legacy:  # written before the completeness marker: validated by loading it
        (newest / MARKER).unlink()
    victim = {"distcp": newest / "__0_0.distcp", "metadata": newest / ".metadata", "metacode": newest / ".metadata",
              "trainer": newest / "trainer-rank0.pt", "code": newest / "trainer-rank0.pt"}[kind]
    ran = tmp_path / "code-ran"
    if kind == "code":  # a checkpoint from elsewhere whose pickles would run code when loaded
        torch.save({"step": 4, "scheduler": {}, "rng": RunsCode(ran)}, victim)
    elif kind == "metacode":
        victim.write_bytes(pickle.dumps(RunsCode(ran)))
    elif kind == "metadata":
        victim.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(victim.stat().st_size)))
    else:
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(run_config(tmp_path, tiny_pipeline_dir, data_dir))
    assert trainer.step == 2 and not ran.exists()
    assert any("skipping checkpoint step-00000004" in r.message and str(victim) in r.message for r in caplog.records)
    trainer.run()
    assert max_diff(runs[0], weights(tmp_path / "run")) == 0
    assert (newest / MARKER).is_file()  # step 4 was written again, whole


class RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (type(self.path).touch, (self.path,))


def test_legacy_checkpoints_without_a_marker_and_with_numpy_rng_state_still_load(runs, tmp_path,
                                                                                 tiny_pipeline_dir, data_dir):  # noqa: F811
    newest = resumed_copy(runs, tmp_path)
    (newest / MARKER).unlink()
    state = load_trainer_state(newest / "trainer-rank0.pt")
    np.random.set_state({**state["rng"]["numpy"], "state": {**state["rng"]["numpy"]["state"], "key": np.asarray(
        state["rng"]["numpy"]["state"]["key"], dtype=np.uint32)}})
    state["rng"]["numpy"] = np.random.get_state()  # what the previous code pickled: numpy's tuple with an array
    torch.save(state, newest / "trainer-rank0.pt")
    trainer = Trainer(run_config(tmp_path, tiny_pipeline_dir, data_dir))
    assert trainer.step == STEPS
    assert trainer.run() == [] and max_diff(runs[0], weights(tmp_path / "run")) == 0


def test_when_every_checkpoint_is_damaged_the_run_stops_naming_them(runs, tmp_path, tiny_pipeline_dir,
                                                                    data_dir):  # noqa: F811
    newest = resumed_copy(runs, tmp_path)
    for folder in (newest, newest.with_name("step-00000002")):
        (folder / "trainer-rank0.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="no checkpoint in .* loads: .*step-00000004.*step-00000002"):
        Trainer(run_config(tmp_path, tiny_pipeline_dir, data_dir))


def test_resuming_with_another_model_config_is_refused_naming_the_fields(runs, tmp_path, capsys,
                                                                         tiny_pipeline_dir, data_dir):  # noqa: F811
    resumed_copy(runs, tmp_path)
    path = write_config(tmp_path, tiny_pipeline_dir, data_dir, "run", steps=STEPS, every=2)
    code, _, err = cli(capsys, "train", "--config", str(path), "lora.rank=4", "model.dtype=bf16")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "lora.rank: 0 there, 4 now" in err and "model.dtype: 'fp32' there, 'bf16' now" in err
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["lora"]["rank"] == 0  # not overwritten
    code, out, err = cli(capsys, "train", "--config", str(path), "stages.0.steps=5", "output.log_every=2",
                         "model.activation_checkpointing=true")  # what may change on resume
    assert code == 0 and "trained to step 5" in out, err
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 5 and rows[-1]["bad_records"] == 0


def test_an_unreadable_image_is_skipped_and_too_many_stop_the_run_before_any_model_loads(tmp_path, capsys, caplog,
                                                                                        tiny_pipeline_dir,
                                                                                        data_dir):  # noqa: F811
    data = tmp_path / "cards"
    shutil.copytree(data_dir, data)
    (data / "zz_garbage.png").write_bytes(b"not a PNG at all " * 200)
    path = write_config(tmp_path, tiny_pipeline_dir, data, "run", steps=2)
    code, _, err = cli(capsys, "train", "--config", str(path), "data.max_bad_records=0")
    last = err.strip().splitlines()[-1]
    assert code == 2 and "1 of 21 training records are unreadable" in last and str(data / "zz_garbage.png") in last
    assert not (tmp_path / "run").exists()  # refused before the output folder and the models
    with caplog.at_level(logging.WARNING):
        code, out, err = cli(capsys, "train", "--config", str(path))
    assert code == 0 and "trained to step 2" in out, err
    assert any("skipping training record" in r.message and "zz_garbage.png" in r.message for r in caplog.records)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["bad_records"] == 1


def test_a_run_stopped_early_reports_the_step_it_reached(tmp_path, capsys, tiny_pipeline_dir, data_dir):  # noqa: F811
    path = write_config(tmp_path, tiny_pipeline_dir, data_dir, "run", steps=STEPS)
    code, out, err = cli(capsys, "train", "--config", str(path), "stop_after=2")
    assert code == 0 and "trained to step 2:" in out and f"step {STEPS}" not in out, err
