"""Synthetic data and design images through curation, chained as a user chains them: photos and posters
plus a real `qwenimage synth` output folder (all three strategies, 512^2) -> `qwenimage curate` with the
default config; and the near-duplicate case where the larger copy carries a QR code."""

import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from skimage import data as skdata

from qwenimage.cli.main import main
from qwenimage.curate.workdir import read_records
from tests.fixtures.curate_corpus import qr_code, text_image

pytestmark = pytest.mark.slow  # real synth and curation runs: seconds

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def outcomes(out: Path) -> dict:
    return {r.id: r for part in sorted((out / "records").glob("part-*.jsonl")) for r in read_records(part)}


def app_screen(path: Path) -> None:
    """A flat app screen: white page, a header bar, list rows (low entropy: a photo this flat is blank)."""
    image = Image.new("RGB", (720, 1280), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.truetype(FONT, 40)
    draw.rectangle((0, 0, 720, 140), fill=(20, 110, 90))
    draw.text((40, 45), "Inbox", fill="white", font=font)
    for row in range(6):
        draw.line((0, 300 + 150 * row, 720, 300 + 150 * row), fill=(220, 220, 220), width=2)
        draw.text((40, 200 + 150 * row), f"Message {row + 1}: lunch at noon", fill=(30, 30, 30), font=font)
    image.save(path)


def photo_folder(folder: Path) -> None:
    folder.mkdir()
    for name in ("astronaut", "coffee", "rocket"):
        rgb = getattr(skdata, name)()[..., :3]
        scale = 900 / min(rgb.shape[:2])
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        Image.fromarray(rgb).save(folder / f"{name}.jpg", quality=92)
        (folder / f"{name}.txt").write_text(f"a photo of a {name}")
    text_image(["GRAND OPENING", "Summer Sale 50% OFF"], (1024, 768), 72).save(folder / "poster.png")
    (folder / "poster.txt").write_text("a poster announcing a grand opening sale")
    app_screen(folder / "screen.png")
    (folder / "screen.txt").write_text("a screenshot of a mail app")


@pytest.fixture(scope="module")
def chained(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    photo_folder(root / "photos")
    assert main(["synth", "--strategy", "mix", "--lang", "zh,en", "--count", "12", "--size", "512", "--out",
                 str(root / "synth"), "--shard-size", "6", "--report-samples", "2", "--no-progress"]) == 0
    assert main(["curate", "--input", str(root / "photos"), str(root / "synth"), "--out", str(root / "out"),
                 "--workers", "1"]) == 0
    return root


def test_synth_samples_survive_default_curation(chained):
    summary = json.loads((chained / "synth" / "summary.json").read_text())
    assert set(summary["by_strategy"]) == {"pure", "compositional", "complex"}
    synthetic = [r for r in outcomes(chained / "out").values() if r.kind == "synthetic"]
    assert len(synthetic) == summary["written"] == 12
    survived = [r for r in synthetic if r.stage_passed == 7]
    assert len(survived) >= 0.9 * len(synthetic), [(r.id, r.rejection) for r in synthetic if not r.kept]


def test_design_images_survive_s2_and_every_category_has_a_share(chained):
    records = outcomes(chained / "out")
    screen, poster = records["photos/screen.png"], records["photos/poster.png"]
    assert screen.stage_passed == 7 and screen.labels["look"] == "graphic", screen.rejection
    assert poster.stage_passed == 7 and poster.labels["category"] == "Design", poster.rejection
    shares = json.loads((chained / "out" / "report" / "funnel.json").read_text())["categories"]["achieved_shares"]
    assert shares["Synthetic"] > 0 and shares["Design"] > 0 and shares["Nature"] > 0


def test_no_report_image_is_read_and_the_skipped_folders_are_counted(chained):
    records = outcomes(chained / "out")
    assert not [i for i in records if "/report/" in i or "/stats/" in i]
    assert len(records) == 5 + 12
    inputs = json.loads((chained / "out" / "report" / "funnel.json").read_text())["inputs"]
    skipped = {Path(s["path"]).name: s["files"] for s in inputs["skipped"]}
    assert skipped["report"] == len(list((chained / "synth" / "report").rglob("*.*"))) > 0
    assert "report" in (chained / "out" / "report" / "index.html").read_text()


def test_near_duplicates_keep_the_clean_copy_over_a_larger_one_with_a_qr_code(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    clean = cv2.resize(skdata.astronaut(), (717, 717), interpolation=cv2.INTER_LANCZOS4)
    coded = cv2.resize(skdata.astronaut(), (819, 819), interpolation=cv2.INTER_LANCZOS4)  # larger: kept before
    code = qr_code("https://example.com/qwen-image", 5)
    coded[40:40 + code.shape[0], -40 - code.shape[1]:-40] = code[..., None]  # top right: pHash distance 4
    Image.fromarray(clean).save(folder / "clean.png")
    Image.fromarray(coded).save(folder / "coded.png")
    for name in ("clean", "coded"):
        (folder / f"{name}.txt").write_text("a retina photograph")
    assert main(["curate", "--input", str(folder), "--out", str(tmp_path / "out"), "--workers", "1",
                 "--set", "s4.ocr=false", "--set", "output.html_report=false"]) == 0
    records = outcomes(tmp_path / "out")
    clean_record, coded_record = records["photos/clean.png"], records["photos/coded.png"]
    assert clean_record.stage_passed == 7, clean_record.rejection
    assert (coded_record.rejection.stage, coded_record.rejection.reason) == ("s1", "duplicate_near")
    assert coded_record.scores["s1"]["duplicate_of"] == "photos/clean.png"
    assert "passed more checks" in coded_record.rejection.detail and "qr_code" in coded_record.rejection.detail
    dedup = json.loads((tmp_path / "out" / "report" / "funnel.json").read_text())["duplicates"]
    assert dedup["kept_because"] == {"more_checks_passed": 1} and dedup["examples"][0]["kept"] == "photos/clean.png"
    with tarfile.open(next((tmp_path / "out" / "shards").glob("stage-*/*.tar"))) as tar:
        assert sum(m.name.endswith(".json") for m in tar) == 1  # the duplicate trains at no stage


def test_the_trainer_reads_the_curated_shards_with_their_sampling_weights(chained):
    from qwenimage.train.records import read_records, sample_weight

    shards = sorted((chained / "out" / "shards").glob("stage-7/*.tar"))
    records = read_records(shards)
    samples = {}
    for shard in shards:
        with tarfile.open(shard) as tar:
            samples.update({m.name.split(".")[0]: json.loads(tar.extractfile(m).read()) for m in tar
                            if m.name.endswith(".json")})
    assert len(records) == len(samples) == 17
    by_key = {r.id.rsplit("/", 1)[1]: r for r in records}
    assert all(by_key[key].weight == sample["sample_weight"] for key, sample in samples.items())
    synthetic = sum(by_key[k].weight for k, s in samples.items() if s["category"] == "Synthetic")
    shares = json.loads((chained / "out" / "report" / "funnel.json").read_text())["categories"]["achieved_shares"]
    assert 100 * synthetic / sum(r.weight for r in records) == pytest.approx(shares["Synthetic"], abs=0.05)
    assert sample_weight({}) == 1.0
    for bad in (-1, "2", float("nan"), True):
        with pytest.raises(ValueError, match="sample_weight"):
            sample_weight({"sample_weight": bad}, "x.json")
