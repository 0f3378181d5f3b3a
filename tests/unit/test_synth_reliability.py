"""`qwenimage synth` refuses what it cannot render up front (sizes above the documented maximum, unknown
languages) with one line, and a run that writes nothing does not exit 0."""

import json

import pytest

from qwenimage.synth.config import LANGUAGES
from qwenimage.synth.job import MAX_SIDE
from tests.unit.test_synth_runner_cli import TINY, synth


@pytest.mark.parametrize("size,shown", [("100000", "100000x100000"), ("512x5000", "512x5000")])
def test_a_size_above_the_maximum_is_refused_before_anything_renders(tmp_path, capsys, size, shown):
    code, _, err = synth(capsys, *TINY, "--out", str(tmp_path / "out"), "--size", size)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"size {shown} is above the maximum of {MAX_SIDE}x{MAX_SIDE}" in err
    assert not (tmp_path / "out").exists()


def test_an_unknown_language_is_refused_naming_the_known_ones(tmp_path, capsys):
    code, _, err = synth(capsys, *TINY, "--out", str(tmp_path / "out"), "--lang", "en,xx")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"unknown language 'xx': choose from {', '.join(LANGUAGES)}" in err
    assert not (tmp_path / "out").exists()


def test_a_run_that_writes_nothing_exits_non_zero_with_the_reasons(tmp_path, capsys):
    code, out, err = synth(capsys, *TINY, "--out", str(tmp_path), "--max-attempts", "2", "synth.discard_rate=1.0")
    assert code == 1 and "wrote 0 of 6 samples (discarded attempts: missing_glyph x12)" in err
    assert len(err.strip().splitlines()) == 1
    assert json.loads((tmp_path / "summary.json").read_text())["written"] == 0
