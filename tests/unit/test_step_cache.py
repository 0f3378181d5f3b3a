"""The first-block step cache: off is exact, on skips steps and stays close, per row in mixed batches, CFG."""

import math

import pytest
import torch

from qwenimage.cli.main import build_parser
from qwenimage.model import QwenImageMMDiT, mmdit_preset
from qwenimage.pipelines.request import GenerationRequest
from qwenimage.sampling.conditioning import TextConditioning, TokenLayout, stack_text
from qwenimage.sampling.guidance import Guidance, guided_velocity
from qwenimage.sampling.sampler import sample
from qwenimage.sampling.schedule import sigmas_for
from qwenimage.sampling.step_cache import DEFAULT_CACHE_THRESHOLD, FirstBlockCache, StepCaching
from tests.helpers import perturb_

STEPS = 20  # a full sampling run, as the package's default model samples
SHORT = 8  # enough for the tests that compare two runs


@pytest.fixture(scope="module")
def model():
    return smooth_random_model()


def smooth_random_model() -> QwenImageMMDiT:
    """A random tiny model whose time embedding reads only the slow sinusoids, as a trained model mostly does
    (with the fast ones, random weights make every step look unrelated to the last and nothing is cached)."""
    torch.manual_seed(0)
    model = perturb_(QwenImageMMDiT(mmdit_preset("tiny", num_layers=4)), scale=0.05).eval()
    linear = model.time_text_embed.timestep_embedder.linear_1
    half = linear.in_features // 2  # features [cos | sin], frequency falling with the index
    with torch.no_grad():
        linear.weight[:, : 3 * half // 5] = 0
        linear.weight[:, half: half + 3 * half // 5] = 0
    return model


def batch_inputs(grids, text_lens=(5, 3, 4), seed=0, steps=STEPS):
    gen = torch.Generator().manual_seed(seed)
    texts = [TextConditioning(torch.randn(1, n, 32, generator=gen)) for n in text_lens[: len(grids)]]
    negatives = [TextConditioning(torch.randn(1, 2, 32, generator=gen)) for _ in grids]
    target = max(h * w for h, w in grids)
    noise = torch.zeros(len(grids), target, 64)
    for b, (h, w) in enumerate(grids):
        noise[b, : h * w] = torch.randn(h * w, 64, generator=gen)
    sigmas = torch.stack([sigmas_for(steps, h * w) for h, w in grids])  # [B, steps + 1]
    return texts, negatives, noise, sigmas


def run(model, grids, scales, thresholds, *, batched=True, seed=0, steps=STEPS):
    """Sample a batch with CFG; returns (x [B, S_tgt, C], skipped passes per row or None without caching)."""
    texts, negatives, noise, sigmas = batch_inputs(grids, seed=seed, steps=steps)
    layout = TokenLayout(list(grids))
    guidance = Guidance(torch.tensor(scales), stack_text(negatives), batched=batched)
    caching = StepCaching(torch.tensor(thresholds)) if thresholds is not None else None
    with torch.inference_mode():
        velocity = guided_velocity(model, layout, stack_text(texts), guidance, caching)
        x = sample(velocity, noise, sigmas)
    return x, caching.skipped() if caching is not None else None


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """dB, with the reference's value range as the peak."""
    mse = float((x - ref).pow(2).mean())
    return 10 * math.log10(float(ref.max() - ref.min()) ** 2 / mse) if mse else math.inf


def test_threshold_zero_gives_exactly_the_uncached_output(model):
    grids, scales = [(3, 4)], [4.0]
    uncached, _ = run(model, grids, scales, None, steps=SHORT)
    cached, skipped = run(model, grids, scales, [0.0], steps=SHORT)
    assert torch.equal(cached, uncached)
    assert skipped == [0]


def test_cache_called_like_the_model_matches_it_until_it_skips(model):
    x, text = torch.randn(2, 12, 64), torch.randn(2, 5, 32)
    cache = FirstBlockCache(torch.tensor([0.0, 10.0]))  # row 1 skips whenever it can
    with torch.inference_mode():
        first = cache(model, x, text, torch.tensor([0.9, 0.9]), [(1, 3, 4)])
        assert torch.equal(first, model(x, text, torch.tensor([0.9, 0.9]), [(1, 3, 4)]))
        second = cache(model, x, text, torch.tensor([0.8, 0.8]), [(1, 3, 4)])
        exact = model(x, text, torch.tensor([0.8, 0.8]), [(1, 3, 4)])
    assert cache.skipped.tolist() == [0, 1]
    assert torch.allclose(second[0], exact[0], atol=1e-6)
    assert not torch.allclose(second[1], exact[1], atol=1e-4)  # the reused residual is from sigma 0.9


def test_threshold_skips_steps_and_stays_close(model):
    grids, scales = [(4, 4)], [4.0]
    uncached, _ = run(model, grids, scales, None)
    cached, skipped = run(model, grids, scales, [0.15])
    # two passes (conditional, unconditional) per step; the first step always computes
    assert 0 < skipped[0] < 2 * (STEPS - 1)
    assert psnr(cached, uncached) >= 30, f"PSNR {psnr(cached, uncached):.1f} dB with {skipped[0]} skipped passes"


def test_more_threshold_skips_more(model):
    counts = [run(model, [(4, 4)], [4.0], [t], steps=SHORT)[1][0] for t in (0.05, 0.15, 0.5)]
    assert counts == sorted(counts) and counts[0] < counts[-1]


@pytest.mark.parametrize("batched", [True, False])
def test_mixed_batch_with_per_row_thresholds_equals_each_row_alone(model, batched):
    grids, scales, thresholds = [(2, 3), (3, 3), (2, 2)], [4.0, 1.0, 2.5], [0.0, 0.3, 0.15]
    together, skipped = run(model, grids, scales, thresholds, batched=batched, steps=SHORT)
    texts, negatives, noise, _ = batch_inputs(grids, steps=SHORT)
    for b, (h, w) in enumerate(grids):
        layout, sigmas = TokenLayout([grids[b]]), sigmas_for(SHORT, h * w)[None]
        caching = StepCaching(torch.tensor([thresholds[b]]))
        guidance = Guidance(torch.tensor([scales[b]]), negatives[b], batched=batched)
        with torch.inference_mode():
            alone = sample(guided_velocity(model, layout, texts[b], guidance, caching), noise[b:b + 1, : h * w],
                           sigmas)
        assert caching.skipped() == [skipped[b]], f"row {b}"
        assert torch.allclose(together[b, : h * w], alone[0], atol=1e-5), f"row {b}"
    assert skipped[0] == 0 and skipped[1] > 0 and skipped[2] > 0


def test_cfg_passes_keep_their_own_caches(model):
    """Batched CFG (one cache, cond and uncond as separate rows) and sequential CFG (two caches) agree."""
    batched, skipped_batched = run(model, [(3, 3)], [4.0], [0.15], batched=True, steps=SHORT)
    sequential, skipped_sequential = run(model, [(3, 3)], [4.0], [0.15], batched=False, steps=SHORT)
    assert skipped_batched == skipped_sequential
    assert torch.allclose(batched, sequential, atol=1e-5)


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), "0.1", True])
def test_bad_threshold_is_a_clear_error(value):
    with pytest.raises(ValueError, match=r"cache_threshold must be a finite number >= 0"):
        GenerationRequest("p", cache_threshold=value).validate()


def test_cli_flag_alone_takes_the_documented_default():
    parse = build_parser().parse_args
    assert parse(["generate", "--prompt", "p"]).cache_threshold is None
    assert parse(["generate", "--prompt", "p", "--cache-threshold"]).cache_threshold == DEFAULT_CACHE_THRESHOLD
    assert parse(["edit", "--prompt", "p", "--image", "a.png", "--cache-threshold", "0.3"]).cache_threshold == 0.3


def test_pipeline_caches_per_request(tiny_pipeline_dir):
    from qwenimage.pipelines.loading import load_pipeline

    pipe = load_pipeline(tiny_pipeline_dir, dtype=torch.float32)

    def requests():
        return [GenerationRequest("a cat", negative_prompt=" ", width=64, height=48, num_steps=8, seed=1,
                                  cache_threshold=0.5),
                GenerationRequest("a dog", negative_prompt=" ", width=48, height=48, num_steps=8, seed=2)]

    together = pipe.generate(requests())
    alone = [pipe.generate(r)[0] for r in requests()]
    uncached = pipe.generate(GenerationRequest("a cat", negative_prompt=" ", width=64, height=48, num_steps=8,
                                               seed=1))[0]
    assert together[0].cache_skips == alone[0].cache_skips > 0
    assert together[1].cache_skips == alone[1].cache_skips == 0
    for t, a in zip(together, alone):
        assert torch.allclose(t.latents, a.latents, atol=1e-5)
    assert torch.equal(together[1].latents, alone[1].latents) or torch.allclose(together[1].latents,
                                                                                alone[1].latents, atol=1e-6)
    assert not torch.allclose(together[0].latents, uncached.latents, atol=1e-6)
