import pytest
import torch

from qwenimage.model import QwenImageMMDiT, mmdit_preset
from qwenimage.sampling.conditioning import TextConditioning, TokenLayout, stack_text
from qwenimage.sampling.guidance import (CPU_BATCHED_CFG_MAX_TOKENS, Guidance, batch_cfg_by_default, guided_velocity,
                                        renormalized_cfg, transformer_velocity)
from qwenimage.sampling.sampler import InpaintBlend, sample, start_index
from qwenimage.sampling.schedule import noise_to, sigmas_for
from tests.helpers import perturb_


def test_renormalized_cfg_keeps_the_conditional_norm_per_token():
    cond, uncond = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    out = renormalized_cfg(cond, uncond, torch.tensor([4.0, 2.0]))
    assert torch.allclose(out.norm(dim=-1), cond.norm(dim=-1), atol=1e-5)
    direction = uncond + 4.0 * (cond - uncond)
    assert torch.allclose(torch.nn.functional.cosine_similarity(out[0], direction[0], dim=-1), torch.ones(5))
    padded = renormalized_cfg(torch.zeros(1, 2, 8), torch.zeros(1, 2, 8), torch.tensor([3.0]))
    assert torch.equal(padded, torch.zeros(1, 2, 8))  # padding tokens stay 0, no NaN


def test_sampler_reaches_x0_for_an_exact_velocity():
    x0, noise = torch.randn(2, 6, 4), torch.randn(2, 6, 4)
    sigmas = torch.stack([sigmas_for(5, 256), sigmas_for(5, 4096)])
    calls, estimates = [], []

    def callback(i, n, x, denoised):
        calls.append((i, n))
        estimates.append(denoised)

    out = sample(lambda x, s: noise - x0, noise, sigmas, callback=callback)
    assert torch.allclose(out, x0, atol=1e-5)
    assert calls == [(i, 5) for i in range(5)]
    assert all(torch.allclose(e, x0, atol=1e-5) for e in estimates)  # an exact velocity points at x0 at every step
    start = start_index(5, 0.6)
    assert start == 2
    mid = sample(lambda x, s: noise - x0, noise_to(x0, noise, sigmas[:, start, None, None]), sigmas, start=start)
    assert torch.allclose(mid, x0, atol=1e-5)
    with pytest.raises(ValueError, match="strength must be in"):
        start_index(5, 1.5)


def test_inpaint_blend_keeps_the_known_region_exactly():
    known, noise = torch.randn(1, 4, 2), torch.randn(1, 4, 2)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0])[None, :, None].expand(1, 4, 2)
    sigmas = sigmas_for(3, 256)[None]
    blend = InpaintBlend(known, noise, mask, sigmas)
    out = sample(lambda x, s: torch.ones_like(x), noise, sigmas, hook=blend)
    assert torch.equal(out[:, 2:], known[:, 2:])
    assert not torch.allclose(out[:, :2], known[:, :2])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return perturb_(QwenImageMMDiT(mmdit_preset("tiny"))).eval()


def test_layout_assembles_targets_and_conditions_per_sample(model):
    refs = [torch.randn(6, 64), None]
    layout = TokenLayout([(2, 2), (2, 3)], [[(2, 3)], []], refs)
    x = torch.randn(2, 6, 64)
    joint = layout.assemble(x)
    assert joint.shape == (2, 10, 64)
    assert torch.equal(joint[0, :4], x[0, :4]) and torch.equal(joint[0, 4:], refs[0])
    assert torch.equal(joint[1, :6], x[1]) and torch.all(joint[1, 6:] == 0)
    assert layout.img_shapes() == [[(1, 2, 2), (1, 2, 3)], [(1, 2, 3)]]
    with pytest.raises(ValueError, match=r"sample 0: condition grids \[\(2, 3\)\] need 6 tokens, got 5"):
        TokenLayout([(2, 2)], [[(2, 3)]], [torch.randn(5, 64)])


def test_layout_image_len_counts_conditions_of_the_longest_sample():
    layout = TokenLayout([(2, 2), (2, 3)], [[(2, 3)], []], [torch.randn(6, 64), None])
    assert layout.image_len() == 10


def test_automatic_cfg_batching_choice():
    assert batch_cfg_by_default(torch.device("cuda"), 10_000)
    assert batch_cfg_by_default(torch.device("cpu"), CPU_BATCHED_CFG_MAX_TOKENS)
    assert not batch_cfg_by_default(torch.device("cpu"), CPU_BATCHED_CFG_MAX_TOKENS + 1)


def test_batched_and_sequential_cfg_agree_and_mixed_rows(model):
    text = TextConditioning(torch.randn(3, 5, 32))
    negative = stack_text([TextConditioning(torch.randn(1, 3, 32)), TextConditioning(torch.randn(1, 4, 32)),
                           TextConditioning(torch.randn(1, 2, 32))])
    layout = TokenLayout([(2, 2), (2, 3), (3, 2)])
    x, sigma = torch.randn(3, 6, 64), torch.tensor([0.9, 0.5, 0.7])
    scales = torch.tensor([4.0, 1.0, 2.5])  # the middle sample has no CFG
    with torch.no_grad():
        batched = guided_velocity(model, layout, text, Guidance(scales, negative, batched=True))(x, sigma)
        sequential = guided_velocity(model, layout, text, Guidance(scales, negative, batched=False))(x, sigma)
        plain = transformer_velocity(model, layout, text)(x, sigma)
    assert (batched - sequential).abs().max() <= 1e-5
    assert torch.allclose(batched[1], plain[1], atol=1e-5)
    assert not torch.allclose(batched[0], plain[0], atol=1e-3)
