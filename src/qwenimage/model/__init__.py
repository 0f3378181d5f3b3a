"""The MMDiT transformer and its parts."""

from qwenimage.model.config import MMDIT_PRESETS, MMDiTConfig, mmdit_preset
from qwenimage.model.mmdit import QwenImageMMDiT

__all__ = ["MMDIT_PRESETS", "MMDiTConfig", "QwenImageMMDiT", "mmdit_preset"]
