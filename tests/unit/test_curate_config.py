"""Curation config: the shipped YAML equals the dataclass defaults, dotted overrides, errors that name keys,
and the command line's --KEY=VALUE options."""

import argparse
from pathlib import Path

import pytest

from qwenimage.cli import curate_cmd
from qwenimage.curate.config import CurateConfig, default_config_text, load_curate_config, render_default_yaml

REPO = Path(__file__).resolve().parents[2]


def test_the_packaged_and_repo_yaml_are_the_documented_defaults():
    assert default_config_text() == render_default_yaml()  # regenerate it after changing a default or a doc
    assert (REPO / "configs/curate/default.yaml").read_text() == render_default_yaml()
    assert load_curate_config(REPO / "configs/curate/default.yaml") == CurateConfig()


def test_overrides_set_keys_and_mapping_entries(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("s2:\n  min_luma: 0.1\ns6:\n  shares: {Nature: 60, Design: 40}\n")
    config = load_curate_config(path, ["s2.min_clarity=80", "s6.shares.People=5", "s4.drop_languages=[other]",
                                       "s3.alignment=[{model_path: /m, min_similarity: 0.3}]"])
    assert config.s2.min_luma == 0.1 and config.s2.min_clarity == 80.0 and config.s2.max_luma == 0.95
    assert config.s6.shares == {"Nature": 60.0, "Design": 40.0, "People": 5.0}  # a YAML mapping replaces the default
    assert config.s4.drop_languages == ["other"]
    assert config.s3.alignment[0].model_path == "/m" and config.s3.alignment[0].min_similarity == 0.3
    assert load_curate_config(None, ["s6.shares.People=20"]).s6.shares["Nature"] == 55.0  # a key merges


@pytest.mark.parametrize("override, message", [
    ("s2.min_clarty=5", "s2.min_clarty"), ("s2.min_clarity=abc", "s2.min_clarity"),
    ("executor.kind=spark", "executor.kind"), ("s1.dedup=3", "s1.dedup"), ("nokey", "KEY=VALUE"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        load_curate_config(None, [override])


def test_cli_accepts_dotted_options_set_and_shortcuts():
    parser = argparse.ArgumentParser()
    curate_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["curate", "--input", "a", "b", "--out", "o", "--s2.min_clarity=50",
                              "--set", "s1.min_side=300", "--executor", "ray", "--workers", "2"])
    assert args.input == ["a", "b"]
    config = load_curate_config(None, curate_cmd.overrides(args))
    assert (config.s2.min_clarity, config.s1.min_side) == (50, 300)
    assert (config.executor.kind, config.executor.workers) == ("ray", 2)
