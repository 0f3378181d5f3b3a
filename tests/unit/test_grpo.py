"""Flow-GRPO: the SDE step and its log-probability, group advantages, the clipped loss, rewards, and a tiny
end-to-end run through the trainer (weights change, a checkpoint resumes)."""

import json
import math
from concurrent.futures import Future

import numpy as np
import pytest
import torch

from qwenimage.sampling.sampler import sample
from qwenimage.sampling.schedule import euler_step, sigmas_for
from qwenimage.sampling.sde import SdeStep, gaussian_kl, gaussian_log_prob, sde_step
from qwenimage.train.config import (DataConfig, GrpoConfig, ModelConfig, ObjectiveConfig, OptimConfig, OutputConfig,
                                   StageConfig, TrainConfig)
from qwenimage.train.grpo import group_advantages, grpo_loss, load_prompts, prompts_at, trained_steps
from qwenimage.train.rewards import RewardActor, RewardPool, load_reward


def brightness_reward(images, prompts):
    """A stand-in reward for the end-to-end test: the mean brightness of each image (differs within a group)."""
    return [float(np.asarray(image.convert("L")).mean()) / 255.0 for image in images]


def constant_reward(images, prompts):
    """Every image read right: each group's rewards are equal, so no group has anything to teach."""
    return [1.0] * len(images)


def random_step(batch=3, tokens=5, channels=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x, v = torch.randn(batch, tokens, channels, generator=gen), torch.randn(batch, tokens, channels, generator=gen)
    return x, v, torch.tensor([1.0, 0.6, 0.2])[:batch], torch.tensor([0.8, 0.5, 0.0])[:batch]


# ---- the SDE step ---------------------------------------------------------------------------------------
def test_sde_log_prob_equals_a_direct_gaussian_computation():
    x, v, sigma, sigma_next = random_step()
    step = sde_step(x, v, sigma, sigma_next, noise_level=0.7)
    x_next = step.mean + step.std[:, None, None] * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    direct = torch.distributions.Normal(step.mean, step.std[:, None, None].expand_as(step.mean))
    torch.testing.assert_close(gaussian_log_prob(x_next, step), direct.log_prob(x_next).mean(dim=(1, 2)))
    mask = torch.zeros(3, 5, 1, dtype=torch.bool)
    mask[:, :2] = True
    masked = gaussian_log_prob(x_next, step, mask)
    torch.testing.assert_close(masked, direct.log_prob(x_next)[:, :2].mean(dim=(1, 2)))


def test_sde_step_matches_the_stated_formula_and_clamps_sigma_one():
    x, v, sigma, sigma_next = random_step()
    a, sigma_max = 0.5, 0.9
    step = sde_step(x, v, sigma, sigma_next, a, sigma_max)
    for b in range(3):
        s, dt = sigma[b].item(), (sigma_next[b] - sigma[b]).item()
        var = a ** 2 * min(s, sigma_max) / (1 - min(s, sigma_max))
        mean = x[b] * (1 + var / (2 * s) * dt) + v[b] * (1 + var * (1 - s) / (2 * s)) * dt
        torch.testing.assert_close(step.mean[b], mean)
        assert math.isclose(step.std[b].item(), math.sqrt(var * -dt), rel_tol=1e-5)
    assert torch.isfinite(step.std).all() and torch.isfinite(step.mean).all()


def test_noise_level_zero_is_the_euler_step_and_the_default_sampler_is_unchanged():
    x, v, sigma, sigma_next = random_step()
    step = sde_step(x, v, sigma, sigma_next, noise_level=0.0)
    assert torch.equal(step.mean, euler_step(x, v, sigma[:, None, None], sigma_next[:, None, None]))
    assert torch.equal(step.std, torch.zeros(3))
    velocity = lambda x, s: -0.5 * x + s[:, None, None]  # noqa: E731
    sigmas = sigmas_for(6, 16).expand(3, -1)
    rule = SdeStep(0.0)
    assert torch.equal(sample(velocity, x, sigmas, step=rule), sample(velocity, x, sigmas))
    assert torch.isnan(rule.trajectory().log_probs).all()


def test_the_recorded_trajectory_replays_its_log_probs():
    x, _, _, _ = random_step()
    velocity = lambda x, s: -0.5 * x + s[:, None, None]  # noqa: E731
    sigmas = sigmas_for(4, 16).expand(3, -1)
    rule = SdeStep(0.7, torch.Generator().manual_seed(3))
    out = sample(velocity, x, sigmas, step=rule)
    traj = rule.trajectory()
    assert traj.states.shape == (3, 5, 5, 4) and traj.log_probs.shape == (3, 4) and traj.sigmas.shape == (3, 5)
    assert torch.equal(traj.states[:, 0], x) and torch.equal(traj.states[:, -1], out)
    for j in range(4):
        s, s_next = traj.sigmas[:, j], traj.sigmas[:, j + 1]
        step = sde_step(traj.states[:, j], velocity(traj.states[:, j], s), s, s_next, 0.7)
        torch.testing.assert_close(gaussian_log_prob(traj.states[:, j + 1], step), traj.log_probs[:, j])


def test_the_sde_keeps_the_marginals_of_the_ode():
    """Data x0 ~ N(0, s^2): the exact velocity is linear in x; the SDE must still end at variance s^2."""
    s, n = 0.5, 10000

    def velocity(x, t):
        t = t[:, None, None]
        return x * (t - (1 - t) * s ** 2) / ((1 - t) ** 2 * s ** 2 + t ** 2)

    sigmas = torch.linspace(1, 0, 101).expand(n, -1)
    noise = torch.randn(n, 1, 1, generator=torch.Generator().manual_seed(0))
    out = sample(velocity, noise, sigmas, step=SdeStep(0.7, torch.Generator().manual_seed(1)))
    assert abs(out.std().item() - s) < 0.05 * s and abs(out.mean().item()) < 0.02


def test_kl_is_zero_for_equal_means_and_a_scaled_squared_distance_otherwise():
    x, v, sigma, sigma_next = random_step()
    step = sde_step(x, v, sigma, sigma_next, 0.7)
    assert torch.equal(gaussian_kl(step, step), torch.zeros(3))
    other = sde_step(x, v + 0.1, sigma, sigma_next, 0.7)
    expected = ((step.mean - other.mean) ** 2 / (2 * step.std[:, None, None] ** 2)).mean(dim=(1, 2))
    torch.testing.assert_close(gaussian_kl(step, other), expected)


# ---- GRPO ----------------------------------------------------------------------------------------------
def test_group_advantages_are_normalised_per_group_and_zero_for_a_constant_group():
    rewards = torch.tensor([[0.1, 0.5, 0.9, 0.3], [2.0, 2.0, 2.0, 2.0], [-1.0, 5.0, 0.0, 1.0]])
    adv = group_advantages(rewards)
    assert torch.isfinite(adv).all()
    torch.testing.assert_close(adv.mean(dim=1), torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(adv[[0, 2]].std(dim=1, unbiased=False), torch.ones(2), atol=1e-3, rtol=0)
    assert torch.equal(adv[1], torch.zeros(4))
    assert adv[0].argsort().tolist() == rewards[0].argsort().tolist()


def test_zero_advantage_and_zero_kl_beta_give_zero_gradient():
    log_prob = torch.randn(4, requires_grad=True)
    old = log_prob.detach() + 0.01 * torch.randn(4)
    kl = (log_prob ** 2)  # would add a gradient, but kl_beta is 0
    grpo_loss(log_prob, old, torch.zeros(4), clip=0.2, kl=kl, kl_beta=0.0).backward()
    assert torch.equal(log_prob.grad, torch.zeros(4))


def test_the_policy_gradient_raises_the_reward_of_a_toy_policy():
    """The whole chain (SDE rollouts through the one sampler, replayed log-probs, group advantages, the loss)
    learns: a velocity with a trainable per-channel offset, rewarded for a high first channel and small others,
    moves its offset the right way and its reward climbs."""
    offset = torch.zeros(4, requires_grad=True)
    optimizer = torch.optim.Adam([offset], lr=0.05)
    generator = torch.Generator().manual_seed(1)
    group, steps = 8, 6
    sigmas = sigmas_for(steps, 16).expand(group, -1)
    velocity = lambda x, s: x + offset  # noqa: E731  (noise - x0 with x0 = -offset: the offset sets the image)
    history = []
    for _ in range(40):
        optimizer.zero_grad()
        for _prompt in range(2):
            rule = SdeStep(0.7, generator)
            with torch.no_grad():
                out = sample(velocity, torch.randn(group, 5, 4, generator=generator), sigmas, step=rule)  # [G, 5, 4]
            rewards = out[..., 0].mean(dim=1) - out[..., 1:].abs().mean(dim=(1, 2))  # [G]
            history.append(rewards.mean().item())
            advantages = group_advantages(rewards[None])[0]
            traj = rule.trajectory()
            for j in range(steps):
                s, s_next = traj.sigmas[:, j], traj.sigmas[:, j + 1]
                step = sde_step(traj.states[:, j], velocity(traj.states[:, j], s), s, s_next, 0.7)
                log_prob = gaussian_log_prob(traj.states[:, j + 1], step)
                (grpo_loss(log_prob, log_prob.detach(), advantages, clip=1e-4) / (2 * steps)).backward()
        optimizer.step()
    first, last = np.mean(history[:20]), np.mean(history[-20:])
    assert last > first + 0.5, (first, last)
    assert offset[0].item() < -1.0 and offset[1:].abs().max().item() < 0.5 * abs(offset[0].item())


def test_the_clip_stops_gradients_outside_the_band():
    old = torch.zeros(4)
    # ratios 1.5 and 0.5, advantages pushing further out: clipped, no gradient; inside the band: gradient
    log_prob = torch.tensor([math.log(1.5), math.log(0.5), math.log(1.05), math.log(0.95)], requires_grad=True)
    advantages = torch.tensor([1.0, -1.0, 1.0, -1.0])
    grpo_loss(log_prob, old, advantages, clip=0.2).backward()
    assert log_prob.grad[:2].abs().max() == 0
    assert (log_prob.grad[2:].abs() > 0).all()
    torch.testing.assert_close(log_prob.grad[2:], torch.tensor([-1.05, 0.95]) / 4)


def test_trained_steps_and_prompt_order_are_deterministic():
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert trained_steps(10, 1.0, gen()) == list(range(10))
    subset = trained_steps(10, 0.3, gen())
    assert len(subset) == 3 and subset == trained_steps(10, 0.3, gen()) and subset == sorted(set(subset))
    early = trained_steps(10, 0.6, gen(), limit=0.7)  # the last 3 steps are never drawn
    assert len(early) == 6 and max(early) < 7 and trained_steps(10, 1.0, gen(), limit=0.7) == list(range(7))
    prompts = [f"p{i}" for i in range(5)]
    epoch = [p for step in range(5) for p in prompts_at(prompts, step, 1, seed=0)]
    assert sorted(epoch) == prompts and epoch == [p for step in range(5) for p in prompts_at(prompts, step, 1, 0)]


def test_prompts_come_from_a_suite_or_a_file(tmp_path):
    dev = load_prompts("en-words", "dev")
    assert 0 < len(dev) < len(load_prompts("en-words"))
    path = tmp_path / "prompts.txt"
    path.write_text('# comment\na sign that says "HI"\n\nmug with "TEA"\n')
    assert load_prompts(str(path)) == ['a sign that says "HI"', 'mug with "TEA"']
    with pytest.raises(ValueError, match="nope.txt"):
        load_prompts(str(tmp_path / "nope.txt"))


def test_quoted_texts_are_the_suites_expected_texts():
    from qwenimage.eval.prompts import quoted_texts
    from qwenimage.eval.suites import load_suite

    for name in ("en-words", "multi-region", "zh-chars"):
        assert all(quoted_texts(s.prompt) == tuple(s.texts) for s in load_suite(name))
    assert quoted_texts('no "" quotes "open') == ()


# ---- rewards -------------------------------------------------------------------------------------------
def test_the_reward_pool_scores_with_a_module_callable_and_checks_results():
    from PIL import Image

    images = [Image.new("RGB", (8, 8), (v, v, v)) for v in (0, 255)]
    pool = RewardPool("tests.unit.test_grpo:brightness_reward", workers=2)
    future = pool.submit(images, ["a", "b"])
    assert isinstance(future, Future) and future.result() == pytest.approx([0.0, 1.0])
    bad = RewardPool(lambda images, prompts: [float("nan")] * len(images))
    with pytest.raises(ValueError, match="finite"):
        bad.submit(images, ["a", "b"]).result()
    pool.close(), bad.close()
    actor = RewardActor("tests.unit.test_grpo:brightness_reward")  # a Ray actor's body, run here
    assert actor.score(images, ["a", "b"]) == pytest.approx([0.0, 1.0])
    for spec in ("nomodule", "tests.unit.test_grpo:missing"):
        with pytest.raises(ValueError, match=spec):
            load_reward(spec)


def test_the_ocr_reward_reads_the_quoted_text():
    from qwenimage.eval.oracle import render_texts

    reward = load_reward("ocr")
    image = render_texts(["HELLO"], 256, 128)
    good, bad = reward([image, image], ['a sign that says "HELLO"', 'a sign that says "QZXJW"'])
    assert good > 0.9 and bad < 0.5
    with pytest.raises(ValueError, match="quoted text"):
        reward([image], ["no quotes here"])


# ---- config and the trainer ----------------------------------------------------------------------------
def grpo_config(tmp_path, pipeline, prompts_file, steps=2, **grpo):
    settings = dict(prompts=str(prompts_file), prompts_per_step=1, group_size=2, num_steps=3, cfg=2.0,
                    noise_level=0.7, clip=1e-4, kl_beta=0.1, train_fraction=0.67,
                    reward="tests.unit.test_grpo:brightness_reward") | grpo
    return TrainConfig(model=ModelConfig(pipeline=str(pipeline)),
                       objective=ObjectiveConfig(kind="grpo", grpo=GrpoConfig(**settings)),
                       stages=[StageConfig(name="rl", steps=steps, resolution=32)],
                       optim=OptimConfig(lr=1e-2, grad_clip=1.0, ema_decay=0.5),
                       output=OutputConfig(dir=str(tmp_path / "run"), log_every=1, checkpoint_every=1,
                                           tensorboard=False), seed=3)


@pytest.mark.parametrize("field, value", [("group_size", 1), ("noise_level", 0.0), ("clip", 0.0),
                                          ("train_fraction", 1.5), ("reward", "no-colon"),
                                          ("reward_pool", "dask"), ("old_log_prob", "stale"),
                                          ("trained_step_limit", 1.5)])
def test_bad_grpo_values_are_named(tmp_path, field, value):
    with pytest.raises(ValueError, match=str(value)):
        grpo_config(tmp_path, tmp_path, tmp_path / "p.txt", **{field: value})


def test_grpo_refuses_image_data_sources(tmp_path):
    with pytest.raises(ValueError, match="data.sources"):
        TrainConfig(objective=ObjectiveConfig(kind="grpo"), data=DataConfig(sources=["x"]))


def test_a_grpo_step_changes_the_weights_and_resumes(tmp_path, tiny_t2i_pipeline_dir):
    from qwenimage.train.trainer import Trainer

    prompts = tmp_path / "prompts.txt"
    prompts.write_text('a sign that says "HI"\na red mug with "TEA"\n')
    trainer = Trainer(grpo_config(tmp_path, tiny_t2i_pipeline_dir, prompts, steps=1))
    assert trainer.reference is not None and trainer.schedule is None
    before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    losses = trainer.run()
    assert len(losses) == 1 and math.isfinite(losses[0])
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "a GRPO step left every weight unchanged"
    reference = trainer.reference.state_dict()
    assert all(torch.equal(reference[k], before[k]) for k in before)
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    record = json.loads(log[0]) if len(log) == 1 else {}
    assert record["reward_std"] > 0 and record["kl"] < 1e-8  # the first step's policy is the reference
    assert record["clip_fraction"] == 0.0  # the update recomputes the rollout's log-probs (ratio 1 within 1e-4)
    assert (tmp_path / "run" / "transformer" / "config.json").is_file()

    resumed = Trainer(grpo_config(tmp_path, tiny_t2i_pipeline_dir, prompts, steps=2))
    assert resumed.step == 1
    assert len(resumed.run()) == 1 and resumed.step == 2


def test_groups_of_equal_rewards_are_not_trained(tmp_path, tiny_t2i_pipeline_dir):
    from qwenimage.train.trainer import Trainer

    prompts = tmp_path / "prompts.txt"
    prompts.write_text('a sign that says "HI"\n')
    trainer = Trainer(grpo_config(tmp_path, tiny_t2i_pipeline_dir, prompts, steps=1,
                                  reward="tests.unit.test_grpo:constant_reward"))
    before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    assert all(torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert record["groups_trained"] == 0 and record["reward_std"] == 0.0


def test_the_rollout_log_prob_option_keeps_the_stored_values(tmp_path, tiny_t2i_pipeline_dir):
    """old_log_prob: rollout divides by the log-probs stored while sampling; on this fp32 model the training pass
    recomputes them to within 1e-4, so the ratios stay in the band and the weights move as with recomputed."""
    from qwenimage.train.trainer import Trainer

    prompts = tmp_path / "prompts.txt"
    prompts.write_text('a sign that says "HI"\n')
    trainer = Trainer(grpo_config(tmp_path, tiny_t2i_pipeline_dir, prompts, steps=1, old_log_prob="rollout"))
    before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert record["log_prob_gap"] < 1e-4 and record["clip_fraction"] == 0.0 and record["groups_trained"] == 1
    assert any(not torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())


# ---- edits as rollout tasks ----------------------------------------------------------------------------
def write_edit_pairs(folder, rows):
    """A pairs folder (pairs.jsonl and 32x32 images) as `eval edit --pairs` reads it."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i, row in enumerate(rows):
        for role in ("source", "edited"):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"p{i}.{role}.png")
        lines.append(json.dumps({"id": f"p{i}", "source": f"p{i}.source.png", "edited": f"p{i}.edited.png", **row}))
    (folder / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def small_edit_area_pipeline(tmp_path, tiny_pipeline_dir):
    """The tiny edit folder with a 32x32 edit area, so condition images stay as small as the targets."""
    import shutil

    folder = shutil.copytree(tiny_pipeline_dir, tmp_path / "edit-model")
    settings = json.loads((folder / "qwenimage.json").read_text())
    settings["size_limits"]["edit_area"] = 32 * 32
    (folder / "qwenimage.json").write_text(json.dumps(settings))
    return folder


def test_edit_pairs_become_tasks_whose_reward_reads_the_new_text(tmp_path):
    from qwenimage.train.grpo import load_tasks

    pairs = write_edit_pairs(tmp_path / "pairs", [
        {"instruction": 'Change the text "OPEN" to "SHUT"', "new_text": "SHUT"},
        {"instruction": 'Make the sign say "HI"', "new_text": "HI"}])
    tasks = load_tasks(GrpoConfig(edit_pairs=str(pairs)))
    assert [t.prompt for t in tasks] == ['Change the text "OPEN" to "SHUT"', 'Make the sign say "HI"']
    assert [t.scored_prompt for t in tasks] == ['"SHUT"', '"HI"']  # not the old text the instruction quotes
    assert all(t.source.name.endswith(".source.png") and t.source.is_file() for t in tasks)
    assert load_tasks(GrpoConfig(prompts=str(write_prompts(tmp_path))))[0].scored_prompt == 'a sign that says "HI"'
    incomplete = write_edit_pairs(tmp_path / "bad", [{"instruction": "Make it blue"}])
    with pytest.raises(ValueError, match="lack an instruction or a new text, e.g. 'p0'"):
        load_tasks(GrpoConfig(edit_pairs=str(incomplete)))


def write_prompts(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text('a sign that says "HI"\n')
    return prompts


def test_an_edit_rollout_conditions_on_the_source(tmp_path, small_edit_area_pipeline):
    """The group's G samples share the source's condition tokens and the instruction's text; the same seed
    replays the same trajectory, and another source changes it."""
    from qwenimage.pipelines.loading import load_pipeline
    from qwenimage.train.grpo import RolloutTask, rollout

    pairs = write_edit_pairs(tmp_path / "pairs", [{"instruction": 'Make it say "HI"', "new_text": "HI"}] * 2)
    pipe = load_pipeline(small_edit_area_pipeline, dtype=torch.float32)
    config = GrpoConfig(group_size=3, num_steps=2, cfg=1.0)
    task = RolloutTask('Make it say "HI"', pairs / "p0.source.png", '"HI"')
    with torch.no_grad():
        batch = rollout(pipe, task, config, 32, seed=5)
        again = rollout(pipe, task, config, 32, seed=5)
        other = rollout(pipe, RolloutTask(task.prompt, pairs / "p1.source.png"), config, 32, seed=5)
    assert batch.layout.reference_grids == [[(2, 2)]] * 3  # a 32x32 source: 2x2 condition tokens each
    channels = pipe.latent_channels * 4  # packed 2x2
    assert all(tokens.shape == (4, channels) for tokens in batch.layout.reference_tokens)
    assert batch.trajectory.states.shape == (3, 3, 4, channels) and batch.trajectory.log_probs.shape == (3, 2)
    assert batch.guidance.negative is None  # cfg 1: no unconditional pass
    torch.testing.assert_close(again.trajectory.states, batch.trajectory.states)
    assert not torch.equal(other.trajectory.states[:, -1], batch.trajectory.states[:, -1])


def test_a_grpo_edit_step_trains(tmp_path, small_edit_area_pipeline):
    from qwenimage.train.trainer import Trainer

    pairs = write_edit_pairs(tmp_path / "pairs", [{"instruction": 'Make it say "HI"', "new_text": "HI"}])
    config = grpo_config(tmp_path, small_edit_area_pipeline, tmp_path / "unused.txt", steps=1,
                         edit_pairs=str(pairs), cfg=1.0)
    trainer = Trainer(config)
    before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert record["groups_trained"] == 1 and record["reward_std"] > 0
    assert any(not torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())
