"""Our MMDiT against diffusers' QwenImageTransformer2DModel (the oracle), same weights via safetensors."""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import QwenImageTransformer2DModel  # noqa: E402

from qwenimage.model import QwenImageMMDiT  # noqa: E402

TINY = dict(patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16,
            num_attention_heads=3, joint_attention_dim=24, axes_dims_rope=(4, 6, 6))
TOL = 1e-5


def randomize(model: torch.nn.Module) -> None:
    """Perturb the default init so norm scales and biases are not trivial ones and zeros."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)


@pytest.fixture(scope="module", params=[{}, {"zero_cond_t": True}], ids=["base", "zero_cond_t"])
def pair(request, tmp_path_factory):
    torch.manual_seed(0)
    reference = QwenImageTransformer2DModel(**TINY, **request.param).eval()
    randomize(reference)
    folder = tmp_path_factory.mktemp("mmdit")
    reference.save_pretrained(folder)
    ours = QwenImageMMDiT.from_pretrained(folder)
    return reference, ours


def run_both(pair, hidden, text, t, img_shapes, mask=None):
    reference, ours = pair
    with torch.no_grad():
        expected = reference(hidden_states=hidden, encoder_hidden_states=text, encoder_hidden_states_mask=mask,
                             timestep=t, img_shapes=img_shapes, return_dict=False)[0]
        actual = ours(hidden, text, t, img_shapes, encoder_hidden_states_mask=mask)
    return expected, actual


def test_loads_diffusers_folder_strictly(pair):
    reference, ours = pair
    theirs = reference.state_dict()
    mine = ours.state_dict()
    assert list(mine) == list(theirs) or set(mine) == set(theirs)
    for key in theirs:
        assert torch.equal(mine[key], theirs[key]), key


def test_single_image(pair):
    hidden, text = torch.randn(2, 6 * 8, 16), torch.randn(2, 7, 24)
    expected, actual = run_both(pair, hidden, text, torch.tensor([0.9, 0.3]), [[(1, 6, 8)]] * 2)
    assert actual.shape == (2, 48, 16)
    assert actual.std() > 0.05  # a meaningful signal, not a near-zero output that trivially matches
    assert (actual - expected).abs().max() <= TOL


def test_edit_layout_target_and_two_conditions(pair):
    shapes = [(1, 4, 6), (1, 6, 4), (1, 5, 7)]  # target, then two condition images of other sizes
    seq = sum(f * h * w for f, h, w in shapes)
    hidden, text = torch.randn(1, seq, 16), torch.randn(1, 9, 24)
    expected, actual = run_both(pair, hidden, text, torch.tensor([0.5]), [shapes])
    assert (actual - expected).abs().max() <= TOL


def test_padded_text_with_mask(pair):
    hidden, text = torch.randn(2, 16, 16), torch.randn(2, 10, 24)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 6:] = 0
    expected, actual = run_both(pair, hidden, text, torch.tensor([0.7, 0.2]), [[(1, 4, 4)]] * 2, mask)
    assert (actual - expected).abs().max() <= TOL
    # the padded sample equals itself run alone with only its valid tokens
    _, ours = pair
    with torch.no_grad():
        alone = ours(hidden[1:], text[1:, :6], torch.tensor([0.2]), [[(1, 4, 4)]])
    assert (actual[1:] - alone).abs().max() <= TOL
