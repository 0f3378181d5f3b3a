"""Errors raised while reading configs and checkpoints; messages always name the file and the key."""


class ConfigError(ValueError):
    """A config.json (or config dict) that does not describe a valid model."""


class CheckpointError(ValueError):
    """A weights file that is missing, truncated, or does not match the model."""
