"""Curation inputs: folders with sidecars, JSONL/CSV manifests, Parquet, WebDataset tars (img2dataset's
layout), synth shards; stable ids, shard planning, and damaged inputs turned into rejected records."""

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from qwenimage.curate.config import InputConfig
from qwenimage.curate.inputs import InputPlan, InputShard, plan_inputs, plan_shards, read_shard
from tests.fixtures.curate_corpus import synth_shard


def png_bytes(colour=(200, 30, 30), size=(300, 300)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def read_all(paths, shard_size=256):
    shards = plan_shards(paths, InputConfig(shard_size=shard_size))
    return shards, [r for s in shards for r in read_shard(InputShard.from_json(s.to_json()))]


def test_folder_with_sidecars(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.jpg", "b.png", "sub/c.png"):
        (tmp_path / name).write_bytes(png_bytes())
    (tmp_path / "a.txt").write_text("caption from txt")
    (tmp_path / "b.json").write_text(json.dumps({"caption": "caption from json", "category": "Design"}))
    (tmp_path / "sub/c.json").write_text("{broken")
    shards, records = read_all([tmp_path], shard_size=2)
    assert [len(s.members) for s in shards] == [2, 1]
    by_id = {r.id.split("/", 1)[1]: r for r in records}
    assert by_id["a.jpg"].caption() == "caption from txt"
    assert by_id["b.png"].caption() == "caption from json" and by_id["b.png"].metadata["category"] == "Design"
    assert "sidecar_error" in by_id["sub/c.png"].metadata and by_id["sub/c.png"].read_bytes() == png_bytes()


def test_manifests_resolve_relative_paths_and_keep_columns(tmp_path):
    (tmp_path / "img.png").write_bytes(png_bytes())
    rows = [{"image": "img.png", "caption": "red", "category": "Nature"}, {"url": "https://x/y.jpg", "caption": "web"},
            {"path": "img.png", "text": "from text"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "m.csv").write_text("file_name,caption,id\nimg.png,from csv,row-a\n")
    shards, records = read_all([tmp_path / "m.jsonl", tmp_path / "m.csv"], shard_size=2)
    assert [(s.start, s.stop) for s in shards] == [(0, 2), (2, 3), (0, 1)]
    assert [r.caption() for r in records] == ["red", "web", "from text", "from csv"]
    assert records[0].read_bytes() == png_bytes() and records[0].metadata["category"] == "Nature"
    with pytest.raises(OSError, match="img2dataset"):
        records[1].read_bytes()
    assert records[3].id == "m.csv/row-a"


def test_parquet_with_bytes_and_hf_image_structs(tmp_path):
    table = pa.table({"image": [{"bytes": png_bytes(), "path": None}, {"bytes": png_bytes((0, 0, 255)), "path": None}],
                      "caption": ["one", "two"], "key": ["k1", "k2"]})
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=1)
    shards, records = read_all([tmp_path / "d.parquet"], shard_size=1)
    assert len(shards) == 2 and [r.id for r in records] == ["d.parquet/k1", "d.parquet/k2"]
    assert records[1].read_bytes() == png_bytes((0, 0, 255)) and records[1].caption() == "two"


def write_tar(path, samples):
    with tarfile.open(path, "w") as tar:
        for name, payload in samples:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_webdataset_img2dataset_layout_and_synth_shards(tmp_path):
    meta = json.dumps({"caption": "from json", "url": "http://x", "status": "success"}).encode()
    write_tar(tmp_path / "00000.tar", [("000000001.jpg", png_bytes()), ("000000001.txt", b"from txt"),
                                       ("000000001.json", meta), ("000000002.png", png_bytes()),
                                       ("000000002.txt", b"second"), ("000000003.txt", b"no image")])
    synth_keys = synth_shard(tmp_path / "synth-000000.tar", count=2)
    shards, records = read_all([tmp_path])
    assert [s.synthetic for s in shards] == [False, True]
    web = [r for r in records if r.kind == "web"]
    assert [r.caption() for r in web] == ["from json", "second"] and web[0].metadata["url"] == "http://x"
    synthetic = [r for r in records if r.kind == "synthetic"]
    assert [r.id.rsplit("/", 1)[1] for r in synthetic] == synth_keys
    assert synthetic[0].metadata["strategy"] == "pure" and synthetic[0].metadata["lines"]


def test_a_truncated_tar_keeps_what_was_read_and_reports_the_rest(tmp_path):
    write_tar(tmp_path / "t.tar", [(f"{i:03d}.png", png_bytes()) for i in range(3)])
    member = 512 + 1024  # header + the 913-byte PNG padded to 512-byte blocks
    (tmp_path / "t.tar").write_bytes((tmp_path / "t.tar").read_bytes()[: 2 * member + 700])  # inside the third
    _, records = read_all([tmp_path / "t.tar"])
    assert records[-1].rejection.reason == "broken_file" and "breaks off" in records[-1].rejection.detail
    assert all(r.kept for r in records[:-1])


def test_unknown_inputs_are_refused(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="not a folder"):
        plan_shards([tmp_path / "x.bin"], InputConfig())
    with pytest.raises(ValueError, match="not found"):
        plan_shards([tmp_path / "missing"], InputConfig())


def fake_synth_output(folder, shard_format="wds"):
    """A `qwenimage synth` output folder: job.json, a shard, stats/, report/ (contact sheets) and a stray folder."""
    folder.mkdir(parents=True)
    (folder / "job.json").write_text("{}")
    (folder / "summary.json").write_text("{}")
    if shard_format == "wds":
        keys = synth_shard(folder / "synth-000000.tar", count=2)
    else:
        shard = folder / "synth-000000"
        shard.mkdir()
        keys = ["00000000", "00000001"]
        for key in keys:
            (shard / f"{key}.png").write_bytes(png_bytes())
            (shard / f"{key}.json").write_text(json.dumps({"text": "Hi", "strategy": "pure", "caption": "says \"Hi\""}))
    for sub, count in (("stats", 1), ("report/pure", 3), ("scratch", 2)):
        (folder / sub).mkdir(parents=True)
        for i in range(count):
            (folder / sub / f"{i}.png").write_bytes(png_bytes())
    (folder / "report" / "pure.png").write_bytes(png_bytes())
    (folder / "notes.png").write_bytes(png_bytes())
    return keys


@pytest.mark.parametrize("shard_format", ["wds", "folder"])
def test_a_synth_output_folder_is_read_through_its_shards_and_its_side_folders_are_counted(tmp_path, shard_format):
    keys = fake_synth_output(tmp_path / "synth", shard_format)
    plan = plan_inputs([tmp_path / "synth"], InputConfig())
    records = [r for s in plan.shards for r in read_shard(InputShard.from_json(s.to_json()))]
    assert sorted(r.id.rsplit("/", 1)[1].split(".")[0] for r in records) == keys
    assert all(r.kind == "synthetic" and r.id.startswith("synth/synth-000000/") for r in records)
    assert all(r.metadata.get("strategy") == "pure" for r in records)
    skipped = {Path(s.path).name: s for s in plan.skipped}
    assert set(skipped) == {"report", "stats", "scratch", "notes.png"}
    assert (skipped["report"].files, skipped["scratch"].files) == (4, 2)
    assert "report" in skipped["report"].why and "not a shard" in skipped["scratch"].why
    assert InputPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_a_synth_output_folder_inside_an_image_folder_is_read_as_synth(tmp_path):
    (tmp_path / "photo.png").write_bytes(png_bytes())
    keys = fake_synth_output(tmp_path / "data" / "synth")
    plan = plan_inputs([tmp_path], InputConfig())
    records = [r for s in plan.shards for r in read_shard(s)]
    assert [r.id for r in records if r.kind == "web"] == [f"{tmp_path.name}/photo.png"]
    assert sorted(r.id.rsplit("/", 1)[1] for r in records if r.kind == "synthetic") == keys
    assert {Path(s.path).name for s in plan.skipped} == {"report", "stats", "scratch", "notes.png"}
