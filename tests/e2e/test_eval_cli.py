"""`qwenimage eval` from the command line: scoring another tool's folder, a tiny random model end to end with a
resumed run, comparing the two, and one-line errors (exit 2) for bad input."""

import json

import pytest
from PIL import Image

from qwenimage.cli.main import main
from qwenimage.eval.oracle import render_texts
from qwenimage.eval.suites import load_suite, select


def run(capsys, *argv):
    code = main(["eval", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from qwenimage.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("eval") / "tiny", pipeline_class="QwenImagePipeline")


@pytest.fixture(scope="module")
def render_folder(tmp_path_factory):
    """Plain renders of the first en-words and zh-chars samples, named by id as another tool would save them."""
    folder = tmp_path_factory.mktemp("renders")
    for sample in select(load_suite("en-words"), 3) + select(load_suite("zh-chars"), 2):
        render_texts(sample.texts, 128, 128).save(folder / f"{sample.id}{'.jpg' if sample.index else '.png'}")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_images_mode_scores_a_folder_named_by_sample_id(render_folder, tmp_path, capsys):
    code, out, err = run(capsys, "text", "--images", str(render_folder), "--suite", "en-words,zh-chars", "--n", "3",
                         "--out", str(tmp_path / "run"), "--no-progress")
    assert code == 2 and "1 of 6 sample ids have no image" in err and "zh-chars-0002" in err  # only 2 zh renders
    code, out, _ = run(capsys, "text", "--images", str(render_folder), "--suite", "en-words", "--suite", "zh-chars",
                       "--n", "2", "--out", str(tmp_path / "run"), "--no-progress")
    assert code == 0 and "0 generated, 4 scored" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["suites"]["en-words"]["metrics"]["exact_match"]["value"] == 1.0
    assert results["suites"]["zh-chars"]["n"] == 2
    record = json.loads((tmp_path / "run" / "records" / "en-words-0001.json").read_text())
    assert record["image"] == str((render_folder / "en-words-0001.jpg").resolve())
    assert "en-words-0000" in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")


def test_a_tiny_model_runs_end_to_end_and_resumes_without_regenerating(tiny_model, render_folder, tmp_path, capsys):
    out_dir = tmp_path / "tiny-run"
    common = ["text", "--model", str(tiny_model), "--suite", "en-words", "--size", "64", "--steps", "2",
              "--batch-size", "4", "--out", str(out_dir), "--no-progress"]
    code, out, _ = run(capsys, *common, "--n", "4")
    assert code == 0 and "4 generated, 4 scored, 0 already done" in out
    first = {p.name: p.stat().st_mtime_ns for p in (out_dir / "images").glob("*.png")}
    assert len(first) == 4
    code, out, _ = run(capsys, *common, "--n", "8")
    assert code == 0 and "4 generated, 4 scored, 4 already done" in out
    after = {p.name: p.stat().st_mtime_ns for p in (out_dir / "images").glob("*.png")}
    assert len(after) == 8 and all(after[name] == mtime for name, mtime in first.items())
    with Image.open(out_dir / "images" / "en-words-0007.png") as image:
        assert image.size == (64, 64)
    results = json.loads((out_dir / "results.json").read_text())
    assert results["samples"] == 8 and results["suites"]["en-words"]["metrics"]["exact_match"]["value"] <= 0.01
    assert "--steps 2" in results["run"]["command"]
    code, out, _ = run(capsys, *common[:-3], "--steps", "3", "--out", str(out_dir))
    assert code == 2
    images_run = tmp_path / "images-run"
    assert run(capsys, "text", "--images", str(render_folder), "--suite", "en-words", "--n", "3", "--out",
               str(images_run), "--no-progress")[0] == 0
    code, out, _ = run(capsys, "compare", str(out_dir), str(images_run))
    assert code == 0 and "3 shared samples" in out and "en-words" in out


def test_loading_and_sampling_flags_reach_the_pipeline_and_the_record(tiny_model, tmp_path, capsys, monkeypatch):
    """--scheduler and --cache-threshold go into every request, are recorded in run.json and its command, and a
    resume with another threshold is refused (its numbers would mix two settings)."""
    from qwenimage.pipelines.pipeline import QwenImagePipeline

    seen = []
    original = QwenImagePipeline.generate

    def spy(self, requests, **kwargs):
        seen.extend((r.cache_threshold, dict(r.scheduler)) for r in requests)
        return original(self, requests, **kwargs)

    monkeypatch.setattr(QwenImagePipeline, "generate", spy)
    out_dir = tmp_path / "cached"
    common = ["text", "--model", str(tiny_model), "--suite", "en-words", "--n", "2", "--size", "64", "--steps", "2",
              "--out", str(out_dir), "--no-progress", "--scheduler", "shift=3"]
    code, out, _ = run(capsys, *common, "--cache-threshold", "0.2")
    assert code == 0 and "2 generated" in out
    assert seen == [(0.2, {"shift": "3"})] * 2
    saved = json.loads((out_dir / "run.json").read_text())
    assert saved["settings"]["cache_threshold"] == 0.2 and saved["settings"]["scheduler"] == {"shift": "3"}
    assert "--scheduler shift=3 --cache-threshold 0.2" in saved["command"]
    code, _, err = run(capsys, *common, "--cache-threshold", "0.3")
    assert code == 2 and "cache_threshold: 0.2 -> 0.3" in err
    code, _, err = run(capsys, *common[:-2], "--scheduler", "shfit=3")
    assert code == 2 and "shfit" in err


@pytest.mark.parametrize("argv, message", [
    (["text", "--oracle", "--suite", "en-wrods"], "unknown suite 'en-wrods'"),
    (["text", "--images", "EMPTY", "--suite", "en-words"], "no images in"),
    (["text", "--images", "MISSING", "--suite", "en-words", "--n", "2"], "1 of 2 sample ids have no image"),
    (["text", "--images", "BROKEN", "--suite", "en-words", "--n", "1"], "cannot read image"),
    (["text", "--oracle", "--suite", "en-words", "--n", "0"], "--n must be at least 1"),
    (["compare", "EMPTY", "EMPTY"], "not an eval text run folder"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    folders = {name: tmp_path / name.lower() for name in ("EMPTY", "MISSING", "BROKEN")}
    for folder in folders.values():
        folder.mkdir()
    Image.new("RGB", (8, 8)).save(folders["MISSING"] / "en-words-0000.png")
    (folders["BROKEN"] / "en-words-0000.png").write_bytes(b"\x89PNG broken")
    argv = [str(folders[a]) if a in folders else a for a in argv] + ["--out", str(tmp_path / "o")] * (argv[0] == "text")
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "records").exists()  # nothing was started


def test_help_and_the_suite_list(capsys):
    for task, flags in (("text", ["--model", "--images", "--oracle", "--suite", "--n", "--batch-size", "--quantize",
                                  "--cache-threshold", "--scheduler", "--compile"]),
                        ("compare", ["RUN_A", "--html"]), ("suites", ["--write"])):
        with pytest.raises(SystemExit) as exit_info:
            main(["eval", task, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert all(flag in text for flag in flags)
    code, out, _ = run(capsys, "suites")
    assert code == 0 and "en-words" in out and "250" in out and "zh-chars" in out
