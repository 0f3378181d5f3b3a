"""Errors raised by the condition encoder; each message is one line that names the bad value."""

from qwenimage.images import ImageError  # noqa: F401  (re-exported: image errors are shared)


class PromptError(ValueError):
    """A prompt or an encoding option the text encoder cannot take (too long, empty batch, bad length)."""


class TemplateError(ValueError):
    """A prompt template whose token layout disagrees with the official one for the official tokenizer."""
