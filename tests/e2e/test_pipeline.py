"""Our pipeline on the tiny folder: independent mixed batches, sizes, seeds, errors."""

import pytest
import torch
from PIL import Image

from qwenimage.pipelines.loading import load_pipeline
from qwenimage.pipelines.request import GenerationRequest, Task
from qwenimage.pipelines.sizes import ASPECT_PRESETS, SizeLimits, resolve_size


@pytest.fixture(scope="module")
def pipe(tiny_pipeline_dir):
    return load_pipeline(tiny_pipeline_dir, dtype=torch.float32)


def requests():
    return [
        GenerationRequest("a cat on a mat", negative_prompt="blurry", width=96, height=64, num_steps=3, seed=1),
        GenerationRequest("一只猫", width=48, height=48, num_steps=3, seed=2),  # no CFG
        GenerationRequest("a long prompt about a very detailed city skyline at dusk", negative_prompt=" ",
                          true_cfg_scale=2.5, width=64, height=112, num_steps=3, seed=3),
        GenerationRequest("repaint it", init_image=Image.new("RGB", (64, 64), (200, 30, 30)), strength=0.5,
                          num_steps=3, seed=4),  # another start step: its own group
    ]


def test_mixed_batch_equals_each_request_alone(pipe):
    batched = pipe.generate(requests())
    alone = [pipe.generate(r)[0] for r in requests()]
    assert [r.image.size for r in batched] == [(96, 64), (48, 48), (64, 112), (64, 64)]
    for b, a in zip(batched, alone):
        assert b.latents.shape == a.latents.shape
        assert (b.latents - a.latents).abs().max() <= 1e-4
    assert not torch.allclose(batched[0].latents[:, :4, :4], batched[2].latents[:, :4, :4])


def test_same_seed_same_image_and_seeds_are_recorded(pipe):
    first = pipe.generate(GenerationRequest("x", width=32, height=32, num_steps=2, seed=11))[0]
    again = pipe.generate(GenerationRequest("x", width=32, height=32, num_steps=2, seed=11))[0]
    other = pipe.generate(GenerationRequest("x", width=32, height=32, num_steps=2, seed=12))[0]
    assert torch.equal(first.latents, again.latents) and not torch.equal(first.latents, other.latents)
    unseeded = pipe.generate(GenerationRequest("x", width=32, height=32, num_steps=1))[0]
    assert isinstance(unseeded.seed, int)


def test_progress_callback_counts_steps(pipe):
    calls = []
    pipe.generate(GenerationRequest("x", width=32, height=32, num_steps=4, seed=0),
                  progress=lambda step, steps: calls.append((step, steps)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_previews_give_each_request_its_denoised_latents(pipe):
    requests = [GenerationRequest("a", width=32, height=32, num_steps=3, seed=0),
                GenerationRequest("b", width=48, height=32, num_steps=3, seed=1)]
    previews = {}
    results = pipe.generate(requests, preview=lambda index, step, steps, z: previews.setdefault(index, []).append(
        (step, steps, z)))
    for index, result in enumerate(results):
        assert [(step, steps) for step, steps, _ in previews[index]] == [(1, 3), (2, 3), (3, 3)]
        assert all(z.shape == result.latents.shape for _, _, z in previews[index])
        # the last step goes to sigma 0, where the denoised estimate is the result itself
        torch.testing.assert_close(previews[index][-1][2], result.latents, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(previews[index][0][2], result.latents, atol=1e-3)
    assert pipe.decode(previews[1][0][2]).size == (48, 32)


def test_sequential_cfg_equals_batched_cfg(tiny_pipeline_dir, pipe):
    sequential = load_pipeline(tiny_pipeline_dir, dtype=torch.float32, cfg_batching=False)
    r = dict(prompt="a boat", negative_prompt="ugly", width=32, height=48, num_steps=2, seed=5)
    a = pipe.generate(GenerationRequest(**r))[0].latents
    b = sequential.generate(GenerationRequest(**r))[0].latents
    assert (a - b).abs().max() <= 1e-4


@pytest.mark.parametrize("kwargs,message", [
    (dict(width=3000, height=64), "width 3000 is out of range"),
    (dict(width=70, height=64), "width 70 is not a multiple of 16"),
    (dict(aspect="5:4"), "unknown aspect '5:4'"),
    (dict(aspect="16:9", width=64), "either --aspect or --width/--height"),
    (dict(mask=Image.new("L", (8, 8))), "a mask needs an init image"),
    (dict(width=32, height=32, noise=torch.zeros(4, 2, 2)), r"explicit noise has shape \[4, 2, 2\]"),
])
def test_bad_requests_are_clear_errors(pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipe.generate(GenerationRequest("x", num_steps=1, seed=0, **kwargs))


def test_inpaint_mask_of_another_size_is_rejected(pipe):
    request = GenerationRequest("x", init_image=Image.new("RGB", (64, 64)), mask=Image.new("L", (32, 32)),
                                num_steps=1, seed=0)
    assert request.task is Task.INPAINT
    with pytest.raises(ValueError, match="mask size 32x32 does not match the image size 64x64"):
        pipe.generate(request)


def test_edit_needs_an_edit_model(tiny_t2i_pipeline_dir):
    t2i = load_pipeline(tiny_t2i_pipeline_dir, dtype=torch.float32)
    with pytest.raises(ValueError, match="text-to-image model"):
        t2i.generate(GenerationRequest("x", images=[Image.new("RGB", (32, 32))], num_steps=1, seed=0,
                                       width=32, height=32))


def test_sizes_and_presets():
    assert resolve_size(None, None, "16:9") == (1664, 928) and len(ASPECT_PRESETS) == 7
    assert resolve_size(None, None, None) == (1024, 1024)
    SizeLimits().check(384, 3072)
    with pytest.raises(ValueError, match="height 256 is out of range"):
        SizeLimits().check(1024, 256)
