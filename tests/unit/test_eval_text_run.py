"""The resumable text-eval loop with a counting generator and a fake OCR reader (no models): interrupted runs
continue without regenerating, images without a record are scored, bad folders and settings are refused."""

import json

import pytest
from PIL import Image

from qwenimage.eval.suites import load_suite, select
from qwenimage.eval.text_run import TextEvalSettings, find_images, load_records, run_samples, start_run
from qwenimage.ocr import OcrLine, OcrResult

SAMPLES = select(load_suite("en-words"), 7)
TEXT_OF = {i: s.texts[0] for i, s in enumerate(SAMPLES)}


class FakeReader:
    """Reads back the expected text of the sample whose index is the image's red value; 255 reads nothing."""

    def read(self, image):
        value = image.getpixel((0, 0))[0]
        return OcrResult([OcrLine(TEXT_OF[value], [(0, 0), (8, 0), (8, 8), (0, 8)], 0.99)] if value in TEXT_OF else [])


class CountingGenerator:
    def __init__(self, fail_after: int | None = None):
        self.made, self.fail_after = [], fail_after

    def __call__(self, samples):
        if self.fail_after is not None and len(self.made) >= self.fail_after:
            raise KeyboardInterrupt  # a kill in the middle of the run
        self.made += [s.id for s in samples]
        return [Image.new("RGB", (16, 16), (s.index if s.index % 3 else 255, 0, 0)) for s in samples]


def _start(out):
    settings = TextEvalSettings(suites=["en-words"], source="oracle")
    return start_run(out, settings, "qwenimage eval text --oracle", len(SAMPLES))


def test_an_interrupted_run_continues_without_regenerating(tmp_path):
    _start(tmp_path)
    first = CountingGenerator(fail_after=4)
    with pytest.raises(KeyboardInterrupt):
        run_samples(SAMPLES, tmp_path, FakeReader(), generate=first, batch_size=2)
    assert first.made == [s.id for s in SAMPLES[:4]]
    assert sorted(p.stem for p in (tmp_path / "records").glob("*.json")) == first.made
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no half files
    (tmp_path / "records" / f"{SAMPLES[1].id}.json").unlink()  # an image whose record was lost
    second = CountingGenerator()
    counts = run_samples(SAMPLES, tmp_path, FakeReader(), generate=second, batch_size=2)
    assert second.made == [s.id for s in SAMPLES[4:]]
    assert counts == {"skipped": 3, "generated": 3, "scored": 4}
    records = load_records(tmp_path, SAMPLES)
    exact = [r["score"]["texts"][0]["exact"] for r in records]
    assert exact == [s.index % 3 != 0 for s in SAMPLES]  # index 0, 3, 6 read nothing
    assert records[2]["ocr"]["text"] == SAMPLES[2].texts[0] and records[2]["image"] == f"images/{SAMPLES[2].id}.png"


def test_a_rerun_with_other_settings_is_refused(tmp_path):
    _start(tmp_path)
    other = TextEvalSettings(suites=["en-words"], source="oracle", seed=5)
    with pytest.raises(ValueError, match="seed: 0 -> 5"):
        start_run(tmp_path, other, "cmd", 7)
    assert json.loads((tmp_path / "run.json").read_text())["settings"]["seed"] == 0


def test_image_folders_are_checked_before_scoring(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        find_images(tmp_path / "nothing", SAMPLES)
    with pytest.raises(ValueError, match="no images in"):
        find_images(tmp_path, SAMPLES)
    for sample in SAMPLES[:5]:
        Image.new("RGB", (8, 8)).save(tmp_path / f"{sample.id}.png")
    Image.new("RGB", (8, 8)).save(tmp_path / f"{SAMPLES[5].id}.JPG")
    with pytest.raises(ValueError, match=f"1 of 7 sample ids have no image.*{SAMPLES[6].id}"):
        find_images(tmp_path, SAMPLES)
    (tmp_path / f"{SAMPLES[6].id}.webp").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=f"cannot read image .*{SAMPLES[6].id}.webp"):
        find_images(tmp_path, SAMPLES)
    Image.new("RGB", (8, 8)).save(tmp_path / f"{SAMPLES[6].id}.webp")
    found = find_images(tmp_path, SAMPLES)
    assert found[SAMPLES[5].id].suffix == ".JPG" and len(found) == 7
