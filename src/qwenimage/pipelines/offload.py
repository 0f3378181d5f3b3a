"""Sequential CPU offload: a component sits on the accelerator only while it is used.

The pipeline uses its components in a fixed order (condition encoder -> transformer -> VAE), so with
offload on, peak accelerator memory is the largest component plus activations, not the sum.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


class Offloader:
    def __init__(self, device: torch.device, enabled: bool = False):
        self.device = device
        self.enabled = enabled and device.type != "cpu"

    def place(self, *modules: nn.Module) -> None:
        """Initial placement: on the device, or parked on the CPU when offloading."""
        for module in modules:
            module.to("cpu" if self.enabled else self.device)

    @contextmanager
    def on_device(self, module: nn.Module) -> Iterator[nn.Module]:
        if not self.enabled:
            yield module
            return
        module.to(self.device)
        try:
            yield module
        finally:
            module.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
