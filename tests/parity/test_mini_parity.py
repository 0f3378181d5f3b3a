"""qwenimage-mini's folder (spelling tokenizer, small Qwen2.5-VL, bf16 weights) loads in diffusers' own
QwenImagePipeline.from_pretrained and gives the same image as our pipeline for the same noise."""

import pytest
import torch

pytest.importorskip("diffusers")

from qwenimage.mini.build import build_mini_components  # noqa: E402
from qwenimage.mini.ship import SHIPPED_DIR, assemble_pipeline  # noqa: E402
from qwenimage.model import QwenImageMMDiT, mmdit_preset  # noqa: E402
from qwenimage.pipelines.loading import load_pipeline  # noqa: E402
from qwenimage.pipelines.request import GenerationRequest  # noqa: E402
from qwenimage.sampling.packing import pack_latents  # noqa: E402

TOL = 1e-3
PROMPT = 'a shop sign that says "harbor"'


def same_image_as_diffusers(folder, size=128, steps=3):
    from diffusers import QwenImagePipeline

    oracle = QwenImagePipeline.from_pretrained(str(folder), torch_dtype=torch.float32)
    pipe = load_pipeline(folder, dtype=torch.float32)
    noise = torch.randn(16, size // 8, size // 8, generator=torch.Generator().manual_seed(0))
    request = GenerationRequest(PROMPT, negative_prompt=" ", width=size, height=size, num_steps=steps,
                                true_cfg_scale=4.0, noise=noise)
    with torch.no_grad():
        expected = oracle(prompt=PROMPT, negative_prompt=" ", true_cfg_scale=4.0, height=size, width=size,
                          num_inference_steps=steps, latents=pack_latents(noise[None]), output_type="pt").images[0]
        result = pipe.generate(request)[0]
        ours = (pipe.decode_pixels(result.latents).float() + 1) / 2  # [3, H, W] in [0, 1]
    assert ours.shape == expected.shape
    assert expected.std() > 0.01
    return (ours.clamp(0, 1) - expected).abs().max().item()


@pytest.fixture(scope="module")
def mini_layout_folder(tmp_path_factory):
    """The mini layout with a small random transformer (the real one is trained, see docs/mini)."""
    root = tmp_path_factory.mktemp("mini")
    base = build_mini_components(root / "base")
    torch.manual_seed(1)
    transformer = QwenImageMMDiT(mmdit_preset("tiny", joint_attention_dim=128))
    with torch.no_grad():
        for p in transformer.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    transformer.save_pretrained(root / "transformer")
    return assemble_pipeline(base, root / "transformer", root / "pipeline")


def test_diffusers_loads_the_mini_layout_and_draws_the_same_image(mini_layout_folder):
    assert same_image_as_diffusers(mini_layout_folder) <= TOL


@pytest.mark.skipif(not (SHIPPED_DIR / "model_index.json").is_file(), reason="no default model shipped")
def test_diffusers_draws_the_same_image_with_the_shipped_default_model():
    assert same_image_as_diffusers(SHIPPED_DIR) <= TOL
