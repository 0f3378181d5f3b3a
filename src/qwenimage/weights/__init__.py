"""Checkpoint I/O: diffusers-layout component folders, safetensors shards, strict loading."""

from qwenimage.weights.errors import CheckpointError, ConfigError
from qwenimage.weights.pretrained import PretrainedModel

__all__ = ["CheckpointError", "ConfigError", "PretrainedModel"]
