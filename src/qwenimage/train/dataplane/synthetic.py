"""A stand-in for Qwen2.5-VL + VAE in tests and benchmarks: a chosen cost per sample, deterministic tensors."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import torch

from qwenimage.train.data import EncodedSample
from qwenimage.train.records import Record


@dataclass(frozen=True)
class SyntheticEncoder:
    """Costs `seconds` per sample, sleeping (like a GPU-bound encoder, which leaves the CPU free) or, with
    `busy`, spinning on the CPU; returns tensors seeded by (record id, task, resolution). It is its own
    factory, so it can stand as a ProducerSpec's `encoders`."""

    seconds: float = 0.0
    channels: int = 16
    text_tokens: int = 8
    text_dim: int = 32
    busy: bool = False

    def __call__(self) -> SyntheticEncoder:
        return self

    def encode_uncached(self, record: Record, task: str, resolution: int) -> EncodedSample:
        deadline = time.perf_counter() + self.seconds
        if self.busy:
            while time.perf_counter() < deadline:
                pass
        elif self.seconds > 0:
            time.sleep(self.seconds)
        seed = int(hashlib.sha256(f"{record.id}|{task}|{resolution}".encode()).hexdigest()[:15], 16)
        gen = torch.Generator().manual_seed(seed)
        side = max(2, resolution // 8)
        latents = torch.randn(self.channels, side, side, generator=gen)  # [C, h, w]
        text = torch.randn(self.text_tokens, self.text_dim, generator=gen)  # [S_txt, D]
        conditions = [] if task == "t2i" else [torch.randn(self.channels, side, side, generator=gen)]
        return EncodedSample(latents, text, conditions)
