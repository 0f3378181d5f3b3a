"""The sampler's ODE as an SDE with the same marginals, so that every step is a Gaussian policy (Flow-GRPO).

With the package's path x_t = (1 - t) x0 + t noise and a step from sigma down to sigma_next
(dt = sigma_next - sigma < 0), the reverse-time SDE discretised with Euler-Maruyama gives

    std_t  = a * sqrt(sigma / (1 - sigma))                      a = noise_level; sigma <= sigma_max in the root
    mean   = x * (1 + std_t^2 / (2 sigma) * dt) + v * (1 + std_t^2 (1 - sigma) / (2 sigma)) * dt
    x_next = mean + std_t * sqrt(-dt) * eps,                    eps ~ N(0, I)

so x_next ~ N(mean, (std_t sqrt(-dt))^2 I) has a log-probability that gradients can flow through (the mean
depends on the velocity). a = 0 is the Euler step exactly. The root's sigma is clamped below 1, where the
variance would be infinite (the first step starts at sigma = 1).

    rule = SdeStep(noise_level=0.7, generator=gen)
    x = sample(velocity, noise, sigmas, step=rule)     # the one sampler loop, with this step
    trajectory = rule.trajectory()                     # states, log-probs, sigmas: what RL training replays
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

SIGMA_MAX = 0.98  # the largest sigma in std_t's root: sigma = 1 would give an infinite variance


@dataclass
class GaussianStep:
    """One SDE step's distribution: N(mean, std^2 I) per sample."""

    mean: torch.Tensor  # [B, S, C] fp32
    std: torch.Tensor  # [B] std_t * sqrt(-dt)


@dataclass
class Trajectory:
    """A sampled SDE path, as training needs it to recompute each step's log-probability."""

    states: torch.Tensor  # [B, N + 1, S, C] x before the first step, then after every step
    log_probs: torch.Tensor  # [B, N] log-probability of each step's x_next under the sampling policy
    sigmas: torch.Tensor  # [B, N + 1]

    @property
    def steps(self) -> int:
        return self.log_probs.shape[1]


def sde_step(x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor,
             noise_level: float, sigma_max: float = SIGMA_MAX) -> GaussianStep:
    """The Gaussian of one step: x, v [B, S, C]; sigma, sigma_next [B] with sigma > sigma_next >= 0."""
    sigma, sigma_next = sigma.float()[:, None, None], sigma_next.float()[:, None, None]  # [B, 1, 1]
    dt = sigma_next - sigma
    root = sigma.clamp(max=sigma_max)
    variance = noise_level ** 2 * root / (1 - root)  # std_t^2 [B, 1, 1]
    mean = (x.float() * (1 + variance / (2 * sigma) * dt)
            + v.float() * (1 + variance * (1 - sigma) / (2 * sigma)) * dt)  # [B, S, C]
    return GaussianStep(mean, (variance * -dt).sqrt().flatten())


def token_mean(values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """[B, S, C] -> [B]: the mean over all non-batch dims, over real tokens only when mask [B, S, 1] is given."""
    if mask is None:
        return values.mean(dim=(1, 2))
    mask = mask.to(values.dtype)
    return (values * mask).sum(dim=(1, 2)) / (mask.sum(dim=(1, 2)) * values.shape[-1])


def gaussian_log_prob(x_next: torch.Tensor, step: GaussianStep, mask: torch.Tensor | None = None) -> torch.Tensor:
    """log N(x_next; mean, std^2) per element, averaged per sample: [B, S, C] -> [B] (fp32)."""
    std = step.std[:, None, None]  # [B, 1, 1]
    log_density = (-(x_next.float() - step.mean).square() / (2 * std.square())
                   - std.log() - 0.5 * math.log(2 * math.pi))  # [B, S, C]
    return token_mean(log_density, mask)


def gaussian_kl(step: GaussianStep, reference: GaussianStep, mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL between two steps' Gaussians of equal std: |mean - mean_ref|^2 / (2 std^2), averaged per sample -> [B]."""
    std = step.std[:, None, None]
    return token_mean((step.mean - reference.mean).square() / (2 * std.square()), mask)


@dataclass
class SdeStep:
    """A step rule for `sampler.sample` that draws x_next from the SDE's Gaussian and records the trajectory.

    The recorded log-probability is that of x_next as returned (cast to x's dtype), so recomputing it later
    from the stored states gives the same number. noise_level = 0 gives the Euler step, with NaN log-probs
    (a deterministic step has no density)."""

    noise_level: float
    generator: torch.Generator | None = None  # eps comes from this generator, on its device
    sigma_max: float = SIGMA_MAX
    mask: torch.Tensor | None = None  # [B, S, 1] real target tokens, for the log-prob mean
    _states: list[torch.Tensor] = field(default_factory=list, init=False, repr=False)
    _log_probs: list[torch.Tensor] = field(default_factory=list, init=False, repr=False)
    _sigmas: list[torch.Tensor] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.noise_level >= 0:
            raise ValueError(f"noise_level must be >= 0, got {self.noise_level}")
        if not 0 < self.sigma_max < 1:
            raise ValueError(f"sigma_max must lie in (0, 1), got {self.sigma_max}")

    def __call__(self, x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor,
                 sigma_next: torch.Tensor) -> torch.Tensor:
        gaussian = sde_step(x, v, sigma, sigma_next, self.noise_level, self.sigma_max)
        device = self.generator.device if self.generator is not None else x.device
        eps = torch.randn(x.shape, generator=self.generator, device=device).to(x.device)  # [B, S, C] fp32
        x_next = (gaussian.mean + gaussian.std[:, None, None] * eps).to(x.dtype)
        if self.noise_level > 0:
            log_prob = gaussian_log_prob(x_next, gaussian, self.mask)
        else:
            log_prob = torch.full((x.shape[0],), math.nan, device=x.device)
        if not self._states:
            self._states.append(x)
            self._sigmas.append(sigma.float())
        self._states.append(x_next)
        self._sigmas.append(sigma_next.float())
        self._log_probs.append(log_prob)
        return x_next

    def trajectory(self) -> Trajectory:
        if not self._log_probs:
            raise ValueError("no step was taken: the trajectory is empty")
        return Trajectory(torch.stack(self._states, dim=1), torch.stack(self._log_probs, dim=1),
                          torch.stack(self._sigmas, dim=1))
