"""First-block residual cache: skip most of the transformer on steps where it would change little.

At every step the first dual-stream block runs for every row. Its image-stream residual r1 = block_0(img) - img
is compared with r1 at the row's last fully computed step:

    change = mean|r1 - r1_full| / mean|r1_full|     (over the row's real image tokens, padding left out)

When change < the row's threshold, the remaining blocks are skipped and their residual from that full step
(output of the last block minus output of the first) is added instead; otherwise they run for that row and
refresh its cache. Because the reference stays at the last *full* step, drift accumulates and forces a
refresh. Decisions are per row, so a request in a mixed batch is cached exactly as it would be alone; rows
with threshold 0 always run every block. Each transformer pass (the conditional one, and the unconditional
one of CFG) keeps its own cache: a `StepCaching` hands out one `FirstBlockCache` per pass for one sampling run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from qwenimage.model.mmdit import BlockContext, normalize_img_shapes
from qwenimage.model.rope import Rotation, SampleShapes, image_token_count

# The default when caching is asked for without a value (`--cache-threshold` alone), chosen on the built-in
# qwenimage-mini (128x128, 20 steps, CFG 4): at 0.25 it skips 26 of 40 transformer passes, 2.04x end to end
# (benchmarks/bench_cache.py, 2 prompts x 3 rounds, AMD EPYC family 26, quiet), and the eval harness's exact
# text accuracy stays that of uncached (held-out en-words test split, n=200: 0.955 both); 0.3 is 2.48x but
# loses 1.5 points (0.940). Images move (40.7 dB PSNR to uncached at 0.25) but the text they draw does not.
DEFAULT_CACHE_THRESHOLD = 0.25


def check_threshold(value: float | None) -> None:
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                              or not 0 <= value < float("inf")):
        raise ValueError(f"cache_threshold must be a finite number >= 0 (0 or None: off), got {value!r}")


@dataclass
class FirstBlockCache:
    """The cache of one transformer pass over a fixed batch of rows; call it in place of the model."""

    thresholds: torch.Tensor  # [B] relative change below which a row skips; <= 0: the row always computes
    first: torch.Tensor | None = None  # [B, S_img, D] first block's image residual at each row's last full step
    rest: torch.Tensor | None = None  # [B, S_img, D] remaining blocks' image residual from that step
    skipped: torch.Tensor = field(init=False)  # [B] steps each row skipped
    steps: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.skipped = torch.zeros(self.thresholds.shape[0], dtype=torch.long)

    def __call__(self, model: nn.Module, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                 timestep: torch.Tensor, img_shapes: list[SampleShapes],
                 encoder_hidden_states_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The model's forward (same arguments, same result for rows that compute) with per-row skipping.
        hidden_states [B, S_img, C_in] -> velocity [B, S_img, C_out]."""
        batch, image_len, _ = hidden_states.shape
        if batch != self.thresholds.shape[0]:
            raise ValueError(f"this step cache holds {self.thresholds.shape[0]} rows, got a batch of {batch}")
        shapes = normalize_img_shapes(img_shapes, batch, image_len)
        img = model.img_in(hidden_states)  # [B, S_img, D]
        txt = model.txt_in(model.txt_norm(encoder_hidden_states))  # [B, S_txt, D]
        ctx = model.block_context(img, timestep, shapes, txt.shape[1], encoder_hidden_states_mask, None)
        blocks = model.transformer_blocks
        first_img, txt = blocks[0](img, txt, ctx)  # [B, S_img, D], [B, S_txt, D]
        first = first_img - img  # [B, S_img, D]
        skip = self.can_skip(first, valid_tokens(shapes, image_len, img.device))  # [B] bool
        compute = (~skip).nonzero().flatten().tolist()

        out = first_img + self.rest if bool(skip.any()) else first_img  # [B, S_img, D]
        if compute:
            everyone = len(compute) == batch
            rows_img = first_img if everyone else first_img[compute]
            rows_txt, rows_ctx = (txt, ctx) if everyone else (txt[compute], select_context(ctx, compute))
            for block in blocks[1:]:
                rows_img, rows_txt = block(rows_img, rows_txt, rows_ctx)
            self.remember(compute, first, rows_img - (first_img if everyone else first_img[compute]))
            out = rows_img if everyone else out.index_copy(0, torch.tensor(compute, device=out.device), rows_img)
        self.skipped += skip.cpu().long()
        self.steps += 1
        return model.proj_out(model.norm_out(out, ctx.temb))  # [B, S_img, C_out]

    def can_skip(self, first: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """first [B, S_img, D], valid [B, S_img, 1] -> [B] bool: rows whose first residual moved less than
        their threshold since their last full step."""
        if self.first is None:
            return torch.zeros(first.shape[0], dtype=torch.bool, device=first.device)
        if self.first.shape != first.shape:
            raise ValueError(f"step cache built for shape {list(self.first.shape)}, got {list(first.shape)}")
        moved = ((first.float() - self.first.float()).abs() * valid).sum(dim=(1, 2))  # [B]
        size = (self.first.float().abs() * valid).sum(dim=(1, 2))  # [B]
        change = moved / size.clamp_min(torch.finfo(torch.float32).tiny)
        thresholds = self.thresholds.to(first.device)
        return (thresholds > 0) & (change < thresholds)

    def remember(self, rows: list[int], first: torch.Tensor, rest: torch.Tensor) -> None:
        """Store the first residual [B, S_img, D] of `rows` and their remaining-blocks residual [len(rows), ...]."""
        if self.first is None:
            self.first, self.rest = first.clone(), torch.zeros_like(first)
        index = torch.tensor(rows, device=first.device)
        self.first.index_copy_(0, index, first[rows])
        self.rest.index_copy_(0, index, rest)


def valid_tokens(shapes: list[SampleShapes], image_len: int, device: torch.device) -> torch.Tensor:
    """[B, S_img, 1] float, 1 on each row's real image tokens (target and condition images), 0 on padding."""
    counts = torch.tensor([image_token_count(s) for s in shapes], device=device)
    return (torch.arange(image_len, device=device)[None, :] < counts[:, None])[..., None].float()


def select_context(ctx: BlockContext, rows: list[int]) -> BlockContext:
    """The block context of a subset of the batch rows."""
    def pick(value):
        if isinstance(value, Rotation):
            return Rotation(value.phases[rows])
        return value[rows] if isinstance(value, torch.Tensor) else value

    return dataclasses.replace(ctx, **{f.name: pick(getattr(ctx, f.name)) for f in dataclasses.fields(ctx)})


class StepCaching:
    """The step caches of one sampling run over B requests: one `FirstBlockCache` per transformer pass."""

    def __init__(self, thresholds: torch.Tensor):
        self.thresholds = thresholds  # [B]
        self.passes: list[tuple[list[int], FirstBlockCache]] = []

    def for_rows(self, rows: list[int]) -> FirstBlockCache:
        """A cache for a pass whose batch rows are the requests `rows` (a request may appear twice: cond, uncond)."""
        cache = FirstBlockCache(self.thresholds[rows])
        self.passes.append((rows, cache))
        return cache

    def skipped(self) -> list[int]:
        """Per request: the transformer row-passes skipped so far (conditional and unconditional counted apart)."""
        counts = [0] * self.thresholds.shape[0]
        for rows, cache in self.passes:
            for row, n in zip(rows, cache.skipped.tolist()):
                counts[row] += n
        return counts
