"""What the sampler feeds the transformer besides the noisy target: text states and the token layout.

A batch may mix image sizes and numbers of condition images. Each sample's sequence is
[its target tokens | its condition-image tokens | padding], and `TokenLayout` moves between that joint
sequence and the padded target tokens [B, S_tgt, C] that the sampler integrates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class TextConditioning:
    embeds: torch.Tensor  # [B, S_txt, D_txt]
    mask: torch.Tensor | None = None  # [B, S_txt] bool (True = real token); None when all are real

    def select(self, rows: list[int]) -> TextConditioning:
        return TextConditioning(self.embeds[rows], None if self.mask is None else self.mask[rows])

    def full_mask(self) -> torch.Tensor:
        if self.mask is not None:
            return self.mask.bool()
        return torch.ones(self.embeds.shape[:2], dtype=torch.bool, device=self.embeds.device)


def stack_text(parts: list[TextConditioning]) -> TextConditioning:
    """Concatenate along the batch, right-padding to the longest text; the mask is dropped when all ones."""
    length = max(p.embeds.shape[1] for p in parts)
    embeds, masks = [], []
    for p in parts:
        pad = length - p.embeds.shape[1]
        embeds.append(torch.nn.functional.pad(p.embeds, (0, 0, 0, pad)))
        masks.append(torch.nn.functional.pad(p.full_mask(), (0, pad), value=False))
    mask = torch.cat(masks)
    return TextConditioning(torch.cat(embeds), None if bool(mask.all()) else mask)


@dataclass
class TokenLayout:
    """Per-sample token grids: the target (rows, cols) and the condition images with their packed tokens."""

    target_grids: list[tuple[int, int]]
    reference_grids: list[list[tuple[int, int]]] = field(default_factory=list)
    reference_tokens: list[torch.Tensor | None] = field(default_factory=list)  # per sample [S_ref, C] or None

    def __post_init__(self) -> None:
        batch = len(self.target_grids)
        self.reference_grids = self.reference_grids or [[] for _ in range(batch)]
        self.reference_tokens = self.reference_tokens or [None] * batch
        for b, (grids, tokens) in enumerate(zip(self.reference_grids, self.reference_tokens)):
            expected = sum(h * w for h, w in grids)
            found = 0 if tokens is None else tokens.shape[0]
            if expected != found:
                raise ValueError(f"sample {b}: condition grids {grids} need {expected} tokens, got {found}")

    @property
    def batch(self) -> int:
        return len(self.target_grids)

    @property
    def target_lengths(self) -> list[int]:
        return [h * w for h, w in self.target_grids]

    def img_shapes(self) -> list[list[tuple[int, int, int]]]:
        return [[(1, *t)] + [(1, *r) for r in refs] for t, refs in zip(self.target_grids, self.reference_grids)]

    def select(self, rows: list[int]) -> TokenLayout:
        return TokenLayout([self.target_grids[r] for r in rows], [self.reference_grids[r] for r in rows],
                           [self.reference_tokens[r] for r in rows])

    def image_len(self) -> int:
        """S_img: the longest sample's target + condition tokens (the joint sequence length before text)."""
        return max(h * w + sum(rh * rw for rh, rw in refs) for (h, w), refs in zip(self.target_grids,
                                                                                 self.reference_grids))

    def uniform(self) -> bool:
        return len(set(self.target_grids)) == 1 and len({tuple(g) for g in self.reference_grids}) == 1

    def assemble(self, x: torch.Tensor) -> torch.Tensor:
        """Padded targets [B, S_tgt, C] -> joint sequences [B, S_img, C] (target, conditions, padding)."""
        if self.uniform():
            refs = self.reference_tokens
            return x if refs[0] is None else torch.cat([x, torch.stack(refs).to(x.dtype)], dim=1)
        rows = []
        for b, n in enumerate(self.target_lengths):
            ref = self.reference_tokens[b]
            rows.append(x[b, :n] if ref is None else torch.cat([x[b, :n], ref.to(x.dtype)]))
        return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)

    def extract(self, out: torch.Tensor, target_len: int) -> torch.Tensor:
        """Joint model output [B, S_img, C] -> the target tokens [B, target_len, C], zero beyond each length."""
        if self.uniform():
            return out[:, :target_len]
        result = out.new_zeros(out.shape[0], target_len, out.shape[2])
        for b, n in enumerate(self.target_lengths):
            result[b, :n] = out[b, :n]
        return result

    def target_mask(self, target_len: int, device: torch.device) -> torch.Tensor:
        """[B, target_len, 1] bool, True on real target tokens."""
        lengths = torch.tensor(self.target_lengths, device=device)
        return (torch.arange(target_len, device=device)[None, :] < lengths[:, None])[..., None]
