"""ConditionEncoder against diffusers' encode_prompt (T2I, Edit, Edit-Plus) on the tiny folder, fp32 CPU."""

import numpy as np
import pytest
import torch
from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit, pipeline_qwenimage_edit_plus
from PIL import Image

from qwenimage.text import (EDIT_AREA, EDIT_PLUS_TEMPLATE, EDIT_PLUS_VL_AREA, EDIT_TEMPLATE, T2I_TEMPLATE,
                            ConditionEncoder, PromptEmbeddings, condition_size, resize_to_area)
from tests.fixtures import tiny_pipeline_dir  # noqa: F401  (session fixture)
from tests.fixtures.oracle import oracle_pipeline

PROMPTS = ["a cat", "a red bicycle leaning on a brick wall in the rain, 雨中的红色自行车, Ultra HD, 4K"]


@pytest.fixture(scope="module")
def encoder(tiny_pipeline_dir):  # noqa: F811
    return ConditionEncoder.from_pretrained(tiny_pipeline_dir)


@pytest.fixture(scope="module")
def oracles(tiny_pipeline_dir):  # noqa: F811
    names = ("QwenImagePipeline", "QwenImageEditPipeline", "QwenImageEditPlusPipeline")
    return {name: oracle_pipeline(tiny_pipeline_dir, name) for name in names}


def _image(width, height, seed):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


def _assert_same(ours: PromptEmbeddings, embeds: torch.Tensor, mask: torch.Tensor | None):
    torch.testing.assert_close(ours.embeds, embeds, atol=1e-5, rtol=1e-5)
    if mask is None:
        assert ours.mask_or_none() is None
    else:
        assert torch.equal(ours.mask, mask.bool())


def test_templates_and_drop_counts_are_the_reference_ones(encoder, oracles):
    for template, name in [(T2I_TEMPLATE, "QwenImagePipeline"), (EDIT_TEMPLATE, "QwenImageEditPipeline"),
                           (EDIT_PLUS_TEMPLATE, "QwenImageEditPlusPipeline")]:
        assert template.text == oracles[name].prompt_template_encode
        assert encoder.drop[template.name] == oracles[name].prompt_template_encode_start_idx


@pytest.mark.parametrize("max_sequence_length", [512, 12])
def test_text_to_image_matches_diffusers(encoder, oracles, max_sequence_length):
    embeds, mask = oracles["QwenImagePipeline"].encode_prompt(PROMPTS, device="cpu",
                                                              max_sequence_length=max_sequence_length)
    ours = encoder.encode_prompts(PROMPTS, max_sequence_length=max_sequence_length)
    assert ours.lengths[0] < ours.lengths[1] or max_sequence_length < ours.lengths[1]
    _assert_same(ours, embeds, mask)


def test_images_per_prompt_repeat_like_diffusers(encoder, oracles):
    embeds, mask = oracles["QwenImagePipeline"].encode_prompt(PROMPTS, device="cpu", num_images_per_prompt=3,
                                                              max_sequence_length=512)
    ours = encoder.encode_prompts(PROMPTS).repeat(3)
    torch.testing.assert_close(ours.embeds, embeds, atol=1e-5, rtol=1e-5)
    # diffusers repeats the embeddings sample by sample (0,0,0,1,1,1) but tiles the mask (0,1,0,1,0,1);
    # ours keeps each mask with its embeddings
    assert torch.equal(ours.mask, embeds.abs().sum(-1) > 0)
    assert torch.equal(ours.mask[[0, 3]].repeat(3, 1), mask.bool())


def test_single_image_edit_matches_diffusers(encoder, oracles):
    image = _image(80, 48, seed=0)
    embeds, mask = oracles["QwenImageEditPipeline"].encode_prompt("make the sky blue", device="cpu",
                                                                  image=resize_to_area(image, EDIT_AREA))
    _assert_same(encoder.encode_edit(["make the sky blue"], [[image]], style="edit"), embeds, mask)


def test_edit_plus_with_two_images_matches_diffusers(encoder, oracles):
    images = [_image(80, 48, seed=1), _image(48, 96, seed=2)]
    prompt = "put the cat from picture 1 on the sofa of picture 2"
    condition_images = [resize_to_area(im, EDIT_PLUS_VL_AREA) for im in images]
    embeds, mask = oracles["QwenImageEditPlusPipeline"].encode_prompt(prompt, device="cpu", image=condition_images)
    _assert_same(encoder.encode_edit([prompt], [images], style="edit_plus"), embeds, mask)


@pytest.mark.parametrize("size", [(1024, 1024), (1920, 1080), (1080, 1920), (333, 777), (3000, 17), (50, 50)])
def test_condition_size_matches_diffusers(size):
    ratio = size[0] / size[1]
    assert condition_size(*size, area=EDIT_AREA) == pipeline_qwenimage_edit.calculate_dimensions(EDIT_AREA, ratio)[:2]
    assert condition_size(*size, area=EDIT_PLUS_VL_AREA) == pipeline_qwenimage_edit_plus.calculate_dimensions(
        EDIT_PLUS_VL_AREA, ratio)[:2]
