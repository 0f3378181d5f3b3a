"""Test-only fault injection: make a training process SIGKILL itself at a chosen moment.

    QWENIMAGE_KILL_AT=checkpoint:4   # die inside the checkpoint write of step 4 (shards written, no marker yet)
    QWENIMAGE_KILL_AT=log:3          # die in the middle of log.jsonl's append of step 3 (half a line written)

Unset (always, outside the reliability tests) it costs one environment lookup per call. A kill -9 cannot be
caught or cleaned up after, so this is exactly what a crash, an OOM kill or a pre-empted node leaves behind.
"""

from __future__ import annotations

import os
import signal
from typing import TextIO

ENV = "QWENIMAGE_KILL_AT"


def armed(point: str, step: int) -> bool:
    return os.environ.get(ENV, "") == f"{point}:{step}"


def kill_point(point: str, step: int) -> None:
    """SIGKILL this process if QWENIMAGE_KILL_AT names this point and step."""
    if armed(point, step):
        os.kill(os.getpid(), signal.SIGKILL)


def write_text(handle: TextIO, text: str, point: str, step: int) -> None:
    """handle.write(text); when armed, write half of it, flush, and die (a torn write)."""
    if armed(point, step):
        handle.write(text[: len(text) // 2])
        handle.flush()
        kill_point(point, step)
    handle.write(text)
