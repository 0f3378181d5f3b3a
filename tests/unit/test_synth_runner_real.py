"""The runner on the real strategies: a few samples of each, metadata and captions, one OCR-verified run."""

import json

import pytest

from qwenimage.synth.job import SynthJob
from qwenimage.synth.runner import RunOptions, run_job
from qwenimage.synth.shards import iter_samples, shard_path
from qwenimage.synth.strategies import STRATEGIES


def test_each_strategy_renders_through_the_runner(tmp_path):
    job = SynthJob(count=9, strategies=dict.fromkeys(STRATEGIES, 1.0), width=256, height=256, shard_size=5,
                   verify_fraction=0.0, seed=3)
    summary = run_job(job, tmp_path, RunOptions(progress=False, report_samples=2))
    assert summary["written"] + summary["failed"] == 9 and summary["written"] >= 7
    assert summary["captions_quoting_text"]["fraction"] == 1.0
    records = [json.loads(files["json"]) for k in range(job.num_shards)
               for _, files in iter_samples(shard_path(tmp_path, k, "wds"), "wds")]
    assert {r["strategy"] for r in records} == set(summary["by_strategy"])
    for record in records:
        assert record["width"] == record["height"] == 256 and record["text"] and record["lines"]
        assert record["key"] == f"{record['index']:08d}" and record["ocr"] is None
    assert summary["characters"]["gb2312"]["level1"]["of"] == 3755
    assert (tmp_path / "report" / "index.html").is_file()


def test_pure_samples_pass_ocr_and_store_the_reading(tmp_path):
    job = SynthJob(count=2, strategies={"pure": 1.0}, languages={"en": 1.0}, width=256, height=256,
                   synth={"length_weights": {"word": 1.0}}, verify_fraction=1.0)  # the default checks 2 %
    summary = run_job(job, tmp_path, RunOptions(progress=False, report_samples=0))
    assert summary["written"] == 2 and summary["ocr"]["reads"] >= 2
    for _, files in iter_samples(shard_path(tmp_path, 0, "wds"), "wds"):
        ocr = json.loads(files["json"])["ocr"]
        assert ocr["passed"] and ocr["score"] >= 0.8 and ocr["lines"]
        assert ocr["case_sensitive"] is not json.loads(files["json"])["extra"]["capitals_forced"]


def test_unknown_strategy_and_bad_synth_option_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown strategy nope"):
        run_job(SynthJob(count=1, strategies={"nope": 1.0}), tmp_path / "a", RunOptions(progress=False))
    with pytest.raises(ValueError, match="unknown SynthConfig keys"):
        run_job(SynthJob(count=1, synth={"fontz": 1}), tmp_path / "b", RunOptions(progress=False))
