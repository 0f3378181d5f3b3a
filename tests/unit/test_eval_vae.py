"""VAE fidelity: metrics on known reconstructions (identity, blur), OCR mosaics, `qwenimage eval vae` end to end."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from qwenimage.cli.main import main
from qwenimage.eval.ocr_mosaic import read_mosaic
from qwenimage.eval.vae import builtin_photos, evaluate_vae, reconstruct, text_images, vae_samples
from qwenimage.ocr import OcrEngine


class IdentityVAE(torch.nn.Module):
    """Reconstructs perfectly: what evaluate_vae must score as a perfect VAE."""

    spatial_factor = 8

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x * self.scale


class BlurVAE(IdentityVAE):
    """Keeps colours and layout, loses the strokes of small letters (a 5x5 box blur at 128 px)."""

    def forward(self, x):
        return F.avg_pool2d(F.pad(x, (3, 3, 3, 3), mode="replicate"), 7, stride=1)


@pytest.fixture(scope="module")
def engine():
    return OcrEngine()


@pytest.fixture(scope="module")
def samples():
    return builtin_photos(2, 128) + text_images(4, 128)


def test_identity_is_perfect_and_blur_fails_the_text(samples, engine):
    perfect = evaluate_vae(IdentityVAE(), samples, engine)
    assert all(r["psnr"] == math.inf and r["ssim"] == 1.0 for r in perfect["records"])
    assert perfect["summary"]["photo"]["psnr"]["value"] == math.inf
    text = perfect["summary"]["text"]
    assert text["ocr_agreement"]["value"] == text["original_ocr_agreement"]["value"] >= 0.9  # OCR reads the same
    assert text["ocr_exact"]["n"] == 4 and perfect["summary"]["photo"]["ocr_exact"]["n"] == 0
    blurred = evaluate_vae(BlurVAE(), samples, engine)
    assert math.isfinite(blurred["scalars"]["psnr/text"]) and blurred["scalars"]["psnr/text"] > 15
    assert blurred["scalars"]["ocr_agreement/text"] < text["ocr_agreement"]["value"] - 0.2
    assert perfect["scalars"]["psnr/all"] == 100.0  # capped for learning curves


def test_originals_are_read_once(samples):
    from qwenimage.ocr import OcrResult

    class CountingEngine:
        calls = 0

        def read(self, image):
            self.calls += 1
            return OcrResult()

    texts = [type(s)(s.id, s.image, s.kind, s.text) for s in samples if s.text]
    counting = CountingEngine()
    evaluate_vae(IdentityVAE(), texts, counting)
    assert counting.calls == 2 and all(s.original_reading == "" for s in texts)  # originals, reconstructions
    evaluate_vae(IdentityVAE(), texts, counting)
    assert counting.calls == 3  # the originals' readings were kept on the samples


def test_mosaic_reads_like_single_calls(engine):
    images = [s.image for s in text_images(2, 128, seed=5)]
    together = [r.text for r in read_mosaic(engine, images)]
    alone = [engine.read(image).text for image in images]
    assert together == alone


def test_mosaic_keeps_wide_words_of_vae_reconstructions_apart(engine):
    """Four real reconstructions by qwenimage-mini's VAE: wide words on off-white paper, two by two. With 32
    pixels between columns the detector joined each row into one line ("Luck ordering" in one tile, nothing in
    the other)."""
    from pathlib import Path

    from PIL import Image

    words = ["Luck", "ordering", "Motion", "slaves"]
    folder = Path(__file__).resolve().parents[1] / "fixtures" / "vae_recons"
    images = [Image.open(folder / f"{word}.png").convert("RGB") for word in words]
    assert [engine.read(image).text for image in images] == words
    assert [r.text for r in read_mosaic(engine, images)] == words


def test_reconstruct_batches_and_restores_the_training_mode(samples):
    vae = IdentityVAE().train()
    out = reconstruct(vae, [s.image for s in samples], batch_size=4)
    assert vae.training and [o.size for o in out] == [s.image.size for s in samples]
    with pytest.raises(ValueError, match="100x100 is not a multiple of the VAE factor 8"):
        reconstruct(vae, [samples[0].image.resize((100, 100))])


def test_sample_sets_are_deterministic(tmp_path):
    first, second = text_images(2, 64, seed=3), text_images(2, 64, seed=3)
    assert [s.text for s in first] == [s.text for s in second] and all(s.text for s in first)
    first[0].image.save(tmp_path / "sign.png")
    (tmp_path / "sign.txt").write_text(first[0].text)
    first[1].image.save(tmp_path / "plain.png")
    mine = vae_samples(4, 64, images=tmp_path)[:2]
    assert [(s.id, s.kind, s.text) for s in mine] == [("plain", "photo", None), ("sign", "text", first[0].text)]


def test_eval_vae_runs_end_to_end_on_the_tiny_model(tiny_pipeline_dir, tmp_path, capsys):
    code = main(["eval", "vae", "--model", str(tiny_pipeline_dir), "--n", "2", "--size", "64", "--out", str(tmp_path),
                 "--no-progress"])
    out, _ = capsys.readouterr()
    assert code == 0 and "[text]" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["kind"] for r in results["records"]] == ["photo", "photo", "text", "text"]
    assert results["summary"]["text"]["ocr_agreement"]["value"] < 0.5  # random weights: no text survives
    assert 0 < results["summary"]["all"]["psnr"]["value"] < 30
    assert (tmp_path / "report.html").read_text().count("data:image/jpeg;base64") == 8


@pytest.mark.parametrize("argv, expected", [
    (["--model", "{missing}"], "no VAE there"),
    (["--model", "{model}", "--size", "60"], "--size 60 is not a multiple of the VAE factor 8"),
    (["--model", "{model}", "--images", "{missing}"], "no such folder"),
])
def test_bad_input_gives_a_one_line_error(tiny_pipeline_dir, tmp_path, capsys, argv, expected):
    argv = [a.format(model=tiny_pipeline_dir, missing=tmp_path / "missing") for a in argv]
    code = main(["eval", "vae", "--n", "1", "--size", "64", "--out", str(tmp_path / "out"), "--no-ocr", *argv])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and err.strip().count("\n") == 0, err
