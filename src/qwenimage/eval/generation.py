"""Image makers for `qwenimage eval text`: our pipeline (batched requests) and the known-answer oracle.

Sample `s` is generated at the run's --size (or its own size) with seed `base seed + s.index`, so a sample's
image does not depend on --n, the batch size or which other samples run with it. True CFG runs with the
negative prompt " " (the model card's recommendation) when --cfg > 1.
"""

from __future__ import annotations

from PIL import Image

from qwenimage.eval.suites import SuiteSample
from qwenimage.eval.text_run import TextEvalSettings


def sample_size(sample: SuiteSample, settings: TextEvalSettings) -> tuple[int, int]:
    return tuple(settings.size) if settings.size else tuple(sample.size)


def pipeline_generator(pipe, settings: TextEvalSettings):
    """samples -> images with `pipe` (a QwenImagePipeline), one batched `generate` call per batch."""
    from qwenimage.pipelines import GenerationRequest

    def generate(samples: list[SuiteSample]) -> list[Image.Image]:
        requests = []
        for sample in samples:
            width, height = sample_size(sample, settings)
            requests.append(GenerationRequest(prompt=sample.prompt, negative_prompt=" " if settings.cfg > 1 else None,
                                              width=width, height=height, num_steps=settings.steps,
                                              true_cfg_scale=settings.cfg, seed=settings.seed + sample.index,
                                              scheduler=dict(settings.scheduler or {}),
                                              cache_threshold=settings.cache_threshold))
        return [result.image for result in pipe.generate(requests)]

    return generate


def oracle_generator(settings: TextEvalSettings):
    """samples -> their expected texts drawn plainly (oracle.render_texts)."""
    from qwenimage.eval.oracle import render_texts

    def generate(samples: list[SuiteSample]) -> list[Image.Image]:
        return [render_texts(sample.texts, *sample_size(sample, settings)) for sample in samples]

    return generate
