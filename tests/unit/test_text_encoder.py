"""ConditionEncoder on the tiny pipeline folder: shapes, masks, batching, limits and image handling."""

import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from qwenimage.text import ConditionEncoder, ImageError, PromptEmbeddings, PromptError
from qwenimage.text.embeddings import gather_valid_tokens
from qwenimage.weights.errors import CheckpointError
from tests.fixtures import tiny_pipeline_dir, tiny_t2i_pipeline_dir  # noqa: F401  (session fixtures)

PROMPTS = ["a cat", "a red bicycle leaning on a wall in the rain, 雨中的红色自行车"]


@pytest.fixture(scope="module")
def encoder(tiny_pipeline_dir):  # noqa: F811
    return ConditionEncoder.from_pretrained(tiny_pipeline_dir)


def _image(width, height, seed=0, mode="RGB"):
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def _assert_rows_match(batch: PromptEmbeddings, row: int, single: PromptEmbeddings):
    length = int(single.lengths[0])
    assert int(batch.lengths[row]) == length
    torch.testing.assert_close(batch.embeds[row, :length], single.embeds[0, :length], atol=1e-5, rtol=1e-5)
    assert not batch.embeds[row, length:].any()


def test_prompt_embeddings_are_right_padded_with_a_bool_mask(encoder):
    out = encoder.encode_prompts(PROMPTS)
    assert out.embeds.shape == (2, out.embeds.shape[1], encoder.hidden_size) and out.mask.dtype == torch.bool
    assert out.lengths[0] < out.lengths[1] == out.embeds.shape[1]
    for row, prompt in enumerate(PROMPTS):
        _assert_rows_match(out, row, encoder.encode_prompts([prompt]))
    assert out.mask_or_none() is out.mask and encoder.encode_prompts("one prompt").mask_or_none() is None


def test_embeddings_work_as_autograd_inputs(encoder):
    embeds = encoder.encode_prompts("a cat").embeds
    assert not embeds.requires_grad and not embeds.is_inference()
    weight = torch.ones(embeds.shape[-1], requires_grad=True)
    (embeds * weight).sum().backward()
    assert weight.grad is not None


def test_max_sequence_length_truncates(encoder):
    out = encoder.encode_prompts(PROMPTS, max_sequence_length=4)
    full = encoder.encode_prompts(PROMPTS)
    assert out.embeds.shape[1] == 4 and out.mask.all()
    torch.testing.assert_close(out.embeds, full.embeds[:, :4])


@pytest.mark.parametrize("length", [0, 1025, 2000])
def test_max_sequence_length_outside_1_to_1024_is_an_error(encoder, length):
    with pytest.raises(PromptError, match=f"max_sequence_length must be in 1..1024, got {length}"):
        encoder.encode_prompts("a cat", max_sequence_length=length)


def test_too_long_prompt_is_a_one_line_error_naming_its_length(encoder):
    prompt = "cat " * 1500
    count = len(encoder.tokenizer(prompt)["input_ids"])
    with pytest.raises(PromptError, match=f"prompt 1 is {count} tokens long; the text encoder takes at most 1019") as err:
        encoder.encode_prompts(["short", prompt])
    assert "\n" not in str(err.value)
    encoder.encode_prompts("cat " * 1018)  # 1019 tokens fit


def test_bad_prompt_lists_are_errors(encoder):
    with pytest.raises(PromptError, match="no prompts"):
        encoder.encode_prompts([])
    with pytest.raises(PromptError, match="prompt 1 is NoneType"):
        encoder.encode_prompts(["a", None])
    assert encoder.encode_prompts([""]).embeds.shape[1] == 5  # only the closing template tokens


def test_repeat_keeps_copies_of_a_prompt_together():
    out = PromptEmbeddings(torch.arange(2.0).view(2, 1, 1).expand(2, 3, 4), torch.tensor([[1, 1, 0], [1, 1, 1]]))
    repeated = out.repeat(2)
    assert repeated.embeds[:, 0, 0].tolist() == [0, 0, 1, 1]
    assert repeated.mask.tolist() == [[True, True, False]] * 2 + [[True, True, True]] * 2


def test_gather_ignores_where_the_padding_sits():
    hidden = torch.randn(2, 6, 3)
    right = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    shifted = hidden.clone()
    shifted[0, 2:] = hidden[0, :4]
    a, b = gather_valid_tokens(hidden, right, drop=1), gather_valid_tokens(shifted, left, drop=1)
    torch.testing.assert_close(a.embeds, b.embeds)
    assert a.mask.tolist() == b.mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5]


def test_folders_without_processor_use_the_qwen25_vl_image_defaults(tiny_t2i_pipeline_dir):  # noqa: F811
    encoder = ConditionEncoder.from_pretrained(tiny_t2i_pipeline_dir, dtype=torch.bfloat16)
    settings = encoder.processor.image_processor
    assert (settings.patch_size, settings.merge_size, settings.temporal_patch_size) == (14, 2, 2)
    assert (settings.size["shortest_edge"], settings.size["longest_edge"]) == (3136, 12845056)
    assert encoder.encode_prompts("a cat").embeds.dtype == torch.bfloat16


def test_missing_subfolder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no text_encoder/ folder"):
        ConditionEncoder.from_pretrained(tmp_path)


def test_checkpoint_missing_weights_is_an_error(tiny_pipeline_dir, tmp_path):  # noqa: F811
    for sub in ("text_encoder", "tokenizer"):
        shutil.copytree(tiny_pipeline_dir / sub, tmp_path / sub)
    weights = tmp_path / "text_encoder" / "model.safetensors"
    state = load_file(weights)
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="1 text-encoder weight.*layers.1.mlp.up_proj.weight"):
        ConditionEncoder.from_pretrained(tmp_path)


def test_edit_plus_batches_prompts_with_different_image_counts(encoder):
    images = [[_image(64, 48, 0)], [_image(40, 80, 1), _image(64, 64, 2)]]
    prompts = ["make it blue", "put the cat from picture 1 on the sofa of picture 2"]
    batch = encoder.encode_edit(prompts, images, style="edit_plus")
    for row in range(2):
        _assert_rows_match(batch, row, encoder.encode_edit(prompts[row:row + 1], images[row:row + 1], "edit_plus"))


def test_odd_image_modes_are_encoded_like_their_rgb_conversion(encoder):
    rgba = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    grey16 = Image.fromarray(np.full((48, 64), 257 * 90, dtype=np.uint16))
    out = encoder.encode_edit(["x", "x"], [[rgba], [grey16]], style="edit_plus")
    white = encoder.encode_edit(["x"], [[Image.new("RGB", (64, 48), (255, 255, 255))]], style="edit_plus")
    grey = encoder.encode_edit(["x"], [[Image.new("RGB", (64, 48), (90, 90, 90))]], style="edit_plus")
    _assert_rows_match(out, 0, white)
    _assert_rows_match(out, 1, grey)


def test_unreadable_image_is_an_image_error(encoder):
    buffer = io.BytesIO()
    _image(64, 64).save(buffer, format="PNG")
    truncated = Image.open(io.BytesIO(buffer.getvalue()[:200]))
    with pytest.raises(ImageError, match="cannot convert"):
        encoder.encode_edit(["x"], [[truncated]], style="edit_plus")


@pytest.mark.parametrize("images, style, message", [
    ([[]], "edit_plus", "at least 1"),
    ([[Image.new("RGB", (32, 32))] * 2], "edit", "takes 1"),
    ([Image.new("RGB", (32, 32))], "edit", "single image"),
    ([[Image.new("RGB", (32, 32))]] * 2, "edit", "1 prompt"),
])
def test_image_lists_must_fit_the_style(encoder, images, style, message):
    with pytest.raises(ImageError, match=message):
        encoder.encode_edit(["x"], images, style=style)


def test_unknown_edit_style_is_named(encoder):
    with pytest.raises(PromptError, match="unknown edit style 'inpaint'"):
        encoder.encode_edit(["x"], [[Image.new("RGB", (32, 32))]], style="inpaint")
