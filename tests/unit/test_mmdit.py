import pytest
import torch

from qwenimage.model import MMDiTConfig, QwenImageMMDiT, mmdit_preset
from qwenimage.model.layers import sinusoidal_embedding
from qwenimage.model.rope import MSRoPE, centred, image_positions, text_offset
from tests.helpers import perturb_

TOL = 1e-5


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return perturb_(QwenImageMMDiT(mmdit_preset("tiny"))).eval()


def tokens(shapes):
    return sum(f * h * w for f, h, w in shapes)


def test_fresh_model_starts_as_identity_and_outputs_zero():
    m = QwenImageMMDiT(mmdit_preset("tiny"))
    out = m(torch.randn(1, 16, 64), torch.randn(1, 5, 32), torch.tensor([0.5]), [(1, 4, 4)])
    assert out.shape == (1, 16, 64)
    assert torch.count_nonzero(out) == 0


@pytest.mark.parametrize("shapes_a,shapes_b", [
    ([(1, 4, 8)], [(1, 8, 4)]),  # same token count, different layout
    ([(1, 6, 6)], [(1, 2, 10)]),  # different token counts: sample b is padded
    ([(1, 4, 4), (1, 2, 6)], [(1, 6, 2), (1, 4, 6), (1, 2, 2)]),  # edit layouts with conditions
])
def test_per_sample_rope_batch_equals_each_sample_alone(model, shapes_a, shapes_b):
    len_a, len_b = tokens(shapes_a), tokens(shapes_b)
    image_len = max(len_a, len_b)
    hidden = torch.randn(2, image_len, 64)
    text = torch.randn(2, 7, 32)
    t = torch.tensor([0.8, 0.3])
    with torch.no_grad():
        batched = model(hidden, text, t, [shapes_a, shapes_b])
        alone_a = model(hidden[:1, :len_a], text[:1], t[:1], [shapes_a])
        alone_b = model(hidden[1:, :len_b], text[1:], t[1:], [shapes_b])
    assert (batched[0, :len_a] - alone_a[0]).abs().max() <= TOL
    assert (batched[1, :len_b] - alone_b[0]).abs().max() <= TOL
    # the shapes really matter: running sample b with sample a's layout gives another answer
    if len_a == len_b:
        with torch.no_grad():
            wrong = model(hidden[1:], text[1:], t[1:], [shapes_a])
        assert (wrong - alone_b).abs().max() > 1e-3


def test_mixed_text_lengths_and_image_sizes_in_one_batch(model):
    text = torch.randn(2, 9, 32)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, 5:] = False
    hidden = torch.randn(2, 24, 64)
    with torch.no_grad():
        batched = model(hidden, text, torch.tensor([0.6, 0.6]), [[(1, 4, 4)], [(1, 4, 6)]], mask)
        alone = model(hidden[:1, :16], text[:1, :5], torch.tensor([0.6]), [[(1, 4, 4)]])
    assert (batched[0, :16] - alone[0]).abs().max() <= TOL


def test_rope_positions_are_centred_and_text_follows_largest_half_grid():
    assert centred(4, torch.device("cpu")).tolist() == [-2, -1, 0, 1]
    assert centred(5, torch.device("cpu")).tolist() == [-3, -2, -1, 0, 1]
    pos = image_positions([(1, 2, 3), (1, 1, 1)], torch.device("cpu"))
    assert pos.shape == (7, 3)
    assert pos[:6, 0].tolist() == [0] * 6 and pos[6].tolist() == [1, -1, -1]
    assert pos[:6, 1].tolist() == [-1, -1, -1, 0, 0, 0]
    assert pos[:3, 2].tolist() == [-2, -1, 0]
    assert text_offset([(1, 6, 10), (1, 12, 2)]) == 6
    rope = MSRoPE((4, 6, 6))
    img_rot, txt_rot = rope([[(1, 2, 2)], [(1, 4, 4)]], text_len=3, image_len=16, device=torch.device("cpu"))
    assert img_rot.phases.shape == (2, 16, 8)
    assert torch.all(img_rot.phases[0, 4:] == 1)  # padding tokens are not rotated
    assert not torch.allclose(txt_rot.phases[0], txt_rot.phases[1])  # text offsets differ per sample


def test_rotation_preserves_norm_of_each_pair():
    rope = MSRoPE((4, 6, 6))
    img_rot, _ = rope([[(1, 3, 3)]], text_len=1, image_len=9, device=torch.device("cpu"))
    x = torch.randn(1, 9, 2, 16)
    y = img_rot.rotate(x)
    assert torch.allclose(x.unflatten(-1, (-1, 2)).norm(dim=-1), y.unflatten(-1, (-1, 2)).norm(dim=-1), atol=1e-5)
    assert not torch.allclose(x, y)


def test_timestep_embedding_is_cos_then_sin():
    emb = sinusoidal_embedding(torch.tensor([0.0, 0.5]))
    assert emb.shape == (2, 256)
    assert torch.all(emb[0, :128] == 1) and torch.all(emb[0, 128:] == 0)
    assert torch.isclose(emb[1, 0], torch.cos(torch.tensor(500.0)))


def test_activation_checkpointing_gives_the_same_gradients(model):
    hidden, text = torch.randn(1, 16, 64), torch.randn(1, 4, 32)

    def grads():
        model.zero_grad()
        model(hidden, text, torch.tensor([0.4]), [(1, 4, 4)]).square().mean().backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain = grads()
    model.set_activation_checkpointing(True)
    try:
        checkpointed = grads()
    finally:
        model.set_activation_checkpointing(False)
    assert len(plain) == len(checkpointed) > 0
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, checkpointed))


def test_fp16_blocks_clip_instead_of_overflowing():
    m = perturb_(QwenImageMMDiT(mmdit_preset("tiny")), scale=0.01).half()
    block = m.transformer_blocks[0]
    dim = 64
    with torch.no_grad():  # gates 1, and an MLP whose output alone is 6e4: the residual sum overflows fp16
        block.img_mod[1].weight.zero_()
        block.img_mod[1].bias.zero_()
        block.img_mod[1].bias[2 * dim:3 * dim] = 1
        block.img_mod[1].bias[5 * dim:] = 1
        block.img_mlp.net[2].bias.fill_(6e4)
        ctx = m.block_context(torch.zeros(1, 4, dim, dtype=torch.half), torch.tensor([0.5]), [[(1, 2, 2)]], 2,
                              None, None)
        img, _ = block(torch.full((1, 4, dim), 3e4, dtype=torch.half), torch.randn(1, 2, dim).half(), ctx)
    assert torch.isfinite(img).all()
    assert img.max() == 65504


def test_config_errors_name_the_bad_values():
    with pytest.raises(ValueError, match=r"sums to 20, expected attention_head_dim 16"):
        MMDiTConfig(attention_head_dim=16, num_attention_heads=2, axes_dims_rope=(4, 8, 8))
    with pytest.raises(ValueError, match="unknown transformer preset 'huge'"):
        mmdit_preset("huge")


def test_img_shapes_that_do_not_fit_are_rejected(model):
    with pytest.raises(ValueError, match=r"sample 0: img_shapes \[\(1, 8, 8\)\] make 64 tokens"):
        model(torch.randn(1, 16, 64), torch.randn(1, 4, 32), torch.tensor([0.5]), [(1, 8, 8)])
    with pytest.raises(ValueError, match="3 samples but the batch has 2"):
        model(torch.randn(2, 16, 64), torch.randn(2, 4, 32), torch.tensor([0.5]), [(1, 4, 4)] * 3)
