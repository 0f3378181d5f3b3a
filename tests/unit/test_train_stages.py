"""Curriculum stages restricted to some sources, and text dropout for classifier-free guidance."""

import pytest
from PIL import Image

from qwenimage.train.config import StageConfig, TrainConfig
from qwenimage.train.data import BatchPlan, PlannedSample, text_dropped
from qwenimage.train.records import Record


def records():
    image = Image.new("RGB", (16, 16))
    return ([Record(f"a/{i}", image, "cap", origin="data/a") for i in range(4)]
            + [Record(f"b/{i}", image, "cap", origin="data/b") for i in range(4)])


def test_a_stage_with_sources_trains_only_on_them():
    stage = StageConfig(name="first", sources=["data/a"])
    plan = BatchPlan(records(), stage, 0, seed=0, short_chars=12)
    drawn = {plan.sample(i).record for i in range(40)}
    assert drawn == {0, 1, 2, 3}
    everything = BatchPlan(records(), StageConfig(name="all"), 1, seed=0, short_chars=12)
    assert {everything.sample(i).record for i in range(40)} == set(range(8))


def test_stage_sources_must_be_data_sources():
    with pytest.raises(ValueError, match="not among data.sources"):
        TrainConfig(data=TrainConfig().data.__class__(sources=["data/a"]),
                    stages=[StageConfig(sources=["data/c"])])
    with pytest.raises(ValueError, match="no record in"):
        BatchPlan(records(), StageConfig(sources=["data/c"]), 0, seed=0, short_chars=12)


def test_task_sources_keep_a_task_to_its_sources():
    """Edit pairs carry captions, so they would also train text-to-image; task_sources keeps t2i to the words."""
    image = Image.new("RGB", (16, 16))
    pairs = [Record(f"p/{i}", image, "cap", instruction="edit", source=image, origin="data/pairs") for i in range(6)]
    words = [Record(f"w/{i}", image, "cap", origin="data/words") for i in range(2)]
    tasks = {"t2i": 0.5, "ti2i": 0.5}
    plan = BatchPlan(pairs + words, StageConfig(tasks=tasks, task_sources={"t2i": ["data/words"]}), 0, seed=0,
                     short_chars=12)
    drawn = [plan.sample(i) for i in range(400)]
    assert {(s.record >= 6, s.task) for s in drawn} == {(False, "ti2i"), (True, "t2i")}
    free = BatchPlan(pairs + words, StageConfig(tasks=tasks), 0, seed=0, short_chars=12)
    assert (False, "t2i") in {(s.record >= 6, free.sample(i).task) for i, s in enumerate(drawn)}
    only_edits = StageConfig(tasks={"ti2i": 1.0}, task_sources={"ti2i": ["data/words"]})
    with pytest.raises(ValueError, match="no record"):
        BatchPlan(pairs + words, only_edits, 0, seed=0, short_chars=12)
    data = TrainConfig().data.__class__(sources=["data/pairs", "data/words"])
    with pytest.raises(ValueError, match="not among data.sources"):
        TrainConfig(data=data, stages=[StageConfig(tasks=tasks, task_sources={"t2i": ["data/other"]})])
    with pytest.raises(ValueError, match="t2x"):
        TrainConfig(data=data, stages=[StageConfig(tasks=tasks, task_sources={"t2x": ["data/words"]})])


def test_text_dropout_is_deterministic_and_near_its_rate():
    samples = [PlannedSample(0, "t2i", i) for i in range(2000)]
    first = [text_dropped(p, 3, 0, 0.1) for p in samples]
    assert first == [text_dropped(p, 3, 0, 0.1) for p in samples]  # a resumed run drops the same samples
    assert 0.08 < sum(first) / len(first) < 0.12
    assert not any(text_dropped(p, 3, 0, 0.0) for p in samples)
    assert not text_dropped(PlannedSample(0, "i2i", 5), 3, 0, 0.99)  # only text-to-image samples


def test_a_log_line_torn_by_a_kill_does_not_break_the_resumed_run(tmp_path):
    from qwenimage.train.monitor import Monitor, plot_loss, read_log

    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')  # killed in the middle of an append
    monitor = Monitor(tmp_path, total_steps=4, start_step=2, tensorboard=False)
    monitor.step(3, 0.5, 1e-4, 8, 64, "main", log=True)
    monitor.close()
    assert [row["step"] for row in read_log(log)] == [1, 3]
    assert plot_loss(log, tmp_path / "loss.png") is not None


def test_records_are_drawn_in_proportion_to_their_sample_weight():
    """Curation writes sample_weight (category balance x token rarity); the plan honours it, deterministically."""
    image = Image.new("RGB", (16, 16))
    weighted = [Record("heavy", image, "cap", weight=3.0), Record("light", image, "cap", weight=1.0),
                Record("never", image, "cap", weight=0.0)]
    plan = BatchPlan(weighted, StageConfig(name="all"), 0, seed=0, short_chars=12)
    drawn = [plan.sample(i).record for i in range(4000)]
    assert drawn == [BatchPlan(weighted, StageConfig(name="all"), 0, seed=0, short_chars=12).sample(i).record
                     for i in range(4000)]  # a resumed run draws the same
    assert 2 not in drawn  # weight 0: left out
    assert 0.70 < drawn.count(0) / len(drawn) < 0.80  # 3 : 1
    equal = BatchPlan(records(), StageConfig(name="all"), 0, seed=0, short_chars=12)
    assert sorted(equal.sample(i).record for i in range(8)) == list(range(8))  # equal weights: a permutation


def test_a_model_field_added_after_a_run_started_compares_as_its_default_on_resume():
    from qwenimage.train.config import resume_changes

    saved = {"model": {"pipeline": "p", "dtype": "fp32"}, "lora": {"rank": 0}, "objective": {"kind": "flow"}}
    now = {"model": {"pipeline": "p", "dtype": "fp32", "text_embedding_scale": 1.0, "train_text_encoder": False},
           "lora": {"rank": 0}, "objective": {"kind": "flow"}}
    assert resume_changes(saved, now) == []  # the run used the defaults of the fields it did not know
    now["model"]["text_embedding_scale"] = 0.05
    assert resume_changes(saved, now) == ["model.text_embedding_scale: 1.0 there, 0.05 now"]
