"""Training objectives: flow matching (the sampler's convention) and Diffusion-DPO for flow matching.

Convention (the package's, written once in qwenimage/__init__.py): t in [0, 1], t = 1 is noise,
x_t = (1 - t) * x0 + t * noise, target velocity v = noise - x0. (The report writes t the other way
round; converting means t_report = 1 - t.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qwenimage.sampling.conditioning import TextConditioning, TokenLayout
from qwenimage.sampling.guidance import transformer_velocity
from qwenimage.sampling.schedule import ScheduleConfig, shift_mu, time_shift


@dataclass
class FlowBatch:
    """One training batch in token form. Targets of different sizes are right-padded."""

    x0: torch.Tensor  # [B, S_tgt, C] packed clean latents of the targets
    layout: TokenLayout  # target grids + condition tokens per sample
    text: TextConditioning  # [B, S_txt, D] + mask

    @property
    def batch(self) -> int:
        return self.x0.shape[0]


def logit_normal_t(generator: torch.Generator, n: int, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """[n] times from the logit-normal distribution: sigmoid of N(mean, std)."""
    return torch.sigmoid(torch.randn(n, generator=generator) * std + mean)


def shift_for_resolution(t: torch.Tensor, token_counts: list[int], schedule: ScheduleConfig) -> torch.Tensor:
    """Apply the sampling schedule's resolution-dependent shift to training times, per sample."""
    mus = [shift_mu(n, schedule) for n in token_counts]
    return torch.stack([time_shift(t[i : i + 1], mu)[0] for i, mu in enumerate(mus)])


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error over real target tokens: [B, S, C] x2, mask [B, S, 1] -> [B].
    A float mask weights the tokens (a weighted mean)."""
    mask = mask.float()
    err = (pred.float() - target.float()).square() * mask
    return err.sum(dim=(1, 2)) / (mask.sum(dim=(1, 2)) * pred.shape[-1])


def changed_tokens(batch: FlowBatch, threshold: float) -> torch.Tensor:
    """[B, S_tgt, 1] bool: the target tokens an edit changed, where the mean over channels of |x0 - source|
    exceeds `threshold` (normalised latents). The source is the sample's last condition image (the one the
    target's size comes from); samples without one of the target's grid change nothing."""
    changed = torch.zeros(*batch.x0.shape[:2], 1, dtype=torch.bool, device=batch.x0.device)
    layout = batch.layout
    for b, (grid, refs, tokens) in enumerate(zip(layout.target_grids, layout.reference_grids,
                                                 layout.reference_tokens)):
        if not refs or tuple(refs[-1]) != tuple(grid):
            continue
        n = grid[0] * grid[1]
        source = tokens[-n:].to(batch.x0.device)  # [n, C]
        changed[b, :n, 0] = (batch.x0[b, :n].float() - source.float()).abs().mean(dim=-1) > threshold
    return changed


def flow_matching_loss(model: torch.nn.Module, batch: FlowBatch, t: torch.Tensor, noise: torch.Tensor,
                       edit_weight: float = 0.0, edit_threshold: float = 0.5) -> torch.Tensor:
    """Per-sample loss [B]: || v_theta(x_t, t) - (noise - x0) ||^2 over real target tokens. With `edit_weight`,
    the tokens an edit changed (`changed_tokens`) weigh 1 + edit_weight: in an edit pair the copy of the
    unchanged source is most of the tokens and, once learnt, would drown the few that carry the edit."""
    t_tokens = t[:, None, None].to(batch.x0.dtype)
    x_t = (1 - t_tokens) * batch.x0 + t_tokens * noise  # [B, S, C]
    pred = transformer_velocity(model, batch.layout, batch.text)(x_t, t)
    mask = batch.layout.target_mask(batch.x0.shape[1], batch.x0.device).float()  # [B, S, 1]
    if edit_weight:
        mask = mask * (1 + edit_weight * changed_tokens(batch, edit_threshold).float())
    return masked_mse(pred, noise - batch.x0, mask)


def dpo_loss(policy: torch.nn.Module, reference: torch.nn.Module, win: FlowBatch, lose: FlowBatch,
             t: torch.Tensor, noise: torch.Tensor, beta: float) -> torch.Tensor:
    """Diffusion-DPO for flow matching (same t and noise for the pair), mean over the batch:
    L = -log sigmoid(-beta * ((e_w - e_l)_policy - (e_w - e_l)_reference)), e = flow-matching error."""
    policy_diff = flow_matching_loss(policy, win, t, noise) - flow_matching_loss(policy, lose, t, noise)
    with torch.no_grad():
        reference_diff = (flow_matching_loss(reference, win, t, noise)
                          - flow_matching_loss(reference, lose, t, noise))
    return -torch.nn.functional.logsigmoid(-beta * (policy_diff - reference_diff)).mean()
