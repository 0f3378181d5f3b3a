"""The synth job runner on a tiny fake strategy: determinism, retries, OCR checks, resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from qwenimage.synth.job import SynthJob, parse_weights, plan_sample
from qwenimage.synth.runner import RunOptions, run_job
from qwenimage.synth.sample import Discard, SynthSample, TextBox
from qwenimage.synth.shards import iter_samples, read_keys, shard_path

FAKE = "tests.unit.test_synth_runner:fake_strategy"
ROOT = Path(__file__).resolve().parents[2]
LETTERS = list("ABCDEFHKLMNPRTUVWXY")


class FakeStrategy:
    """Draws a random 4-letter word; options: discard_rate, sleep (s per sample), claim (a wrong text)."""

    def __init__(self, name: str, options: dict):
        self.name, self.options = name, options
        self.font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 28)

    def render(self, rng, width, height, language):
        if rng.random() < self.options.get("discard_rate", 0.0):
            raise Discard("missing_glyph", "fake")
        word = "".join(rng.choice(LETTERS, size=4))
        image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(215, 256, 3)))
        ImageDraw.Draw(image).text((12, height // 2 - 16), word, fill=(0, 0, 0), font=self.font)
        time.sleep(self.options.get("sleep", 0.0))
        text = self.options.get("claim", word)
        box = TextBox(text, (12, height // 2 - 16, width - 12, height // 2 + 16))
        return SynthSample(image, text, f'On a pale background, black text "{text}".', self.name, language,
                           [box], [box], ["DejaVu Sans Bold"], {"text": "#000000"}, texts=[text])


def fake_strategy(name: str, options: dict) -> FakeStrategy:
    return FakeStrategy(name, options)


def fake_job(**changes) -> SynthJob:
    settings = dict(count=12, strategies={"pure": 1, "complex": 1}, width=128, height=64, shard_size=4,
                    verify_fraction=0.0, strategy_factory=FAKE)
    return SynthJob(**{**settings, **changes})


def quiet(workers: int = 1, **changes) -> RunOptions:
    return RunOptions(workers=workers, progress=False, report_samples=changes.pop("report_samples", 0), **changes)


def shard_bytes(job: SynthJob, out: Path) -> list[bytes]:
    return [shard_path(out, k, job.format).read_bytes() for k in range(job.num_shards)]


def all_keys(job: SynthJob, out: Path) -> list[str]:
    return [key for k in range(job.num_shards) for key in read_keys(shard_path(out, k, job.format), job.format)]


def test_plans_depend_only_on_seed_and_index_and_weights_are_order_free():
    job = fake_job(count=200, languages={"zh": 3, "en": 1})
    plans = [plan_sample(job, i) for i in range(200)]
    assert plans == [plan_sample(fake_job(count=200, languages={"en": 1, "zh": 3}), i) for i in range(200)]
    assert 120 < sum(p.language == "zh" for p in plans) < 180
    assert {p.strategy for p in plans} == {"pure", "complex"}
    assert parse_weights("zh:3,en:1", "language") == {"en": 0.25, "zh": 0.75}
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        parse_weights("pure,nope", "strategy", everything=("pure", "complex"))


def test_same_seed_gives_byte_identical_shards_whatever_the_worker_count(tmp_path):
    job = fake_job(count=8, verify_fraction=0.25)  # two shards, a few OCR-verified samples
    run_job(job, tmp_path / "one", quiet(1))
    run_job(job, tmp_path / "two", quiet(2))
    assert shard_bytes(job, tmp_path / "one") == shard_bytes(job, tmp_path / "two")
    assert all_keys(job, tmp_path / "one") == [f"{i:08d}" for i in range(8)]
    other = fake_job(count=8, seed=1)
    run_job(other, tmp_path / "other", quiet(1))
    assert shard_bytes(other, tmp_path / "other") != shard_bytes(job, tmp_path / "one")
    records = [json.loads(files["json"]) for k in range(2)
               for _, files in iter_samples(shard_path(tmp_path / "one", k, "wds"), "wds")]
    verified = [r for r in records if r["ocr"] is not None]
    assert verified and all(r["ocr"]["score"] >= 0.8 and r["ocr"]["text"] for r in verified)
    assert {r["strategy"] for r in records} == {"pure", "complex"}


def test_folder_format_holds_the_same_samples(tmp_path):
    job = fake_job(format="folder", count=5)
    run_job(job, tmp_path, quiet())
    files = sorted(p.name for p in (tmp_path / "synth-000000").iterdir())
    assert files[:3] == ["00000000.json", "00000000.png", "00000000.txt"] and len(files) == 12
    assert all_keys(job, tmp_path) == [f"{i:08d}" for i in range(5)]


def test_discards_are_retried_counted_and_add_up(tmp_path):
    job = fake_job(count=30, synth={"discard_rate": 0.5}, max_attempts=3, shard_size=7)
    summary = run_job(job, tmp_path, quiet())
    assert summary["discards"]["missing_glyph"] > 5
    assert summary["written"] + summary["failed"] == 30
    assert summary["attempts"] == summary["written"] + sum(summary["discards"].values())
    assert sum(summary["by_strategy"].values()) == sum(summary["by_language"].values()) == summary["written"]
    failed = set(summary["failed_keys"])
    assert set(all_keys(job, tmp_path)) == {f"{i:08d}" for i in range(30)} - failed
    assert summary["captions_quoting_text"]["count"] == summary["written"]
    records = [json.loads(files["json"]) for k in range(job.num_shards)
               for _, files in iter_samples(shard_path(tmp_path, k, "wds"), "wds")]
    assert any(r["attempt"] > 0 for r in records)  # a retried sample kept its index and key


def test_ocr_mismatch_is_discarded_and_retried(tmp_path):
    job = fake_job(count=2, verify_fraction=1.0, max_attempts=2, synth={"claim": "a text that is not drawn"})
    summary = run_job(job, tmp_path, quiet())
    assert summary["written"] == 0 and summary["failed"] == 2
    assert summary["discards"] == {"ocr_mismatch": 4}
    assert summary["ocr"]["reads"] == 4 and summary["ocr"]["per_strategy"]["pure"]["all_reads"]["mean"] < 0.5


def test_resume_skips_finished_shards_redoes_damaged_ones_and_refuses_another_job(tmp_path):
    job = fake_job()
    run_job(job, tmp_path, quiet())
    reference = shard_bytes(job, tmp_path)
    first_mtime = shard_path(tmp_path, 0, "wds").stat().st_mtime_ns
    damaged = shard_path(tmp_path, 1, "wds")
    damaged.write_bytes(damaged.read_bytes()[:1000])
    (tmp_path / "synth-000002.tar.tmp").write_bytes(b"half")
    summary = run_job(job, tmp_path, quiet())
    assert summary["run"]["shards_rendered"] == 1 and summary["run"]["shards_skipped"] == 2
    assert shard_bytes(job, tmp_path) == reference
    assert shard_path(tmp_path, 0, "wds").stat().st_mtime_ns == first_mtime
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match=r"different synth job \(seed: 0 there, 5 now\)"):
        run_job(fake_job(seed=5), tmp_path, quiet())


KILLED_RUN = """
import sys
from qwenimage.synth.runner import RunOptions, run_job
from tests.unit.test_synth_runner import fake_job
run_job(fake_job(count=40, synth={"sleep": 0.03}), sys.argv[1], RunOptions(workers=2, progress=False))
"""


def test_a_killed_run_completes_on_restart_with_every_id_once(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(out)], cwd=ROOT, env=env,
                               start_new_session=True)
    deadline = time.time() + 60
    while len(list(out.glob("synth-*.tar"))) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the driver and its workers, mid-run
    process.wait()
    job = fake_job(count=40, synth={"sleep": 0.03})
    finished = len(list(out.glob("synth-*.tar")))
    assert 2 <= finished < job.num_shards, "the kill should land mid-run"
    summary = run_job(job, out, quiet())
    assert summary["run"]["shards_skipped"] == finished
    assert all_keys(job, out) == [f"{i:08d}" for i in range(40)]
    assert not list(out.glob("*.tmp"))
    run_job(job, tmp_path / "uninterrupted", quiet())
    assert shard_bytes(job, out) == shard_bytes(job, tmp_path / "uninterrupted")


def test_rates_per_core_divide_by_cpu_time_not_wall_time(tmp_path):
    job = fake_job(count=4, shard_size=4, synth={"sleep": 0.1})  # sleeping takes wall time, not CPU time
    summary = run_job(job, tmp_path, quiet())
    seconds = summary["throughput"]["worker_seconds"]
    assert seconds["total"] >= 0.4 and seconds["cpu"] < seconds["total"] / 2
    assert summary["throughput"]["samples_per_core_second"] == round(4 / seconds["cpu"], 2)


def test_the_default_job_verifies_a_small_documented_share():
    job = SynthJob(count=10_000)
    assert job.verify_fraction == 0.02
    verified = sum(plan_sample(job, i).verify for i in range(10_000))
    assert 150 <= verified <= 250
