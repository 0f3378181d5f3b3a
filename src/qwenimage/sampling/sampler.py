"""The one sampling loop shared by every task (text-to-image, edit, img2img, inpaint).

A task supplies the starting point x (noise, or a noised image for img2img), the per-sample sigmas,
a velocity function (the model with its conditioning and guidance already bound), and optionally a
per-step hook (inpaint puts the known region back). The loop knows no task. The step rule is the
deterministic Euler step unless another is given (sampling/sde.py: the stochastic step of RL training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from qwenimage.sampling.guidance import VelocityFn
from qwenimage.sampling.schedule import euler_step, noise_to

# (step index, x after the step) -> x
StepHook = Callable[[int, torch.Tensor], torch.Tensor]
# (step index, number of steps, x after the step, denoised estimate x - sigma * v) -> None: progress, previews
StepCallback = Callable[[int, int, torch.Tensor, torch.Tensor], None]
# (x [B, S, C], velocity [B, S, C], sigma [B], sigma_next [B]) -> x at sigma_next [B, S, C]
StepRule = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def euler(x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """The ODE's Euler step, per sample: x + (sigma_next - sigma) * v."""
    return euler_step(x, v, sigma[:, None, None], sigma_next[:, None, None])


def sample(velocity: VelocityFn, x: torch.Tensor, sigmas: torch.Tensor, *, start: int = 0,
           hook: StepHook | None = None, callback: StepCallback | None = None,
           step: StepRule = euler) -> torch.Tensor:
    """Integrate dx/dsigma = v from sigmas[:, start] down to sigmas[:, -1] with `step` (Euler by default).

    x [B, S, C]; sigmas [B, N + 1] (one schedule per sample, since mixed sizes shift differently).
    """
    if sigmas.ndim != 2 or sigmas.shape[0] != x.shape[0]:
        raise ValueError(f"sigmas must be [batch, steps + 1] = [{x.shape[0]}, N + 1], got {list(sigmas.shape)}")
    steps = sigmas.shape[1] - 1
    for i in range(start, steps):
        sigma, sigma_next = sigmas[:, i], sigmas[:, i + 1]  # [B]
        v = velocity(x, sigma)  # [B, S, C]
        x_next = step(x, v, sigma, sigma_next)
        if hook is not None:
            x_next = hook(i, x_next)
        if callback is not None:
            denoised = x.float() - sigma[:, None, None] * v.float()  # the x0 this step's velocity points at
            callback(i - start, steps - start, x_next, denoised.to(x.dtype))
        x = x_next
    return x


@dataclass
class InpaintBlend:
    """After each step, keep the model's tokens where mask = 1 and put back the known image, re-noised to
    the next sigma with the same initial noise, where mask = 0 (the clean image after the last step)."""

    known: torch.Tensor  # [B, S, C] clean packed latents of the source image
    noise: torch.Tensor  # [B, S, C] the initial noise
    mask: torch.Tensor  # [B, S, C] 1 = repaint, 0 = keep
    sigmas: torch.Tensor  # [B, N + 1]

    def __call__(self, i: int, x: torch.Tensor) -> torch.Tensor:
        sigma_next = self.sigmas[:, i + 1, None, None]
        known = noise_to(self.known, self.noise, sigma_next).to(x.dtype)
        return (1 - self.mask) * known + self.mask * x


def start_index(num_steps: int, strength: float) -> int:
    """First step for img2img/inpaint: strength 1 starts from pure noise, strength 0 runs no step."""
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    return int(num_steps - min(num_steps * strength, num_steps))
