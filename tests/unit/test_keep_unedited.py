"""keep_unedited: the edited area from latent differences, the composite, the request checks, the pipeline."""

import numpy as np
import pytest
import torch
from PIL import Image

from qwenimage.pipelines.keep import edited_area, keep_unedited
from qwenimage.pipelines.request import GenerationRequest


def test_edited_area_covers_the_changed_cells_and_one_cell_of_ramp():
    z_source = torch.randn(16, 6, 8)
    z_edit = z_source + 0.05 * torch.randn(16, 6, 8)  # a copy with small drift everywhere
    z_edit[:, 2, 3] += 2.0  # one cell really changed
    mask = edited_area(z_edit, z_source, threshold=0.5, factor=4)
    assert mask.shape == (24, 32)
    assert torch.all(mask[8:12, 12:16] == 1)  # the changed cell's pixels are the edit's
    ring = torch.zeros(24, 32, dtype=torch.bool)
    ring[4:16, 8:20] = True  # the cell and one cell around it
    assert torch.all(mask[~ring] == 0)  # everything further is the source's, exactly
    assert 0 < mask[8:12, 10].min() and mask[8:12, 10].max() < 1  # inside the ring: a ramp, no hard seam
    assert mask[10, 11] > mask[10, 9]  # ... falling away from the edit


def test_an_unchanged_edit_keeps_every_pixel_and_a_changed_one_keeps_none():
    z = torch.randn(16, 4, 4)
    assert edited_area(z, z, 0.5, 8).sum() == 0
    assert torch.all(edited_area(z + 3, z, 0.5, 8) == 1)


def test_composite_takes_the_source_outside_and_the_edit_inside():
    edit, source = torch.full((3, 8, 8), 0.5), torch.full((3, 8, 8), -0.5)
    mask = torch.zeros(8, 8)
    mask[2:4, 2:4] = 1
    mask[5, 5] = 0.25
    out = keep_unedited(edit, source, mask)
    assert torch.all(out[:, 2:4, 2:4] == 0.5) and out[0, 0, 0] == -0.5
    assert torch.isclose(out[1, 5, 5], torch.tensor(0.25 * 0.5 - 0.75 * 0.5))


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match=r"edit latents \(16, 4, 4\) and source latents \(16, 4, 6\) differ"):
        edited_area(torch.zeros(16, 4, 4), torch.zeros(16, 4, 6), 0.5, 8)
    with pytest.raises(ValueError, match="must share their size"):
        keep_unedited(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), torch.zeros(4, 4))


@pytest.mark.parametrize("kwargs, expected", [
    ({"images": ["a.png"], "keep_unedited": 0.0}, "keep_unedited must be a positive number"),
    ({"images": ["a.png"], "keep_unedited": float("nan")}, "keep_unedited must be a positive number"),
    ({"keep_unedited": 0.5}, "not to t2i"),
    ({"init_image": "a.png", "keep_unedited": 0.5}, "not to img2img"),
])
def test_requests_with_a_bad_keep_unedited_are_refused(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        GenerationRequest("x", **kwargs).validate()


def test_cli_keeps_unedited_only_for_instruction_edits(capsys):
    from qwenimage.cli.main import main

    code = main(["edit", "--prompt", "p", "--image", "a.png", "--strength", "0.5", "--keep-unedited"])
    assert code == 2 and "--keep-unedited applies to instruction edits" in capsys.readouterr().err


def test_pipeline_pastes_the_source_back_outside_the_edited_area(tiny_pipeline_dir):
    from qwenimage.pipelines.loading import load_pipeline

    pipe = load_pipeline(tiny_pipeline_dir, dtype=torch.float32)
    rng = np.random.default_rng(0)
    source = Image.fromarray(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))

    def edit(keep):
        return pipe.generate(GenerationRequest("make it red", images=[source], width=48, height=64, num_steps=2,
                                               true_cfg_scale=1.0, seed=3, keep_unedited=keep))[0]

    plain, huge = edit(None), edit(1e9)
    change = (plain.latents - pipe.encode_image(source, sample=False)).abs().mean(dim=0)  # [h, w]
    kept = edit(float(change.flatten().quantile(0.97)))  # a cell or two count as edited
    assert plain.kept_fraction is None and huge.kept_fraction == 1.0 and 0 < kept.kept_fraction < 1
    assert np.array_equal(np.asarray(huge.image), np.asarray(source))  # nothing counts as edited: the source
    assert torch.equal(kept.latents, plain.latents)  # the latents stay the model's
    pixels, original, raw = (np.asarray(im, dtype=np.int16) for im in (kept.image, source, plain.image))
    same = np.all(pixels == original, axis=2)
    assert same.mean() >= kept.kept_fraction - 1e-6  # every kept pixel is the source's
    assert np.any(np.all(pixels == raw, axis=2) & ~same)  # where the edit counts as changed, its own pixels show
