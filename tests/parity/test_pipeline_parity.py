"""End to end against diffusers' Qwen-Image pipelines on one tiny diffusers-format folder (fp32, CPU).

Same seeds / explicit initial noise, 3 steps, true CFG with a negative prompt; final latents and images
must agree within 1e-4.
"""

import pytest
import torch
from PIL import Image

pytest.importorskip("diffusers")

from qwenimage.pipelines.loading import load_pipeline  # noqa: E402
from qwenimage.pipelines.request import GenerationRequest  # noqa: E402
from qwenimage.sampling.packing import pack_latents  # noqa: E402
from tests.fixtures.oracle import oracle_pipeline  # noqa: E402

TOL = 1e-4
STEPS = 3


def gradient_image(width: int, height: int, seed: int = 0) -> Image.Image:
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(3, 1, 1, generator=gen) * 200
    ramp = torch.linspace(0, 55, width)[None, None, :] + torch.linspace(0, 55, height)[None, :, None] / 2
    pixels = (base + ramp + torch.rand(3, height, width, generator=gen) * 20).clamp(0, 255).to(torch.uint8)
    return Image.fromarray(pixels.permute(1, 2, 0).numpy())


def ours(folder):
    return load_pipeline(folder, dtype=torch.float32)


def compare(result, reference_latents):
    """Our normalised latents [C, h, w] vs diffusers' packed output latents [1, S, C*4]."""
    packed = pack_latents(result.latents[None])
    assert packed.shape == reference_latents.shape
    assert reference_latents.std() > 0.1  # a real signal, not a degenerate output
    assert (packed - reference_latents).abs().max() <= TOL


def reference_pixels(oracle, latents, height, width):
    """Decode diffusers' packed latents with diffusers' own VAE path -> [3, H, W] in [-1, 1]."""
    unpacked = oracle._unpack_latents(latents, height, width, oracle.vae_scale_factor)  # [1, C, 1, h, w]
    vae = oracle.vae
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    return vae.decode(unpacked * std + mean, return_dict=False)[0][0, :, 0]


def assert_images_match(pipe, result, oracle, reference_latents):
    height, width = result.image.height, result.image.width
    with torch.no_grad():
        expected = reference_pixels(oracle, reference_latents, height, width)
        actual = pipe.decode_pixels(result.latents)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max() <= TOL


def test_text_to_image_with_cfg(tiny_t2i_pipeline_dir):
    oracle, pipe = oracle_pipeline(tiny_t2i_pipeline_dir, "QwenImagePipeline"), ours(tiny_t2i_pipeline_dir)
    noise = torch.randn(4, 8, 12)  # latent channels 4, a 96x64 image
    request = GenerationRequest("a red fox reading a sign that says HELLO", negative_prompt="blurry",
                                width=96, height=64, num_steps=STEPS, true_cfg_scale=4.0, noise=noise)
    with torch.no_grad():
        expected = oracle(prompt=request.prompt, negative_prompt=request.negative_prompt, true_cfg_scale=4.0,
                          height=64, width=96, num_inference_steps=STEPS, latents=pack_latents(noise[None]),
                          output_type="latent", return_dict=False)[0]
    result = pipe.generate(request)[0]
    assert result.image.size == (96, 64)
    compare(result, expected)
    assert_images_match(pipe, result, oracle, expected)


@pytest.mark.parametrize("pipeline_class", ["QwenImageEditPipeline", "QwenImageEditPlusPipeline"])
def test_edit_single_and_multi_image(tiny_pipeline_dir, tmp_path, pipeline_class, monkeypatch):
    import json
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_pipeline_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": pipeline_class}))
    if pipeline_class == "QwenImageEditPlusPipeline":  # the VAE copies at 128x128, not 1 Mpx each (seconds a step)
        from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus

        monkeypatch.setattr(pipeline_qwenimage_edit_plus, "VAE_IMAGE_SIZE", 128 * 128)
        settings = json.loads((folder / "qwenimage.json").read_text())
        settings["size_limits"]["edit_area"] = 128 * 128
        (folder / "qwenimage.json").write_text(json.dumps(settings))
    oracle, pipe = oracle_pipeline(folder, pipeline_class), ours(folder)
    images = [gradient_image(64, 48, 1)] if pipeline_class == "QwenImageEditPipeline" else \
        [gradient_image(48, 64, 2), gradient_image(64, 48, 3)]
    noise = torch.randn(4, 8, 8)
    request = GenerationRequest("make the sky purple", negative_prompt=" ", width=64, height=64, num_steps=STEPS,
                                images=images, noise=noise)
    with torch.no_grad():
        expected = oracle(image=images if len(images) > 1 else images[0], prompt=request.prompt,
                          negative_prompt=" ", true_cfg_scale=4.0, height=64, width=64, num_inference_steps=STEPS,
                          latents=pack_latents(noise[None]), output_type="latent", return_dict=False)[0]
    result = pipe.generate(request)[0]
    compare(result, expected)


@pytest.mark.parametrize("task", ["img2img", "inpaint"])
def test_img2img_and_inpaint_from_the_same_seed(tiny_t2i_pipeline_dir, task):
    import diffusers

    from tests.fixtures.oracle import _components

    cls = diffusers.QwenImageImg2ImgPipeline if task == "img2img" else diffusers.QwenImageInpaintPipeline
    oracle, pipe = cls(**_components(tiny_t2i_pipeline_dir)), ours(tiny_t2i_pipeline_dir)
    image = gradient_image(64, 48, 4)
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (16, 8, 48, 40))
    extra = {"mask_image": mask} if task == "inpaint" else {}
    with torch.no_grad():
        expected = oracle(image=image, prompt="a lighthouse", negative_prompt="low quality", true_cfg_scale=3.0,
                          strength=0.7, height=48, width=64, num_inference_steps=STEPS,
                          generator=torch.Generator().manual_seed(7), output_type="latent", return_dict=False,
                          **extra)[0]
    request = GenerationRequest("a lighthouse", negative_prompt="low quality", true_cfg_scale=3.0, strength=0.7,
                                num_steps=STEPS, seed=7, init_image=image, mask=mask if extra else None)
    result = pipe.generate(request)[0]
    assert result.image.size == (64, 48)
    compare(result, expected)
