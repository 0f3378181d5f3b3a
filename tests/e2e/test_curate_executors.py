"""The same operators on Ray Data (a local Ray) keep exactly the records the local process pool keeps."""

import shutil

import pytest

from qwenimage.curate.config import load_curate_config
from qwenimage.curate.pipeline import Curation
from qwenimage.curate.workdir import read_records
from tests.fixtures.curate_corpus import build_corpus, synth_shard

pytestmark = pytest.mark.slow  # a real run of the pipeline: seconds, not milliseconds

pytest.importorskip("ray")
SUBSET = ["astronaut_large.jpg", "coffee_large.jpg", "coffee_large_copy.jpg", "astronaut_resized.jpg", "blurred.jpg",
          "truncated.jpg", "refusal_en.png", "poster_zh.png", "camera_16bit.png"]


def decisions(out):
    records = [r for part in sorted((out / "records").glob("*.jsonl")) for r in read_records(part)]
    return {r.id: (r.stage_passed, r.rejection and (r.rejection.stage, r.rejection.reason), r.labels.get("category"),
                   r.labels.get("buckets"), r.labels.get("sample_weight")) for r in records}


def test_ray_data_keeps_the_same_records_as_the_local_executor(tmp_path):
    build_corpus(tmp_path / "full")
    (tmp_path / "corpus").mkdir()
    for name in SUBSET:
        for path in (tmp_path / "full").glob(name.rsplit(".", 1)[0] + ".*"):
            shutil.copy(path, tmp_path / "corpus" / path.name)
    synth_shard(tmp_path / "synth-000000.tar", count=2)
    inputs = [tmp_path / "corpus", tmp_path / "synth-000000.tar"]
    settings = ["input.shard_size=4", "executor.workers=2", "output.html_report=false"]
    local = Curation(load_curate_config(None, settings), inputs, tmp_path / "local").run()
    ray = Curation(load_curate_config(None, settings + ["executor.kind=ray"]), inputs, tmp_path / "ray").run()
    assert local.records == ray.records == len(SUBSET) + 2 and local.shards == 4
    assert decisions(tmp_path / "local") == decisions(tmp_path / "ray")
    assert local.report.name == "funnel.json" and not (tmp_path / "local" / "report" / "index.html").exists()
    assert {p.name: p.read_bytes() for p in (tmp_path / "local").glob("shards/*/*")} == \
        {p.name: p.read_bytes() for p in (tmp_path / "ray").glob("shards/*/*")}
