"""Curriculum: ordered stages, each with its resolution tier, data selection, task mix and length."""

from __future__ import annotations

from qwenimage.train.config import StageConfig


def stage_at(stages: list[StageConfig], step: int) -> tuple[int, int]:
    """(stage index, step within the stage) for a global optimizer step; past the end: the last stage."""
    start = 0
    for index, stage in enumerate(stages):
        if step < start + stage.steps:
            return index, step - start
        start += stage.steps
    return len(stages) - 1, step - (start - stages[-1].steps)
