"""Training records from folders and tar shards: unreadable samples are skipped, named and counted; too many of
them stop the run with one line naming them."""

import io
import json
import logging
import tarfile

import numpy as np
import pytest
from PIL import Image

from qwenimage.train.records import PackedImage, check_bad_records, open_record_image, read_records, read_sources
from tests.helpers import png_declaring


def png(color=(200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buffer, "PNG")
    return buffer.getvalue()


def folder_with_bad_samples(root):
    folder = root / "cards"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i:02d}.png").write_bytes(png())
        (folder / f"{i:02d}.txt").write_text(f"card {i}")
    (folder / "garbage.png").write_bytes(b"\x89PNG but not really" * 200)
    (folder / "bomb.png").write_bytes(png_declaring(20000, 20000))
    (folder / "sidecar.png").write_bytes(png())
    (folder / "sidecar.json").write_text('{"caption": "a card", ')  # cut short
    (folder / "edit.png").write_bytes(png())
    (folder / "edit.json").write_text(json.dumps({"caption": "x", "instruction": "y", "source": "aux/missing.png"}))
    return folder


def shard_with_bad_members(root):
    path = root / "shards" / "synth-000000.tar"
    path.parent.mkdir()
    members = {"good.png": png(), "bomb.png": png_declaring(20000, 20000), "good.json": b'{"caption": "fine"}', "noimage.png": b"plain text, no PNG",
               "badjson.png": png(), "badjson.json": b"{not json", "list.png": png(), "list.json": b"[1, 2]"}
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_unreadable_images_sidecars_and_tar_members_are_skipped_and_named(tmp_path, caplog):
    folder, shard = folder_with_bad_samples(tmp_path), shard_with_bad_members(tmp_path)
    records, bad = read_sources([folder, shard.parent])
    assert sorted(r.id for r in records) == [f"cards/{i:02d}" for i in range(6)] + ["shards/synth-000000/good"]
    reasons = {b.name: b.reason for b in bad}
    assert set(reasons) == {str(folder / "garbage.png"), str(folder / "sidecar.png"), str(folder / "edit.png"),
                            str(folder / "bomb.png"), f"{shard}:noimage.png", f"{shard}:badjson.png",
                            f"{shard}:list.png", f"{shard}:bomb.png"}
    assert "not an image file" in reasons[str(folder / "garbage.png")]
    assert f"{folder / 'sidecar.json'}: not valid JSON" in reasons[str(folder / "sidecar.png")]
    assert "aux/missing.png, which does not exist" in reasons[str(folder / "edit.png")]
    assert f"{shard}:noimage.png: not an image file" in reasons[f"{shard}:noimage.png"]
    assert f"{shard}:badjson.json: not valid JSON" in reasons[f"{shard}:badjson.png"]
    assert "expected a JSON object, got list" in reasons[f"{shard}:list.png"]
    assert not any("BytesIO" in reason for reason in reasons.values())
    assert "400000000 pixels" in reasons[str(folder / "bomb.png")] and "pixels" in reasons[f"{shard}:bomb.png"]
    with caplog.at_level(logging.WARNING):
        assert len(read_records([folder, shard.parent], max_bad=8)) == 7
    assert sum("skipping training record" in r.message for r in caplog.records) == 8
    assert any("skipped 8 of 15 training records" in r.message for r in caplog.records)


@pytest.mark.parametrize("max_bad,allowed", [(0, False), (0.4, False), (0.5, True), (5, False), (6, True)])
def test_more_bad_records_than_max_bad_records_is_an_error_naming_them(max_bad, allowed):
    from qwenimage.train.records import BadRecord

    bad = [BadRecord(f"/data/{i}.png", "not an image file") for i in range(6)]
    if allowed:
        check_bad_records(bad, 12, max_bad)
        return
    with pytest.raises(ValueError, match=r"6 of 12 training records are unreadable, more than data.max_bad_records "
                                         r"= .* allows: /data/0.png, /data/1.png, /data/2.png, ..."):
        check_bad_records(bad, 12, max_bad)


def test_a_shard_cut_short_keeps_its_first_samples_and_counts_the_tail(tmp_path):
    shard = shard_with_bad_members(tmp_path)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2 + 100])
    records, bad = read_sources([shard])
    assert [b.name for b in bad if "breaks off" in b.reason] == [str(shard)]


def test_a_missing_source_is_named(tmp_path):
    with pytest.raises(ValueError, match=f"training data source {tmp_path / 'nope.tar'} does not exist"):
        read_sources([tmp_path / "nope.tar"])


def test_curation_parquet_shards_read_like_its_tar_shards(tmp_path):
    """`qwenimage curate` writes shards/stage-K/part-N.tar or .parquet; the trainer reads either the same way,
    with the sample weights, and a damaged Parquet file is one named bad record."""
    from qwenimage.curate.writer import _parquet_bytes, _tar_bytes

    samples = [(f"k{i}", {"png": png((40 * i, 80, 120)), "txt": f"card {i}".encode(),
                          "json": json.dumps({"caption": f"a card {i}", "text": f"{i}", "sample_weight": 0.5 + i})
                          .encode()}) for i in range(3)]
    for fmt, data in (("tar", _tar_bytes(samples)), ("parquet", _parquet_bytes(samples))):
        (tmp_path / fmt).mkdir()
        (tmp_path / fmt / f"part-000000.{fmt}").write_bytes(data)
    from_tar, from_parquet = read_records([tmp_path / "tar"]), read_records([tmp_path / "parquet"])
    assert [(r.caption, r.text, r.weight) for r in from_parquet] == [(f"a card {i}", f"{i}", 0.5 + i) for i in range(3)]
    assert [(r.caption, r.text, r.weight) for r in from_tar] == [(r.caption, r.text, r.weight) for r in from_parquet]
    assert all(list(open_record_image(a.image).getdata()) == list(open_record_image(b.image).getdata())
               for a, b in zip(from_tar, from_parquet))
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(_parquet_bytes(samples)[:200])
    records, bad = read_sources([damaged])
    assert records == [] and len(bad) == 1 and "unreadable Parquet shard" in bad[0].reason


def test_shard_records_hold_the_encoded_bytes_and_decode_when_opened(tmp_path):
    """Reading a shard set keeps each member's compressed bytes, not its pixels (32,000 decoded 256² edit pairs
    took 21 GB); the picture is decoded when a sample is encoded, and a member whose pixels are damaged past a
    good header fails then with the shard member's name."""
    noise = Image.effect_noise((256, 256), 40).convert("RGB")
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    good = buffer.getvalue()
    damaged = good[: len(good) // 2]  # the header and half the pixel data
    path = tmp_path / "shards" / "synth-000000.tar"
    path.parent.mkdir()
    with tarfile.open(path, "w") as tar:
        for name, data in {"a.png": good, "a.source.png": good, "a.json": b'{"caption": "c", "instruction": "i"}',
                           "b.png": damaged}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    records = {r.id.split("/")[-1]: r for r in read_records([path.parent], max_bad=0)}
    a = records["a"]
    assert isinstance(a.image, PackedImage) and isinstance(a.source, PackedImage)
    assert a.image.data == good and a.image.size == (256, 256) and len(good) < 256 * 256 * 3
    assert np.array_equal(np.asarray(open_record_image(a.image)), np.asarray(noise))
    assert records["b"].image.size == (256, 256)
    with pytest.raises(ValueError, match=r"synth-000000.tar:b.png"):
        open_record_image(records["b"].image)
