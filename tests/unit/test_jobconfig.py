from dataclasses import dataclass, field
from pathlib import Path

import pytest

from qwenimage.jobconfig import load_job_config, save_job_config
from qwenimage.train.config import TrainConfig
from qwenimage.weights import ConfigError


@dataclass
class Inner:
    lr: float = 1.0
    names: list[str] = field(default_factory=list)


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    steps: int = 3
    pair: tuple[int, int] = (1, 2)


def test_yaml_and_overrides_fill_nested_dataclasses(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  lr: 0.5\nsteps: 7\npair: [3, 4]\n")
    config = load_job_config(Outer, path, ["inner.lr=1e-4", "inner.names=[a, b]"])
    assert config == Outer(Inner(1e-4, ["a", "b"]), 7, (3, 4))
    save_job_config(config, tmp_path / "resolved.yaml")
    assert load_job_config(Outer, tmp_path / "resolved.yaml") == config


@pytest.mark.parametrize("overrides,message", [
    (["inner.lrr=1"], "unknown config keys: inner.lrr"),
    (["steps=many"], "steps: expected int, got 'many'"),
    (["steps"], "is not KEY=VALUE"),
    (["steps.x=1"], "steps: expected int"),
])
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_job_config(Outer, None, overrides)


def test_shipped_train_config_loads_and_validates():
    config = load_job_config(TrainConfig, "configs/train/tiny.yaml", ["optim.lr=2e-4"])
    assert config.optim.lr == 2e-4 and [s.name for s in config.stages] == ["no-text", "short-text", "paragraphs"]
    with pytest.raises(ConfigError, match="tasks must weight some of t2i"):
        load_job_config(TrainConfig, "configs/train/tiny.yaml", ["stages=[{name: x, tasks: {dance: 1}}]"])


@pytest.mark.parametrize("path", sorted(Path("configs/train").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_train_config_validates(path):
    """Each file in configs/train/ loads into the dataclass its `kind` names and passes its checks."""
    from qwenimage.cli.train_cmd import config_kind
    from qwenimage.train.recipe import RecipeConfig
    from qwenimage.train.vae_trainer import VaeTrainConfig

    classes = {"transformer": TrainConfig, "vae": VaeTrainConfig, "recipe": RecipeConfig}
    load_job_config(classes[config_kind(path, [])], path, [])
