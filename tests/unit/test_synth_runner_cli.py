"""`qwenimage synth` on the fake strategy: help, a tiny run with its report, one-line errors, Ray = local."""

import json

import pytest
from PIL import Image

from qwenimage.cli import synth_cmd
from qwenimage.synth.runner import RunOptions, run_job
from tests.unit.test_synth_runner import FAKE, ROOT, fake_job, shard_bytes


def synth(capsys, *argv):
    import argparse

    parser = argparse.ArgumentParser(prog="qwenimage")
    synth_cmd.register(parser.add_subparsers(dest="command", required=True))
    options = [a for a in argv if "=" not in a or a.startswith("-")]
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    args = parser.parse_args(["synth", *options, f"strategy_factory={FAKE}", *overrides])  # KEY=VALUE go last
    try:
        code = args.run(args)
    except (ValueError, OSError) as err:  # what qwenimage.cli.main prints as one line
        print(f"qwenimage synth: error: {err}", file=__import__("sys").stderr)
        code = 2
    out, err = capsys.readouterr()
    return code, out, err


TINY = ["--count", "6", "--size", "128x64", "--strategy", "pure,complex", "--lang", "en", "--shard-size", "4",
        "--verify-fraction", "0", "--no-progress"]


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        synth(capsys, "--help")
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--strategy", "--lang", "--count", "--size", "--out", "--workers", "--executor", "--verify-fraction"):
        assert flag in text


def test_a_tiny_run_writes_shards_summary_and_contact_sheets(tmp_path, capsys):
    code, out, _ = synth(capsys, *TINY, "--out", str(tmp_path), "--report-samples", "3")
    assert code == 0 and "written 6/6 samples in 2 shard(s)" in out
    assert sorted(p.name for p in tmp_path.glob("synth-*.tar")) == ["synth-000000.tar", "synth-000001.tar"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["written"] == 6 and summary["by_language"] == {"en": 6}
    job = json.loads((tmp_path / "job.json").read_text())["job"]
    assert job["width"] == 128 and job["height"] == 64 and job["strategies"] == {"complex": 0.5, "pure": 0.5}
    for strategy in ("pure", "complex"):
        sheet = Image.open(tmp_path / "report" / f"{strategy}.png")
        assert sheet.width > 3 * 128
        page = (tmp_path / "report" / f"{strategy}.html").read_text()
        assert page.count("<figure>") == min(3, summary["by_strategy"][strategy]) and "black text" in page
    code, out, _ = synth(capsys, *TINY, "--out", str(tmp_path), "--report-samples", "0")
    assert code == 0 and json.loads((tmp_path / "summary.json").read_text())["run"]["shards_skipped"] == 2


def test_the_shipped_config_is_the_default_job_and_flags_override_it(tmp_path):
    import argparse

    from qwenimage.synth.job import SynthJob

    parser = argparse.ArgumentParser()
    synth_cmd.register(parser.add_subparsers(dest="command"))
    config = str(ROOT / "configs" / "synth" / "mix.yaml")
    args = parser.parse_args(["synth", "--config", config, "--out", str(tmp_path)])
    assert synth_cmd.job_from_args(args) == SynthJob(count=10000)
    args = parser.parse_args(["synth", "--config", config, "--out", str(tmp_path), "--count", "5", "--size", "256",
                              "--strategy", "mix", "seed=4", "synth.length_weights={word: 1}"])
    job = synth_cmd.job_from_args(args)
    assert (job.count, job.width, job.height, job.seed) == (5, 256, 256, 4)
    assert job.synth == {"length_weights": {"word": 1}} and len(job.strategies) == 3


@pytest.mark.parametrize("flags,message", [
    (["--size", "12x"], "bad --size '12x'"),
    (["--count", "0"], "count must be at least 1"),
    (["--format", "zip"], "format must be one of wds, folder"),
    (["--lang", "zh:x"], "bad language weight"),
    (["--executor", "spark"], "executor must be one of local, ray"),
    (["--ocr-threshold", "2"], "OCR threshold must be in [0, 1]"),
    (["bogus=1"], "unknown config keys: bogus"),
    (["--config", "missing.yaml"], "config file not found"),
])
def test_bad_arguments_give_one_line(tmp_path, capsys, flags, message):
    code, _, err = synth(capsys, *TINY, "--out", str(tmp_path), *flags)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_folder_with_another_job_is_refused(tmp_path, capsys):
    assert synth(capsys, *TINY, "--out", str(tmp_path), "--report-samples", "0")[0] == 0
    code, _, err = synth(capsys, *TINY, "--out", str(tmp_path), "--seed", "7")
    assert code == 2 and "holds a different synth job (seed: 0 there, 7 now)" in err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    code, _, err = synth(capsys, *TINY, "--out", str(tmp_path / "other"))
    assert code == 2 and "is not empty and has no job.json" in err


def test_ray_executor_gives_the_same_shards_as_local(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # Ray workers import the fake strategy from tests/
    job = fake_job()
    run_job(job, tmp_path / "local", RunOptions(progress=False, report_samples=0))
    run_job(job, tmp_path / "ray", RunOptions(workers=2, executor="ray", progress=False, report_samples=0))
    assert shard_bytes(job, tmp_path / "ray") == shard_bytes(job, tmp_path / "local")
