"""Flow-GRPO: group-relative policy optimisation for flow matching, the sampler's SDE as the policy.

A rollout task is a text-to-image prompt, or an edit (`objective.grpo.edit_pairs`: a source image, its instruction,
and the new text the reward reads).

One optimizer step (`GrpoObjective.accumulate`):
1. rollouts: for each task, G images sampled by the current (old) policy with the SDE sampler under no_grad,
   recording every step's x_t, x_next, sigmas and log-probability (sampling/sde.py);
2. rewards: the images are scored by a reward pool (train/rewards.py) while the next group samples;
3. advantages within each group: A_i = (r_i - mean) / (std + eps);
4. for each trained step j the policy recomputes the log-prob of the stored x_next given the stored x_t:
       ratio = exp(logp_theta - logp_old)
       loss  = mean(max(-A ratio, -A clip(ratio, 1 - clip, 1 + clip))) + kl_beta * KL(policy || reference)
   with KL between the two steps' Gaussians (equal std): |mean_theta - mean_ref|^2 / (2 std^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from qwenimage.sampling.conditioning import TextConditioning, TokenLayout, stack_text
from qwenimage.sampling.guidance import Guidance, VelocityFn, batch_cfg_by_default, guided_velocity
from qwenimage.sampling.packing import unpack_latents
from qwenimage.sampling.sampler import sample
from qwenimage.sampling.schedule import sigmas_for
from qwenimage.sampling.sde import SdeStep, Trajectory, gaussian_kl, gaussian_log_prob, sde_step
from qwenimage.train.config import GrpoConfig
from qwenimage.train.rewards import RewardPool

ADVANTAGE_EPS = 1e-4
T = TypeVar("T")


# ---- the objective's pure functions -------------------------------------------------------------------
def group_advantages(rewards: torch.Tensor, eps: float = ADVANTAGE_EPS) -> torch.Tensor:
    """[P, G] rewards (a row per prompt) -> advantages normalised within each row (a constant row gives 0)."""
    mean = rewards.mean(dim=1, keepdim=True)  # [P, 1]
    std = rewards.std(dim=1, unbiased=False, keepdim=True)
    return (rewards - mean) / (std + eps)


def grpo_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, clip: float,
              kl: torch.Tensor | None = None, kl_beta: float = 0.0) -> torch.Tensor:
    """The clipped policy-ratio loss of one step, all [B] -> scalar (plus kl_beta * mean KL when given)."""
    ratio = torch.exp(log_prob - old_log_prob)  # [B]
    clipped = ratio.clamp(1 - clip, 1 + clip)
    loss = torch.maximum(-advantages * ratio, -advantages * clipped).mean()
    if kl is not None and kl_beta > 0:
        loss = loss + kl_beta * kl.mean()
    return loss


def trained_steps(num_steps: int, fraction: float, generator: torch.Generator, limit: float = 1.0) -> list[int]:
    """The steps of a rollout that train: of its first ceil(limit * N) steps (the eligible ones), all, or a random
    subset of round(fraction * N) of them (at least one)."""
    eligible = max(1, math.ceil(limit * num_steps - 1e-9))
    count = min(max(1, round(fraction * num_steps)), eligible)
    if count >= eligible:
        return list(range(eligible))
    return sorted(torch.randperm(eligible, generator=generator)[:count].tolist())


# ---- prompts ------------------------------------------------------------------------------------------
def load_prompts(spec: str, split: str = "all") -> list[str]:
    """An eval suite's prompts (a name or words:PATH, see qwenimage.eval.suites) or a text file's lines
    (blank lines and '#' comments skipped)."""
    from qwenimage.eval.suites import SUITES, WORDS_PREFIX, load_suite, select

    if spec in SUITES or spec.startswith(WORDS_PREFIX):
        return [s.prompt for s in select(load_suite(spec), split=split)]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"objective.grpo.prompts {spec!r} is neither a suite ({', '.join(SUITES)}, words:PATH) "
                         "nor a prompt file")
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise ValueError(f"objective.grpo.prompts file {path} holds no prompt")
    return prompts


@dataclass(frozen=True)
class RolloutTask:
    """What one group samples: a text-to-image prompt, or an edit of `source` with the instruction `prompt`."""

    prompt: str
    source: Path | None = None  # an edit's source image
    reward_prompt: str = ""  # what the reward scores the images against (a text-to-image task: its prompt)

    @property
    def scored_prompt(self) -> str:
        return self.reward_prompt or self.prompt


def load_edit_tasks(spec: str) -> list[RolloutTask]:
    """Edit tasks from a folder of edit pairs: the source, the instruction, and the new text quoted (what the OCR
    reward reads)."""
    from qwenimage.eval.edit_pairs import read_pairs

    pairs = read_pairs(spec)
    incomplete = [pair.id for pair in pairs if not pair.instruction or not pair.new_text]
    if incomplete:
        raise ValueError(f"objective.grpo.edit_pairs {spec}: {len(incomplete)} pair(s) lack an instruction or a "
                         f"new text, e.g. {incomplete[0]!r}")
    return [RolloutTask(pair.instruction, pair.source, f'"{pair.new_text}"') for pair in pairs]


def load_tasks(config: GrpoConfig) -> list[RolloutTask]:
    if config.edit_pairs:
        return load_edit_tasks(config.edit_pairs)
    return [RolloutTask(prompt) for prompt in load_prompts(config.prompts, config.prompt_split)]


def prompts_at(prompts: list[T], step: int, per_step: int, seed: int, rank: int = 0, world: int = 1) -> list[T]:
    """This rank's prompts (or tasks) of an optimizer step: epochs over them, each in its own shuffled order."""
    chosen = []
    for k in range(per_step):
        position = (step * world + rank) * per_step + k
        epoch, index = divmod(position, len(prompts))
        order = np.random.default_rng([seed, epoch]).permutation(len(prompts))
        chosen.append(prompts[int(order[index])])
    return chosen


def rollout_seed(seed: int, step: int, rank: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank, index]).generate_state(1, np.uint64)[0] >> 1)


# ---- rollouts -----------------------------------------------------------------------------------------
@dataclass
class Rollout:
    """G images of one task sampled with the SDE: everything the update needs to replay a step."""

    task: RolloutTask
    layout: TokenLayout  # G target grids (and an edit's condition tokens)
    text: TextConditioning  # [G, S_txt, D]
    guidance: Guidance
    trajectory: Trajectory  # states [G, N + 1, S, C], log_probs [G, N], sigmas [G, N + 1]

    def velocity(self, transformer: torch.nn.Module) -> VelocityFn:
        """The policy's (guided) velocity: the same function the rollout sampled with, for any weights."""
        return guided_velocity(transformer, self.layout, self.text, self.guidance)

    def latents(self) -> list[torch.Tensor]:
        """The final images' latents, [C, h, w] each."""
        rows, cols = self.layout.target_grids[0]
        return list(unpack_latents(self.trajectory.states[:, -1], 2 * rows, 2 * cols))


def rollout(pipe, task: RolloutTask, config: GrpoConfig, side: int, seed: int) -> Rollout:
    """Sample config.group_size images of `task` at side x side pixels with `pipe`'s transformer (call under
    no_grad); the noises and the SDE's eps come from `seed`. The pipeline's task adapter encodes the prompt (and an
    edit's source, for the VL encoder and as condition latents), as at inference."""
    from qwenimage.pipelines.request import GenerationRequest
    from qwenimage.pipelines.tasks import prepare

    g = config.group_size
    request = GenerationRequest(task.prompt, negative_prompt=config.negative_prompt, width=side, height=side,
                                num_steps=config.num_steps, true_cfg_scale=config.cfg, seed=seed,
                                images=[task.source] if task.source is not None else [])
    request.validate()
    prepared = prepare(pipe, request)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.stack([pipe.initial_noise(request, side, side, generator) for _ in range(g)])  # [G, S, C]
    grid = prepared.grid
    layout = TokenLayout([grid] * g, [prepared.reference_grids] * g, [prepared.reference_tokens] * g)
    text = stack_text([prepared.text] * g)
    guidance = Guidance(torch.full((g,), float(config.cfg)))
    if prepared.negative is not None:
        negatives = stack_text([prepared.negative] * g)
        tokens = layout.image_len() + max(text.embeds.shape[1], negatives.embeds.shape[1])
        guidance = Guidance(guidance.scales, negatives, batched=batch_cfg_by_default(pipe.device, tokens))
    sigmas = sigmas_for(config.num_steps, grid[0] * grid[1], pipe.schedule).to(pipe.device)  # [N + 1]
    rule = SdeStep(config.noise_level, generator)
    sample(guided_velocity(pipe.transformer, layout, text, guidance), noise, sigmas.expand(g, -1), step=rule)
    return Rollout(task, layout, text, guidance, rule.trajectory())


def step_loss(policy: torch.nn.Module, reference: torch.nn.Module | None, batch: Rollout, step: int,
              advantages: torch.Tensor, config: GrpoConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The GRPO loss of one stored step of a rollout (gradients flow into `policy`), with its statistics."""
    traj = batch.trajectory
    x, x_next = traj.states[:, step], traj.states[:, step + 1]  # [G, S, C]
    sigma, sigma_next = traj.sigmas[:, step], traj.sigmas[:, step + 1]  # [G]
    gaussian = sde_step(x, batch.velocity(policy)(x, sigma), sigma, sigma_next, config.noise_level)
    log_prob = gaussian_log_prob(x_next, gaussian)  # [G]
    kl = None
    if reference is not None and config.kl_beta > 0:
        with torch.no_grad():
            anchor = sde_step(x, batch.velocity(reference)(x, sigma), sigma, sigma_next, config.noise_level)
        kl = gaussian_kl(gaussian, anchor)  # [G]
    rollout_log_prob = traj.log_probs[:, step]  # [G], stored while sampling
    old = log_prob.detach() if config.old_log_prob == "recomputed" else rollout_log_prob
    loss = grpo_loss(log_prob, old, advantages, config.clip, kl, config.kl_beta)
    ratio = torch.exp(log_prob.detach() - old)
    stats = {"clip_fraction": ((ratio - 1).abs() > config.clip).float().mean().item(),
             "kl": kl.mean().item() if kl is not None else 0.0,
             # how far the training pass's numerics are from the sampling pass's (0 in exact arithmetic)
             "log_prob_gap": (log_prob.detach() - rollout_log_prob).abs().mean().item()}
    return loss, stats


# ---- one optimizer step's gradients -------------------------------------------------------------------
class GrpoObjective:
    """Prompts, rewards and the accumulation of one step's GRPO gradients; the trainer owns the rest (optimizer,
    checkpoints, EMA, exports). Everything is a function of (seed, step), so a resumed run continues alike."""

    def __init__(self, config: GrpoConfig, seed: int, rank: int = 0, world: int = 1, ray_address: str = ""):
        self.config, self.seed, self.rank, self.world = config, seed, rank, world
        self.tasks = load_tasks(config)
        if config.reward == "ocr":
            from qwenimage.eval.prompts import quoted_texts

            unquoted = [t.scored_prompt for t in self.tasks if not quoted_texts(t.scored_prompt)]
            if unquoted:
                raise ValueError(f"objective.grpo.reward ocr needs a quoted text in every prompt; "
                                 f"{len(unquoted)} have none, e.g. {unquoted[0]!r}")
        self.pool = RewardPool(config.reward, config.reward_workers, config.reward_pool, ray_address)
        self.metrics: dict[str, float] = {}

    def accumulate(self, policy: torch.nn.Module, reference: torch.nn.Module | None, pipe, step: int, side: int,
                   autocast: bool = False) -> tuple[torch.Tensor, int, int]:
        """Roll out, score and backpropagate one step's loss into `policy`'s gradients (the optimizer step is the
        caller's); returns (mean loss, images, trained tokens). `pipe` samples with `policy`."""
        cfg, device = self.config, pipe.device
        tasks = prompts_at(self.tasks, step, cfg.prompts_per_step, self.seed, self.rank, self.world)
        amp = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast)  # noqa: E731
        batches, futures = [], []
        for k, task in enumerate(tasks):  # scoring group k overlaps sampling group k + 1
            with torch.no_grad(), amp():
                batch = rollout(pipe, task, cfg, side, rollout_seed(self.seed, step, self.rank, k))
            batches.append(batch)
            futures.append(self.pool.submit([pipe.decode(z) for z in batch.latents()],
                                            [task.scored_prompt] * cfg.group_size))
        generator = torch.Generator().manual_seed(rollout_seed(self.seed, step, self.rank, len(tasks)))
        total, rewards, stats, tokens, trained = torch.zeros((), device=device), [], [], 0, 0
        for batch, future in zip(batches, futures):  # training on group k overlaps scoring group k + 1
            scores = future.result()  # checked by the pool: group_size finite numbers
            rewards += scores
            # drawn for every group, trained or not: a resumed run draws alike
            steps = trained_steps(cfg.num_steps, cfg.train_fraction, generator, cfg.trained_step_limit)
            # (under DDP every rank must run its backward passes: there the filter is off)
            if cfg.skip_uniform_groups and self.world == 1 and max(scores) == min(scores):
                continue
            trained += 1
            advantages = group_advantages(torch.tensor([scores]))[0].to(device)  # [G]
            for j in steps:
                with amp():
                    loss, step_stats = step_loss(policy, reference, batch, j, advantages, cfg)
                (loss / (len(batches) * len(steps))).backward()
                total += loss.detach() / (len(batches) * len(steps))
                stats.append(step_stats)
                tokens += sum(batch.layout.target_lengths)
        values = torch.tensor(rewards)
        self.metrics = {"reward_mean": values.mean().item(), "reward_std": values.std(unbiased=False).item(),
                        "groups_trained": trained,
                        **{key: float(np.mean([s[key] for s in stats])) for key in (stats[0] if stats else [])}}
        return total, len(rewards), tokens

    def close(self) -> None:
        self.pool.close()
