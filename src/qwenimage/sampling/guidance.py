"""True classifier-free guidance with per-token norm renormalisation, as a wrapper around the model.

    combined = uncond + s * (cond - uncond);   guided = combined * |cond| / |combined|
where |.| is the L2 norm over each token's features. The wrapper batches the conditional and the
unconditional pass into one forward when asked to (and when it fits), otherwise runs them one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from qwenimage.sampling.conditioning import TextConditioning, TokenLayout, stack_text
from qwenimage.sampling.step_cache import FirstBlockCache, StepCaching

# (x [B, S_tgt, C], sigma [B]) -> velocity [B, S_tgt, C]
VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# On CPU the forward is compute-bound: batching the two passes only saves per-op overhead. Measured on 2 cores
# (benchmarks/bench_cfg.py, 4 blocks 8x64): 1.33x at 64 + 32 tokens, 1.07-1.11x at 256 + 64, and past about
# 512 joint (image + text) tokens per sample no gain either way (0.92-1.07x at 576 + 64, 0.89-1.03x at
# 1024 + 128), where two sequential passes need half the activation memory.
CPU_BATCHED_CFG_MAX_TOKENS = 512


def batch_cfg_by_default(device: torch.device, tokens_per_sample: int) -> bool:
    """The automatic choice between one batched forward and two sequential ones for true CFG."""
    if device.type != "cpu":
        return True  # accelerators: one launch sequence for both passes
    return tokens_per_sample <= CPU_BATCHED_CFG_MAX_TOKENS


def renormalized_cfg(cond: torch.Tensor, uncond: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """cond, uncond [B, S, C], scale [B] -> guided prediction [B, S, C] with each token's norm kept."""
    combined = uncond + scale[:, None, None].to(cond.dtype) * (cond - uncond)
    cond_norm = torch.linalg.vector_norm(cond, dim=-1, keepdim=True)  # [B, S, 1]
    combined_norm = torch.linalg.vector_norm(combined, dim=-1, keepdim=True)
    ratio = torch.where(combined_norm > 0, cond_norm / combined_norm, torch.ones_like(cond_norm))  # padding: 0/0
    return combined * ratio


@dataclass
class Guidance:
    """Per-sample CFG scales (a sample with scale <= 1 or no negative text gets no unconditional pass)."""

    scales: torch.Tensor  # [B]
    negative: TextConditioning | None = None  # [B, ...] rows for every sample
    batched: bool = True  # one forward for cond + uncond when True

    def rows(self) -> list[int]:
        if self.negative is None:
            return []
        return [b for b, s in enumerate(self.scales.tolist()) if s > 1]


def transformer_velocity(transformer: torch.nn.Module, layout: TokenLayout, text: TextConditioning,
                         cache: FirstBlockCache | None = None) -> VelocityFn:
    """The model as a velocity function over padded target tokens (conditions appended per sample);
    with a step cache, the model runs through it."""

    def velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        joint = layout.assemble(x)  # [B, S_img, C]
        args = (joint, text.embeds, sigma.to(x.dtype), layout.img_shapes())
        if cache is None:
            out = transformer(*args, encoder_hidden_states_mask=text.mask)
        else:
            out = cache(transformer, *args, encoder_hidden_states_mask=text.mask)
        return layout.extract(out, x.shape[1])

    return velocity


def guided_velocity(transformer: torch.nn.Module, layout: TokenLayout, positive: TextConditioning,
                    guidance: Guidance, caching: StepCaching | None = None) -> VelocityFn:
    """CFG around the model; with `caching`, the conditional and unconditional passes each get a step cache."""
    rows, everyone = guidance.rows(), list(range(layout.batch))

    def cache(pass_rows: list[int]) -> FirstBlockCache | None:
        return caching.for_rows(pass_rows) if caching is not None else None

    if not rows:
        return transformer_velocity(transformer, layout, positive, cache(everyone))
    negative = guidance.negative.select(rows)
    if guidance.batched:
        both = transformer_velocity(transformer, TokenLayout(
            layout.target_grids + [layout.target_grids[r] for r in rows],
            layout.reference_grids + [layout.reference_grids[r] for r in rows],
            layout.reference_tokens + [layout.reference_tokens[r] for r in rows]), stack_text([positive, negative]),
            cache(everyone + rows))
    else:
        cond_fn = transformer_velocity(transformer, layout, positive, cache(everyone))
        uncond_fn = transformer_velocity(transformer, layout.select(rows), negative, cache(rows))

    def velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if guidance.batched:
            out = both(torch.cat([x, x[rows]]), torch.cat([sigma, sigma[rows]]))
            cond, uncond = out[: x.shape[0]], out[x.shape[0]:]
        else:
            cond, uncond = cond_fn(x, sigma), uncond_fn(x[rows], sigma[rows])
        guided = cond.clone()
        guided[rows] = renormalized_cfg(cond[rows], uncond, guidance.scales[rows].to(x.device))
        return guided

    return velocity
