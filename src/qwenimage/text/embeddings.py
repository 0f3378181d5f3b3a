"""`PromptEmbeddings`: the condition sequence the MMDiT reads, and how it is cut out of the VL hidden states."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PromptEmbeddings:
    """Right-padded condition tokens: `embeds` [B, S_txt, D], `mask` [B, S_txt] bool (True = real token)."""

    embeds: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        if self.embeds.ndim != 3 or self.mask.shape != self.embeds.shape[:2]:
            raise ValueError(f"embeds {tuple(self.embeds.shape)} and mask {tuple(self.mask.shape)} "
                             "must be [B, S, D] and [B, S]")
        self.mask = self.mask.to(torch.bool)

    @property
    def batch_size(self) -> int:
        return self.embeds.shape[0]

    @property
    def lengths(self) -> torch.Tensor:
        """Real tokens per sample, [B]."""
        return self.mask.sum(dim=1)

    def mask_or_none(self) -> torch.Tensor | None:
        """The mask, or None when every token is real (lets attention skip masking, as the reference does)."""
        return None if bool(self.mask.all()) else self.mask

    def repeat(self, n: int) -> PromptEmbeddings:
        """Each sample n times in a row (sample 0 x n, then sample 1 x n, ...): images per prompt."""
        return PromptEmbeddings(self.embeds.repeat_interleave(n, dim=0), self.mask.repeat_interleave(n, dim=0))

    def truncate(self, max_length: int) -> PromptEmbeddings:
        return PromptEmbeddings(self.embeds[:, :max_length], self.mask[:, :max_length])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> PromptEmbeddings:
        """Moves both tensors; `dtype` applies to the embeddings only."""
        return PromptEmbeddings(self.embeds.to(device=device, dtype=dtype), self.mask.to(device=device))


def gather_valid_tokens(hidden: torch.Tensor, attention_mask: torch.Tensor, drop: int) -> PromptEmbeddings:
    """Per sample: the hidden states of real tokens (by `attention_mask`), minus the first `drop`, right-padded
    with zeros to the longest sample.

    hidden [B, S, D], attention_mask [B, S] -> PromptEmbeddings [B, S_txt, D] with S_txt = max kept length.
    """
    kept = [h[m.bool()][drop:] for h, m in zip(hidden, attention_mask)]  # B x [L_b, D]
    length = max(k.shape[0] for k in kept)
    embeds = hidden.new_zeros(len(kept), length, hidden.shape[-1])  # [B, S_txt, D]
    mask = torch.zeros(len(kept), length, dtype=torch.bool, device=hidden.device)  # [B, S_txt]
    for i, k in enumerate(kept):
        embeds[i, : k.shape[0]] = k
        mask[i, : k.shape[0]] = True
    return PromptEmbeddings(embeds, mask)
