"""qwenimage: the Qwen-Image system (MMDiT + Wan VAE + Qwen2.5-VL conditioning), written from scratch.

Time convention, used everywhere in the package: t in [0, 1], t = 1 is pure noise,
x_t = (1 - t) * x0 + t * noise, and the model predicts the velocity v = noise - x0.
"""

__version__ = "0.1.0"

import logging as _logging


class _OptionalKernelNoise(_logging.Filter):
    """torchao (the `quant` extra), which transformers imports whenever it is installed, logs on CPU-only builds
    that its CUDA kernels (and Triton) did not load, and torch logs a deprecation for its enums: at every
    command's start, about nothing the user did. Only those import-time messages are dropped."""

    def filter(self, record: _logging.LogRecord) -> bool:
        message = str(record.msg)
        return not ((message.startswith("Failed to load") and "torchao" in message)
                    or "Detected no triton" in message
                    or "is now natively supported by torch.compile" in message)


# a logger's filters see only the records made by that logger, not its children's: each one is named
for _name in ("torchao", "torchao.kernel.intmm", "torch.utils._pytree"):
    _logging.getLogger(_name).addFilter(_OptionalKernelNoise())

from qwenimage.allocator import tune_malloc as _tune_malloc  # noqa: E402  (process-wide, see allocator.py)

_tune_malloc()
