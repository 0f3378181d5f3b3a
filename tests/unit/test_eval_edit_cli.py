"""`qwenimage eval edit`: build and score the suite, edit it with the tiny model (resumable), one-line errors."""

import json

import numpy as np
import pytest
from PIL import Image

from qwenimage.cli.main import main
from qwenimage.eval.edit_generate import EditSampling, generate_edits
from qwenimage.eval.edit_pairs import read_pairs


def run(capsys, *argv):
    code = main(["eval", "edit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("suite")
    assert main(["eval", "edit", "--suite", "text-edit", "--build", str(folder), "--n", "2", "--size", "128"]) == 0
    return folder


def test_built_suite_scores_perfectly_through_the_command_line(built, tmp_path, capsys):
    code, out, _ = run(capsys, "--pairs", str(built), "--out", str(tmp_path / "run"), "--no-ocr", "--no-progress")
    assert code == 0 and "PSNR outside the region" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["summary"]["psnr"]["value"] == "inf"  # strict JSON: infinity as a string
    assert results["summary"]["ssim"]["value"] == 1.0 and results["summary"]["delta_e"]["value"] == 0.0
    assert [r["id"] for r in results["records"]] == ["te-0000", "te-0001"]
    assert results["command"].startswith("qwenimage eval edit --pairs")
    page = (tmp_path / "run" / "report.html").read_text()
    assert page.count("data:image/jpeg;base64") == 6 and "te-0001" in page


class FakePipe:
    """Stands in for QwenImagePipeline.generate: returns the condition image, records the requests."""

    def __init__(self):
        self.requests = []

    def generate(self, requests, progress=None):
        from types import SimpleNamespace

        self.requests += requests
        return [SimpleNamespace(image=request.images[0]) for request in requests]


def test_generation_writes_each_edit_once_and_resumes(built, tmp_path):
    pairs = read_pairs(built)
    pipe, out = FakePipe(), tmp_path / "edited"
    sampling = EditSampling(steps=3, seed=10, batch_size=2)
    assert generate_edits(pipe, pairs, out, sampling, progress=False) == 2
    first = pipe.requests[1]
    assert first.prompt == pairs[1].instruction and first.seed == 11 and first.num_steps == 3
    assert (first.width, first.height) == Image.open(pairs[1].source).size
    (out / "te-0000.png").unlink()  # as if the run had been killed before this edit
    kept = (out / "te-0001.png").stat().st_mtime_ns
    assert generate_edits(pipe, pairs, out, sampling, progress=False) == 1
    assert [r.seed for r in pipe.requests] == [10, 11, 10]
    assert (out / "te-0001.png").stat().st_mtime_ns == kept


@pytest.mark.slow
def test_suite_edited_by_the_tiny_model_end_to_end(tiny_pipeline_dir, tmp_path, capsys):
    argv = ["--suite", "text-edit", "--model", str(tiny_pipeline_dir), "--n", "1", "--size", "128", "--steps", "1",
            "--cfg", "1", "--no-ocr", "--no-progress", "--out", str(tmp_path)]
    code, _, _ = run(capsys, *argv)
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    record = results["records"][0]
    assert record["edited"].endswith("edited/te-0000.png") and record["psnr"] < 30  # random weights: noise
    assert Image.open(tmp_path / "edited" / "te-0000.png").size == (128, 128)
    code, _, err = run(capsys, *argv, "--size", "256")  # the same --out with other suite settings is refused
    assert code == 2 and "holds a text-edit suite built with" in err


def test_vae_ceiling_scores_the_ground_truth_after_a_round_trip(tiny_pipeline_dir, tmp_path, capsys):
    from qwenimage.eval.edit_generate import reconstruct_edits

    argv = ["--suite", "text-edit", "--through-vae", str(tiny_pipeline_dir), "--n", "2", "--size", "128", "--no-ocr",
            "--no-progress", "--out", str(tmp_path)]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "PSNR outside the region" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["command"].startswith("qwenimage eval edit --suite text-edit --through-vae")
    records = results["records"]
    assert [r["edited"].endswith(f"edited/te-000{i}.png") for i, r in enumerate(records)] == [True, True]
    # a random tiny VAE does not give the ground truth back: finite PSNR (the ground truth itself scores inf)
    assert all(0 < r["psnr"] < 40 for r in records)
    round_trip = Image.open(tmp_path / "edited" / "te-0001.png")
    truth = Image.open(tmp_path / "suite" / "te-0001.edited.png")
    assert round_trip.size == truth.size == (128, 128)
    assert reconstruct_edits(None, read_pairs(tmp_path / "suite"), tmp_path / "edited", progress=False) == 0  # resumes

    # --keep-unedited: the same round trips with the source's own pixels outside the cells the edit changed (this
    # random VAE's normalised latents move by ~0.02 in the text's cells and ~0.004 elsewhere: threshold 0.01)
    kept_out = tmp_path / "kept"
    code, _, _ = run(capsys, *argv[:-1], str(kept_out), "--keep-unedited", "0.01")
    assert code == 0
    kept = json.loads((kept_out / "results.json").read_text())
    assert "--keep-unedited 0.01" in kept["command"] and kept["settings"]["keep_unedited"] == 0.01
    for plain, composite in zip(records, kept["records"]):
        assert float(composite["psnr"]) > plain["psnr"]  # the outside is (mostly) the source's own: "inf" if all
    source = np.asarray(Image.open(kept_out / "suite" / "te-0001.source.png").convert("RGB"))
    region = np.asarray(Image.open(kept_out / "suite" / "te-0001.mask.png").convert("L")) >= 128
    composite = np.asarray(Image.open(kept_out / "edited" / "te-0001.png").convert("RGB"))
    same = (composite == source).all(axis=-1)
    assert same.mean() > 0.3 and not same[region].all()  # far from the text: the source exactly; the text: redrawn


def _write(path, size=(64, 64), value=128):
    Image.new("RGB", size, (value, value, value)).save(path)


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such folder or manifest file"),
    ("unpaired", "pair 'b' in"),
    ("mask", "mask"),
    ("unreadable", "cannot read image"),
    ("empty", "no ID.source.png"),
])
def test_bad_pairs_give_a_one_line_error_and_exit_2(tmp_path, capsys, case, expected):
    folder = tmp_path / "pairs"
    folder.mkdir()
    _write(folder / "a.source.png")
    _write(folder / "a.edited.png")
    if case == "unpaired":
        _write(folder / "b.source.png")
    elif case == "mask":
        _write(folder / "a.mask.png", size=(32, 64))
    elif case == "unreadable":
        (folder / "a.edited.png").write_bytes(b"not a png")
    elif case == "empty":
        for path in folder.iterdir():
            path.unlink()
    target = tmp_path / "nowhere" if case == "missing" else folder
    code, _, err = run(capsys, "--pairs", str(target), "--out", str(tmp_path / "out"), "--no-ocr", "--no-progress")
    assert code == 2 and expected in err and err.strip().count("\n") == 0, err
    if case == "mask":
        assert "32x64" in err and "64x64" in err


@pytest.mark.parametrize("argv, expected", [
    ([], "--pairs DIR_OR_MANIFEST or --suite text-edit"),
    (["--suite", "text-edit"], "--build DIR"),
    (["--suite", "text-edit", "--build", "x", "--through-vae", "y"], "one of --build DIR"),
    (["--suite", "text-edit", "--through-vae", "nowhere"], "--through-vae nowhere: no such folder"),
    (["--pairs", "x", "--build", "y"], "not with --pairs"),
    (["--pairs", "x", "--through-vae", "y", "--model", "m"], "not both"),
    (["--pairs", "x", "--model", "m", "--edited", "e"], "--edited scores another editor's outputs"),
    (["--pairs", "x", "--keep-unedited"], "--keep-unedited goes with"),
    (["--suite", "text-edit", "--build", "x", "--keep-unedited", "0.5"], "--keep-unedited goes with"),
    (["--suite", "text-edit", "--build", "x", "--size", "100"], "size = 100"),
    (["--suite", "text-edit", "--build", "x", "--lang", "fr"], "languages ['fr']"),
])
def test_bad_options_give_a_one_line_error(capsys, argv, expected):
    code, _, err = run(capsys, *argv)
    assert code == 2 and expected in err and err.strip().count("\n") == 0, err


def test_pairs_without_masks_score_the_whole_image(tmp_path):
    rng = np.random.default_rng(0)
    source = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(source).save(tmp_path / "x.source.png")
    Image.fromarray(source).save(tmp_path / "x.edited.png")
    from qwenimage.eval.edit import load_pair, score_loaded

    record = score_loaded(load_pair(read_pairs(tmp_path)[0]))
    assert record["region_fraction"] == 0.0 and record["count"] == 48 * 48 * 3 and record["ssim"] == 1.0


MONO_WORDS = {"fonts": ["DejaVu Sans Mono Bold"], "font_size": 24, "align": "left", "jitter": 0.0, "colors": False,
              "phrase_share": 0.0, "case_share": 0.0, "max_chars": 8}


def synth_edit_pairs(out, fmt: str, count: int = 2):
    from qwenimage.synth.job import SynthJob
    from qwenimage.synth.runner import RunOptions, run_job

    job = SynthJob(count=count, strategies={"edit_pairs": 1}, languages={"en": 1}, width=128, height=128, seed=5,
                   shard_size=count, verify_fraction=0.0, format=fmt,
                   synth={"words": MONO_WORDS, "edit_pairs": {"kinds": {"text": 1}, "layout": "words"}})
    run_job(job, out, RunOptions(progress=False, report_samples=0))
    return out


def test_a_synth_folder_of_edit_pairs_is_scored_edited_and_round_tripped(tiny_pipeline_dir, tmp_path, capsys):
    pairs_dir = synth_edit_pairs(tmp_path / "synth", "folder")
    pairs = read_pairs(pairs_dir)
    assert len(pairs) == 2 and all(p.instruction and p.new_text in p.instruction for p in pairs)
    assert all(p.region is not None and p.old_text and p.source.name.endswith(".source.png") for p in pairs)

    code, _, _ = run(capsys, "--pairs", str(pairs_dir), "--no-ocr", "--no-progress", "--out", str(tmp_path / "truth"))
    truth = json.loads((tmp_path / "truth" / "results.json").read_text())["records"]
    assert code == 0 and [r["psnr"] for r in truth] == ["inf", "inf"]  # the pairs differ only inside the region

    code, _, _ = run(capsys, "--pairs", str(pairs_dir), "--through-vae", str(tiny_pipeline_dir), "--no-ocr",
                     "--no-progress", "--out", str(tmp_path / "vae"))
    assert code == 0
    records = json.loads((tmp_path / "vae" / "results.json").read_text())["records"]
    assert all(r["edited"].startswith(str(tmp_path / "vae" / "edited")) and r["psnr"] < 40 for r in records)

    out = tmp_path / "model"
    code, _, _ = run(capsys, "--pairs", str(pairs_dir), "--model", str(tiny_pipeline_dir), "--steps", "1",
                     "--cfg", "1", "--no-ocr", "--no-progress", "--out", str(out))
    results = json.loads((out / "results.json").read_text())
    assert code == 0 and results["command"].startswith(f"qwenimage eval edit --pairs {pairs_dir} --model")
    assert sorted(p.name for p in (out / "edited").iterdir()) == sorted(f"{p.id}.png" for p in pairs)


def test_a_synth_run_in_tar_shards_is_refused_with_the_fix(tmp_path, capsys):
    pairs_dir = synth_edit_pairs(tmp_path / "synth", "wds", count=1)
    code, _, err = run(capsys, "--pairs", str(pairs_dir), "--no-ocr", "--out", str(tmp_path / "out"))
    assert code == 2 and "format: folder" in err and err.strip().count("\n") == 0
