"""The edit-token weighting of the flow loss (objective.edit_weight): which tokens count as changed, and the
weighted mean the loss becomes."""

import pytest
import torch

from qwenimage.sampling.conditioning import TextConditioning, TokenLayout
from qwenimage.train.config import ObjectiveConfig, TrainConfig
from qwenimage.train.objective import FlowBatch, changed_tokens, flow_matching_loss


class ZeroVelocity(torch.nn.Module):
    """A stand-in transformer that predicts zero velocity: the loss is then the weighted mean of (noise - x0)^2."""

    def forward(self, joint, text, sigma, img_shapes, encoder_hidden_states_mask=None):
        return torch.zeros_like(joint)


def edit_batch() -> tuple[FlowBatch, torch.Tensor]:
    """Three samples of a 2x3 target grid, 8 channels: an edit whose tokens 1 and 4 changed (its source is the
    last of two condition images), a text-to-image sample, and an edit whose source has another grid."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 6, 8, generator=g)
    source = x0[0].clone()
    source[1] += 1.0   # mean |difference| 1.0: changed
    source[4] -= 0.6   # 0.6: changed at the default threshold 0.5
    source[2] += 0.2   # 0.2: unchanged
    other = torch.randn(4, 8, generator=g)  # a first condition image of another size (2x2)
    layout = TokenLayout([(2, 3), (2, 3), (2, 3)], [[(2, 2), (2, 3)], [], [(3, 2)]],
                         [torch.cat([other, source]), None, torch.randn(6, 8, generator=g)])
    text = TextConditioning(torch.zeros(3, 4, 16))
    return FlowBatch(x0, layout, text), torch.tensor([1, 4])


def test_changed_tokens_are_those_that_differ_from_the_last_condition_image():
    batch, expected = edit_batch()
    changed = changed_tokens(batch, threshold=0.5)[..., 0]  # [B, S]
    assert changed.shape == (3, 6)
    assert torch.equal(changed[0].nonzero()[:, 0], expected)
    assert not changed[1].any()  # text-to-image: nothing to compare with
    assert not changed[2].any()  # the source has another grid: no token-by-token comparison
    assert torch.equal(changed_tokens(batch, threshold=0.7)[0, :, 0].nonzero()[:, 0], torch.tensor([1]))


def test_the_edit_weight_makes_the_loss_a_weighted_mean_over_real_tokens():
    batch, expected = edit_batch()
    noise = torch.randn(batch.x0.shape, generator=torch.Generator().manual_seed(1))
    t = torch.full((3,), 0.5)
    err = (noise - batch.x0).square().mean(dim=-1)  # [B, S] per-token error of a zero prediction
    plain = flow_matching_loss(ZeroVelocity(), batch, t, noise)
    torch.testing.assert_close(plain, err.mean(dim=1))
    weighted = flow_matching_loss(ZeroVelocity(), batch, t, noise, edit_weight=4.0, edit_threshold=0.5)
    weights = torch.ones(6)
    weights[expected] = 5.0
    torch.testing.assert_close(weighted[0], (err[0] * weights).sum() / weights.sum())
    torch.testing.assert_close(weighted[1:], plain[1:])  # no changed tokens: the plain mean


def test_padding_tokens_stay_out_of_the_weighted_loss():
    batch, _ = edit_batch()
    small = TokenLayout([(1, 3), (2, 3), (2, 3)], [[(1, 3)], [], []],
                        [batch.x0[0, :3] + 2.0, None, None])  # every real token of sample 0 changed
    padded = FlowBatch(batch.x0, small, batch.text)
    noise = torch.randn(batch.x0.shape, generator=torch.Generator().manual_seed(2))
    loss = flow_matching_loss(ZeroVelocity(), padded, torch.full((3,), 0.3), noise, edit_weight=9.0)
    torch.testing.assert_close(loss[0], (noise[0, :3] - batch.x0[0, :3]).square().mean())


@pytest.mark.parametrize("field, value", [("edit_weight", -1.0), ("edit_weight", float("inf")),
                                          ("edit_threshold", 0.0)])
def test_bad_edit_weighting_is_named(field, value):
    with pytest.raises(ValueError, match=f"objective.{field} must be"):
        TrainConfig(objective=ObjectiveConfig(**{field: value}))
