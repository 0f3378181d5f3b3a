"""Kill -9 in the middle of a run, start it again: the output is byte-identical to an uninterrupted run,
with no duplicates and no losses. Also: a finished run resumes as a no-op, and another config is refused."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from qwenimage.cli import main as cli

pytestmark = pytest.mark.slow  # a real run of the pipeline: seconds, not milliseconds

REPO = Path(__file__).resolve().parents[2]
SHARDS = 8
CLI = "import sys; from qwenimage.cli import main as m; sys.exit(m.main(sys.argv[1:]))"


def slow_score(images):
    """An aesthetic hook that takes its time, so that the kill lands mid-run."""
    time.sleep(0.3)
    return [float(np.mean(image)) / 255 for image in images]


def small_corpus(folder: Path) -> Path:
    folder.mkdir()
    photos = [skdata.astronaut(), skdata.coffee(), skdata.retina(), skdata.immunohistochemistry()]
    for i in range(SHARDS):
        photo = photos[i % 4]
        top = (i // 4) * (photo.shape[0] - 300)
        Image.fromarray(photo[top:top + 300, :300]).save(folder / f"p{i}.png")
        (folder / f"p{i}.txt").write_text(f"picture {i}")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 200)
    return folder


def command(corpus: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", CLI, "curate", "--input", str(corpus), "--out", str(out),
            "--workers", "1", "--set", "input.shard_size=1", "--set", "s4.ocr=false", "--set", "s5.min_pixels=0",
            "--set", "s5.aesthetic.function=tests.e2e.test_curate_resume:slow_score"]


def files(out: Path) -> dict[str, bytes]:
    names = [p for p in out.rglob("*") if p.is_file() and p.parts[len(out.parts)] in ("shards", "records", "report")]
    return {str(p.relative_to(out)): p.read_bytes() for p in names}


def test_a_killed_run_resumes_to_the_same_bytes(tmp_path):
    corpus = small_corpus(tmp_path / "corpus")
    out = tmp_path / "killed"
    process = subprocess.Popen(command(corpus, out), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while len(list((out / "work" / "assess").glob("*.jsonl"))) < 2:
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read().decode()
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assessed = len(list((out / "work" / "assess").glob("*.jsonl")))
    assert 2 <= assessed < SHARDS + 1 and not (out / "report").exists()

    resumed = subprocess.run(command(corpus, out), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and "(resumed)" in resumed.stdout, resumed.stderr
    clean = subprocess.run(command(corpus, tmp_path / "clean"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr
    assert files(out) == files(tmp_path / "clean")
    assert not list(out.rglob("*.tmp"))
    ids = [line for part in sorted((out / "records").glob("*.jsonl")) for line in part.read_text().splitlines()]
    assert len(ids) == SHARDS + 1  # every input exactly once, the broken file as a rejected record


def test_finished_runs_resume_as_a_no_op_and_refuse_another_config(tmp_path, capsys):
    corpus = small_corpus(tmp_path / "corpus")
    argv = ["curate", "--input", str(corpus), "--out", str(tmp_path / "out"), "--workers", "1", "--s4.ocr=false",
            "--output.html_report=false"]
    assert cli.main(argv) == 0
    before = files(tmp_path / "out")
    assert cli.main(argv) == 0 and "(resumed)" in capsys.readouterr().out
    assert files(tmp_path / "out") == before
    assert cli.main(argv + ["--s2.min_clarity=99"]) == 2
    assert "another configuration" in capsys.readouterr().err
    assert cli.main(argv + ["--s2.min_clarity=99", "--overwrite"]) == 0
