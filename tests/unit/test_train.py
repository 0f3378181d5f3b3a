"""Training on the tiny model: loss falls, overfitting, multi-task batches, curriculum, LoRA, DPO, resume."""

import json
import shutil
from dataclasses import replace

import pytest
import torch
from PIL import Image, ImageDraw

from qwenimage.train.config import (DataConfig, LoraConfig, ModelConfig, ObjectiveConfig, OptimConfig, OutputConfig,
                                   StageConfig, TrainConfig)
from qwenimage.train.curriculum import stage_at
from qwenimage.train.trainer import Trainer

COLORS = {"red": (200, 40, 40), "blue": (40, 60, 200), "green": (40, 160, 60), "yellow": (220, 200, 40)}
WORDS = ["CAT", "SUN", "TEA", "MAP"]


def card(color, word, size=64, paragraph=False):
    img = Image.new("RGB", (size, size), COLORS[color])
    draw = ImageDraw.Draw(img)
    draw.text((8, 20), word if not paragraph else f"{word}\n{word} {word}", fill=(255, 255, 255))
    return img


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """64x64 cards with text and captions; edit pairs (background colour changes); DPO losers; no-text cards."""
    folder = tmp_path_factory.mktemp("cards")
    (folder / "aux").mkdir()
    for i, (color, word) in enumerate((c, w) for c in COLORS for w in WORDS):
        paragraph = i % 3 == 0
        card(color, word, paragraph=paragraph).save(folder / f"{i:02d}.png")
        other = list(COLORS)[(list(COLORS).index(color) + 1) % len(COLORS)]
        card(other, word).save(folder / "aux" / f"{i:02d}_src.png")
        Image.new("RGB", (64, 64), (128, 128, 128)).save(folder / "aux" / f"{i:02d}_lose.png")
        text = f"{word}\n{word} {word}" if paragraph else word
        meta = {"caption": f'a {color} card that says "{word}"', "text": text, "source": f"aux/{i:02d}_src.png",
                "instruction": f"make the background {color}", "lose": f"aux/{i:02d}_lose.png"}
        (folder / f"{i:02d}.json").write_text(json.dumps(meta))
    for color in COLORS:
        Image.new("RGB", (64, 64), COLORS[color]).save(folder / f"plain_{color}.png")
        (folder / f"plain_{color}.txt").write_text(f"a plain {color} square")
    return folder


def config(tmp_path, pipeline, data_folder, **changes):
    base = TrainConfig(
        model=ModelConfig(pipeline=str(pipeline), preset="tiny"),
        data=DataConfig(sources=[str(data_folder)], batch_size=4),
        stages=[StageConfig(name="main", steps=6, resolution=64, tasks={"t2i": 1.0})],
        optim=OptimConfig(lr=3e-3, grad_clip=1.0),
        output=OutputConfig(dir=str(tmp_path / "run"), log_every=1, checkpoint_every=1000, tensorboard=False),
    )
    return replace(base, **changes)


def test_loss_falls_and_outputs_are_written(tmp_path, tiny_pipeline_dir, data_dir):
    cfg = config(tmp_path, tiny_pipeline_dir, data_dir, stages=[StageConfig(steps=40, resolution=64)])
    losses = Trainer(cfg).run()
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)
    run = tmp_path / "run"
    assert (run / "transformer" / "config.json").is_file() and (run / "loss.png").is_file()
    assert (run / "config.yaml").is_file() and len((run / "log.jsonl").read_text().splitlines()) == 40


def test_a_single_batch_overfits_to_near_zero(tiny_pipeline_dir, data_dir, tmp_path):
    from qwenimage.train.data import collate
    from qwenimage.train.objective import flow_matching_loss

    trainer = Trainer(config(tmp_path, tiny_pipeline_dir, data_dir))
    planned = trainer.plans[0].micro_batch(0, 2, 0, 1)
    batch = collate([trainer.samples.encode(trainer.records[p.record], p.task, 32) for p in planned], trainer.info.device)
    gen = torch.Generator().manual_seed(0)
    noise, t = torch.randn(batch.x0.shape, generator=gen), torch.tensor([0.3, 0.8])
    optimizer = torch.optim.Adam(trainer.model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = flow_matching_loss(trainer.model, batch, t, noise).mean()
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.02 * first, (first, loss.item())


def test_mixed_task_batch_trains_and_edit_conditions_get_frame_one(tiny_pipeline_dir, data_dir, tmp_path):
    from qwenimage.model.rope import image_positions
    from qwenimage.train.data import collate

    stages = [StageConfig(steps=2, resolution=64, tasks={"t2i": 1.0, "ti2i": 1.0, "i2i": 1.0})]
    trainer = Trainer(config(tmp_path, tiny_pipeline_dir, data_dir, stages=stages,
                             data=DataConfig(sources=[str(data_dir)], batch_size=12)))
    planned = trainer.plans[0].micro_batch(0, 12, 0, 1)
    assert {p.task for p in planned} == {"t2i", "ti2i", "i2i"}
    batch = collate([trainer.samples.encode(trainer.records[p.record], p.task, 64) for p in planned],
                    trainer.info.device)
    for p, shapes in zip(planned, batch.layout.img_shapes()):
        assert len(shapes) == (1 if p.task == "t2i" else 2)
        if len(shapes) == 2:
            frames = image_positions(shapes, torch.device("cpu"))[:, 0]
            target_tokens = shapes[0][1] * shapes[0][2]
            assert torch.all(frames[:target_tokens] == 0) and torch.all(frames[target_tokens:] >= 1)
    losses = trainer.run()
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))


def test_curriculum_switches_at_the_configured_step_and_across_resume(tiny_pipeline_dir, data_dir, tmp_path):
    stages = [StageConfig(name="no-text", steps=3, resolution=32, text="none"),
              StageConfig(name="paragraphs", steps=3, resolution=64, text="paragraph")]
    assert [stage_at(stages, s)[0] for s in range(7)] == [0, 0, 0, 1, 1, 1, 1]
    cfg = config(tmp_path, tiny_pipeline_dir, data_dir, stages=stages)
    cfg.output.checkpoint_every = 2
    first = Trainer(cfg)
    plan0, plan1 = first.plans
    assert all(first.records[i].text == "" for i in plan0.eligible)
    assert all("\n" in first.records[i].text for i in plan1.eligible)
    for _ in range(4):  # the first run stops (as if killed) after step 4, checkpointed every 2 steps
        first.train_step(first.step)
        first.step += 1
        if first.step % 2 == 0:
            from qwenimage.train.checkpoint import save_checkpoint
            save_checkpoint(first.output, first.step, first.model, first.optimizer, first.scheduler, None, first.info)
    resumed = Trainer(cfg)
    assert resumed.step == 4 and stage_at(stages, resumed.step)[0] == 1
    resumed.run()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [row["stage"] for row in log if row["step"] > 4] == ["paragraphs", "paragraphs"]


def test_lora_training_loads_into_the_pipeline_like_merged_weights(tiny_pipeline_dir, data_dir, tmp_path):
    import shutil

    from qwenimage.pipelines import GenerationRequest, load_pipeline
    from qwenimage.weights.lora import fuse_lora

    cfg = config(tmp_path, tiny_pipeline_dir, data_dir, lora=LoraConfig(rank=4, alpha=8.0),
                 model=ModelConfig(pipeline=str(tiny_pipeline_dir)), optim=OptimConfig(lr=5e-2))
    Trainer(cfg).run()
    lora_file = tmp_path / "run" / "lora.safetensors"
    assert lora_file.is_file()
    request = dict(prompt='a red card that says "CAT"', width=64, height=64, num_steps=3, seed=0)
    pipe = load_pipeline(tiny_pipeline_dir, dtype=torch.float32)
    base = pipe.generate(GenerationRequest(**request))[0].latents
    pipe.load_lora(lora_file)
    with_lora = pipe.generate(GenerationRequest(**request))[0].latents
    fuse_lora(pipe.transformer)
    fused = pipe.generate(GenerationRequest(**request))[0].latents
    assert (with_lora - base).abs().max() > 1e-3
    assert (with_lora - fused).abs().max() < 1e-4


def test_dpo_moves_the_policy_towards_the_winner(tiny_pipeline_dir, data_dir, tmp_path):
    from qwenimage.train.data import collate, noise_and_time
    from qwenimage.train.objective import flow_matching_loss
    from qwenimage.train.trainer import loser_record

    cfg = config(tmp_path, tiny_pipeline_dir, data_dir, objective=ObjectiveConfig(kind="dpo", dpo_beta=50.0),
                 model=ModelConfig(pipeline=str(tiny_pipeline_dir)), optim=OptimConfig(lr=1e-3),
                 stages=[StageConfig(steps=8, resolution=64)])
    trainer = Trainer(cfg)
    planned = trainer.plans[0].micro_batch(0, 4, 0, 1)
    encode = lambda recs: collate([trainer.samples.encode(r, "t2i", 64) for r in recs], trainer.info.device)  # noqa
    win = encode([trainer.records[p.record] for p in planned])
    lose = encode([loser_record(trainer.records[p.record]) for p in planned])
    noise, t = noise_and_time(planned, win, 99, 0, 0.0, 1.0)

    def margin(model):
        with torch.no_grad():
            return (flow_matching_loss(model, win, t, noise) - flow_matching_loss(model, lose, t, noise)).mean()

    before = margin(trainer.model)
    assert torch.isclose(before, margin(trainer.reference))
    trainer.run()
    assert margin(trainer.model) < margin(trainer.reference) - 1e-4


def test_sample_images_tensorboard_and_ema(tiny_pipeline_dir, data_dir, tmp_path):
    cfg = config(tmp_path, tiny_pipeline_dir, data_dir, stages=[StageConfig(steps=4, resolution=32)],
                 optim=OptimConfig(lr=1e-3, ema_decay=0.5),
                 output=OutputConfig(dir=str(tmp_path / "run"), log_every=2, checkpoint_every=100, sample_every=2,
                                     sample_prompts=["a red card", "a blue card"], sample_steps=2, tensorboard=True))
    trainer = Trainer(cfg)
    trainer.run()
    samples = sorted(p.name for p in (tmp_path / "run" / "samples").iterdir())
    assert samples == [f"step-0000000{s}-{i}.png" for s in (2, 4) for i in (0, 1)]
    assert Image.open(tmp_path / "run" / "samples" / samples[0]).size == (32, 32)
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    from qwenimage.model import QwenImageMMDiT  # the exported transformer holds the EMA weights

    ema_weights = QwenImageMMDiT.from_pretrained(tmp_path / "run" / "transformer").state_dict()
    shadow = {k: v for k, v in trainer.ema.state_dict().items()}
    assert all(torch.equal(ema_weights[k], shadow[k]) for k in shadow)


def test_stop_after_ends_the_run_early_on_the_full_schedule_and_raw_weights_are_exported(
        tiny_pipeline_dir, data_dir, tmp_path):
    cfg = config(tmp_path, tiny_pipeline_dir, data_dir, stages=[StageConfig(steps=6, resolution=32)],
                 optim=OptimConfig(lr=1e-3, warmup_steps=0, ema_decay=0.5), stop_after=3)
    cfg.output.checkpoint_every = 3
    first = Trainer(cfg)
    assert len(first.run()) == 3 and first.step == 3
    lr_at_3 = first.scheduler.get_last_lr()[0]
    assert 1e-4 < lr_at_3 < 1e-3 * 0.9  # a cosine over all 6 steps, half way down: not the end of a 3-step one
    from qwenimage.model import QwenImageMMDiT

    raw = QwenImageMMDiT.from_pretrained(tmp_path / "run" / "transformer-raw").state_dict()
    ema = QwenImageMMDiT.from_pretrained(tmp_path / "run" / "transformer").state_dict()
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    resumed = Trainer(replace(cfg, stop_after=0))  # raising the limit continues the same schedule to its end
    training = resumed.model.state_dict()  # the checkpoint's training weights: what transformer-raw holds
    assert resumed.step == 3 and all(torch.equal(raw[k], training[k]) for k in raw)
    assert len(resumed.run()) == 3 and resumed.step == 6


def test_the_text_encoder_trains_jointly_checkpoints_resumes_and_exports(tiny_pipeline_dir, data_dir, tmp_path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    from qwenimage.text import ConditionEncoder

    cfg = config(tmp_path, tiny_pipeline_dir, data_dir, stages=[StageConfig(steps=6, resolution=32)],
                 model=ModelConfig(pipeline=str(tiny_pipeline_dir), preset="tiny", train_text_encoder=True,
                                   text_embedding_scale=0.5),
                 optim=OptimConfig(lr=1e-3, text_encoder_lr=3e-3, warmup_steps=0, ema_decay=0.5), stop_after=3)
    cfg.output.checkpoint_every = cfg.output.export_every = 3
    first = Trainer(cfg)
    start = {k: v.clone() for k, v in first.text_model.state_dict().items()}
    stored = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(tiny_pipeline_dir / "text_encoder"))
    torch.testing.assert_close(start["embed_tokens.weight"], 0.5 * stored.model.language_model.embed_tokens.weight)
    prompt = 'a red card that says "CAT"'  # the producers' token ids give the states of the frozen path
    ids = first.encoder.prompt_ids(prompt)
    with torch.no_grad():
        torch.testing.assert_close(first.encoder.encode_ids([ids]).embeds, first.encoder.encode_prompts([prompt]).embeds)
    first.run()
    run = tmp_path / "run"
    cached = list((run / "latent-cache").rglob("*.safetensors"))
    from safetensors.torch import load_file

    assert cached and all(set(load_file(str(p))) == {"latents", "text_ids"} for p in cached)
    raw = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(run / "text_encoder-raw")).model.language_model
    raw_state = raw.state_dict()
    assert any(not torch.equal(raw_state[k], start[k]) for k in start)  # it trained
    shadow = first.ema.state_dict()
    for folder in (run / "text_encoder", run / "exports" / "step-00000003" / "text_encoder"):  # both EMA
        ema = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(folder)).model.language_model.state_dict()
        assert all(torch.equal(ema[k], shadow[f"text_encoder.{k}"]) for k in ema)
    snapshot = tmp_path / "snapshot"  # an export with its text encoder is a pipeline the condition encoder loads
    shutil.copytree(tiny_pipeline_dir, snapshot)
    shutil.rmtree(snapshot / "text_encoder")
    shutil.copytree(run / "text_encoder", snapshot / "text_encoder")
    with torch.no_grad():
        assert ConditionEncoder.from_pretrained(snapshot).encode_prompts([prompt]).embeds.isfinite().all()
    resumed = Trainer(replace(cfg, stop_after=0))  # the checkpoint restores the text encoder's training weights
    assert resumed.step == 3
    assert all(torch.equal(resumed.text_model.state_dict()[k], raw_state[k]) for k in raw_state)
    assert len(resumed.run()) == 3


def test_joint_text_encoder_training_is_refused_where_it_does_not_apply(tiny_pipeline_dir, data_dir, tmp_path):
    with pytest.raises(ValueError, match="train_text_encoder.*ti2i"):
        config(tmp_path, tiny_pipeline_dir, data_dir,
               model=ModelConfig(pipeline=str(tiny_pipeline_dir), preset="tiny", train_text_encoder=True),
               stages=[StageConfig(steps=2, resolution=32, tasks={"t2i": 1.0, "ti2i": 1.0})])
