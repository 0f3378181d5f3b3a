"""Curation names the real file or tar member of an undecodable image, and records a dangling symbolic link as
a rejected record instead of losing it."""

import io
import os
import tarfile

import numpy as np
from PIL import Image

from qwenimage.curate.config import load_curate_config
from qwenimage.curate.inputs import plan_inputs, read_shard
from qwenimage.curate.stages.s1_preprocess import S1Preprocess


def scanned(paths):
    config = load_curate_config(None, [])
    records = [r for shard in plan_inputs(paths, config.input).shards for r in read_shard(shard)]
    S1Preprocess(config)(records)
    return {r.id: r for r in records}


def test_undecodable_files_and_tar_members_are_named_and_dangling_links_are_rejects(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(folder / "ok.png")
    (folder / "garbage.png").write_bytes(os.urandom(5000))
    (folder / "gone.png").symlink_to(tmp_path / "elsewhere" / "gone.png")
    (folder / "gone-without-suffix").symlink_to(tmp_path / "elsewhere" / "photo.jpg")
    shard = tmp_path / "web-000000.tar"
    with tarfile.open(shard, "w") as tar:
        data = os.urandom(5000)
        info = tarfile.TarInfo("k1.jpg")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    records = scanned([folder, shard])
    assert records["photos/ok.png"].kept
    garbage = records["photos/garbage.png"].rejection
    assert (garbage.reason, garbage.detail) == ("broken_file", f"{folder / 'garbage.png'}: cannot decode: not an "
                                                               "image file Pillow can identify")
    member = records[f"{tmp_path.name}/web-000000/k1"]  # a shard's label keeps its folder's name
    assert member.rejection.detail.startswith(f"{shard}:k1.jpg: cannot decode")
    for name, target in (("gone.png", "gone.png"), ("gone-without-suffix", "photo.jpg")):
        rejection = records[f"photos/{name}"].rejection
        assert (rejection.stage, rejection.reason) == ("s1", "dangling_symlink")
        assert rejection.detail == f"{folder / name} links to {tmp_path / 'elsewhere' / target}, which does not exist"
    assert not any("BytesIO" in (r.rejection.detail if r.rejection else "") for r in records.values())
