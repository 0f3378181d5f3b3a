"""The EMA of the training weights: with warmup, early averages follow the training weights instead of keeping a
decay^n share of the weights the run started from."""

import pytest
import torch
from torch import nn

from qwenimage.train.ema import EMA


def test_the_warmup_decay_schedule_and_its_cap():
    ema = EMA(nn.Linear(2, 2), decay=0.995)
    assert ema.decay_at(1) == pytest.approx(2 / 11) and ema.decay_at(125) == pytest.approx(126 / 135)
    assert ema.decay_at(10_000) == 0.995  # capped at the configured decay (from update 1,791 on)
    assert EMA(nn.Linear(2, 2), decay=0.995, warmup=False).decay_at(1) == 0.995


@pytest.mark.parametrize("warmup", [True, False])
def test_after_a_far_move_the_average_holds_what_the_schedule_says_of_the_start(warmup):
    model = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    ema = EMA(model, decay=0.995, warmup=warmup)
    with torch.no_grad():
        model.weight.fill_(1.0)  # the run moved far from where it started, then stayed
    for n in range(1, 126):
        ema.update(model, n)
    start_share = 1.0
    for n in range(1, 126):
        start_share *= ema.decay_at(n)
    shadow = ema.state_dict()["weight"]
    assert torch.allclose(shadow, torch.full((3, 3), 1.0 - start_share), atol=1e-6)
    assert (start_share < 0.001) if warmup else (0.5 < start_share < 0.55)  # 0.995^125 = 0.53 without warmup
