"""The acceptance corpus through all seven stages on the local executor: every defect is rejected by the
right stage with the right reason, clean pictures pass, converted formats are handled, nothing is dropped
without a reason, and the outputs (shards, per-record table, funnel report) agree with each other."""

import io
import json
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from qwenimage.curate.config import load_curate_config
from qwenimage.curate.pipeline import Curation
from qwenimage.curate.record import STAGES
from qwenimage.curate.workdir import read_records
from tests.fixtures.curate_corpus import build_corpus, synth_shard

pytestmark = pytest.mark.slow  # a real run of the pipeline: seconds, not milliseconds

SETTINGS = ["executor.workers=2", "input.shard_size=6"]


def outcomes(out: Path) -> dict:
    records = [r for part in sorted((out / "records").glob("part-*.jsonl")) for r in read_records(part)]
    assert len({r.id for r in records}) == len(records)
    return {r.id: r for r in records}


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    root = tmp_path_factory.mktemp("curate")
    items = build_corpus(root / "corpus")
    (root / "synth").mkdir()
    synth_keys = synth_shard(root / "synth" / "synth-000000.tar")
    summary = Curation(load_curate_config(None, SETTINGS), [root / "corpus", root / "synth"], root / "out").run()
    return items, synth_keys, summary, root / "out"


def test_every_defect_is_rejected_by_its_stage_and_clean_images_pass(curated):
    items, _, _, out = curated
    records = outcomes(out)
    for item in items:
        record = records[f"corpus/{item.name}"]
        got = (record.rejection.stage, record.rejection.reason) if record.rejection else None
        if item.expect is None:  # clean: passes S1-S5; S6 may leave it out to keep the category shares
            assert record.stage_passed >= 5 and got in (None, ("s6", "balance_downsampled")), (item.name, got)
        else:
            assert got == item.expect, (item.name, got, record.rejection and record.rejection.detail)


def test_cmyk_16bit_and_exif_rotated_files_are_converted_and_kept_for_the_lower_tier(curated):
    records = outcomes(curated[3])
    assert records["corpus/rocket_cmyk.jpg"].scores["s1"]["mode"] == "CMYK"
    assert records["corpus/camera_16bit.png"].scores["s1"]["mode"] == "I;16"
    chelsea = records["corpus/chelsea_exif.jpg"].scores["s1"]
    assert (chelsea["exif_orientation"], chelsea["width"], chelsea["height"]) == (6, 451, 300)
    for name in ("rocket_cmyk.jpg", "camera_16bit.png", "chelsea_exif.jpg"):
        record = records[f"corpus/{name}"]
        assert record.stage_passed == 7 and record.labels["high_resolution"] is False  # below 640p: not rejected,
        assert set(record.labels["buckets"]) == {"256"}  # it trains at the 256p tier only
        for tar in (curated[3] / "shards" / "stage-7").glob("*.tar"):
            with tarfile.open(tar) as handle:
                for member in handle:
                    if member.name.endswith((".png", ".jpg")):
                        image = Image.open(io.BytesIO(handle.extractfile(member).read()))
                        assert image.mode in ("RGB", "L") and image.getexif().get(0x0112, 1) == 1


def test_synthetic_shards_enter_at_s4_and_are_their_own_category(curated):
    _, keys, _, out = curated
    records = outcomes(out)
    for key in keys:
        record = records[f"synth/synth-000000/{key}"]
        assert record.kind == "synthetic" and not {"s1", "s2", "s3"} & set(record.scores)
        assert record.labels["category"] == "Synthetic" and record.labels["language"] in ("chinese", "english")


def test_no_record_is_dropped_without_a_reason_and_the_funnel_adds_up(curated):
    items, keys, summary, out = curated
    records = outcomes(out)
    assert len(records) == summary.records == len(items) + len(keys)
    assert all(r.rejection is not None or r.stage_passed == 7 for r in records.values())
    funnel = json.loads((out / "report" / "funnel.json").read_text())
    stages = funnel["stages"]
    for previous, stage in zip(stages, stages[1:]):
        assert stage["entered"] == previous["passed"] + stage["joined"]
        assert stage["passed"] == stage["entered"] - sum(stage["reasons"].values())
    assert stages[-1]["passed"] == funnel["kept"] == summary.kept


def test_output_shards_hold_each_record_once_grouped_by_stages_passed(curated):
    records = outcomes(curated[3])
    seen = {}
    for tar in sorted((curated[3] / "shards").glob("stage-*/*.tar")):
        stage = int(tar.parent.name.split("-")[1])
        with tarfile.open(tar) as handle:
            for member in handle:
                if member.name.endswith(".json"):
                    sample = json.loads(handle.extractfile(member).read())
                    assert sample["stage_passed"] == stage and sample["id"] not in seen
                    seen[sample["id"]] = sample
    assert set(seen) == {i for i, r in records.items() if r.stage_passed >= 1}
    final = [s for s in seen.values() if s["stage_passed"] == len(STAGES)]
    assert final and all(s["caption"] and "256" in s["buckets"] and s["category"] for s in final)
    assert all(("640" in s["buckets"]) == s["labels"]["high_resolution"] for s in final)  # the 640p tier: S5's


def test_html_report_shows_funnel_plots_and_rejected_thumbnails(curated):
    html = (curated[3] / "report" / "index.html").read_text()
    for reason in ("broken_file", "duplicate_near", "blurry", "invalid_caption", "dense_text", "qr_code"):
        assert reason in html
    assert html.count("data:image/png;base64") >= 6 and "data:image/jpeg;base64" in html


def _manifest_corpus(folder: Path, supply: dict[str, int]) -> Path:
    import numpy as np
    from skimage import data as skdata

    photos = [skdata.astronaut(), skdata.coffee(), skdata.retina(), skdata.immunohistochemistry()]
    rng = np.random.default_rng(0)
    rows = []
    for category, count in supply.items():
        for i in range(count):
            photo = photos[rng.integers(len(photos))]
            top, left = rng.integers(0, photo.shape[0] - 256), rng.integers(0, photo.shape[1] - 256)
            name = f"{category}_{i:03d}.jpg"
            Image.fromarray(photo[top:top + 256, left:left + 256]).save(folder / name, quality=90)
            rows.append({"image": name, "caption": f"a {category.lower()} picture", "category": category})
    (folder / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return folder / "manifest.jsonl"


@pytest.mark.parametrize("mode", ["weights", "downsample"])
def test_balancing_a_mixed_input_hits_the_target_shares_within_one_point(tmp_path, mode):
    """weights (the default): every record is written and the sample weights give the stream the target
    shares; downsample: the kept records have them."""
    manifest = _manifest_corpus(tmp_path, {"Nature": 120, "Design": 70, "People": 40, "Synthetic": 12})
    config = load_curate_config(None, ["executor.workers=1", "s1.dedup=false", "s2.min_clarity=0", "s2.max_noise=100",
                                       "s2.min_entropy=0", "s4.ocr=false", "s5.min_pixels=0", "s5.min_sharpness=0",
                                       "s5.max_dark_fraction=1", "s5.max_bright_fraction=1", "s5.reject_qr_codes=false",
                                       "s5.reject_barcodes=false", f"s6.mode={mode}", "output.html_report=false"])
    summary = Curation(config, [manifest], tmp_path / "out").run()
    kept = [s for s in written_samples(tmp_path / "out") if s["stage_passed"] == len(STAGES)]
    funnel = json.loads((tmp_path / "out" / "report" / "funnel.json").read_text())
    assert summary.kept == len(kept) > 150
    if mode == "weights":  # every record that reached S6 is kept and written
        assert len(kept) == funnel["stages"][STAGES.index("s6")]["entered"]
    weight = (lambda s: s["sample_weight"]) if mode == "weights" else (lambda s: 1.0)
    total = sum(weight(s) for s in kept)
    for category, target in {"Nature": 55, "Design": 27.41, "People": 13.21, "Synthetic": 5}.items():
        share = 100 * sum(weight(s) for s in kept if s["category"] == category) / total
        assert abs(share - target * 100 / 100.62) <= 1.0, (category, share)
        assert abs(funnel["categories"]["achieved_shares"][category] - share) < 0.05
    assert (funnel["categories"]["dropped"] == 0) == (mode == "weights")


def written_samples(out: Path) -> list[dict]:
    """The json of every sample in the output shards."""
    samples = []
    for tar in sorted(out.glob("shards/stage-*/*.tar")):
        with tarfile.open(tar) as handle:
            samples += [json.loads(handle.extractfile(m).read()) for m in handle if m.name.endswith(".json")]
    return samples


def chromium() -> str | None:
    import shutil

    return next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))),
                None)


@pytest.mark.skipif(chromium() is None, reason="no Chromium (apt-get install chromium)")
def test_the_html_report_renders_in_headless_chromium(curated, tmp_path):
    import subprocess

    import numpy as np

    shot = tmp_path / "report.png"
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1200,1600", f"--screenshot={shot}", (curated[3] / "report" / "index.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (1600, 1200) and pixels.std() > 20  # a rendered page, not a blank one
