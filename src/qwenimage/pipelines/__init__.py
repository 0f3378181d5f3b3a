"""Inference: one pipeline for text-to-image, editing (one or several images), img2img and inpainting."""

from qwenimage.pipelines.loading import load_pipeline
from qwenimage.pipelines.pipeline import GenerationResult, QwenImagePipeline
from qwenimage.pipelines.request import GenerationRequest, Task
from qwenimage.pipelines.sizes import ASPECT_PRESETS, SizeLimits

__all__ = ["ASPECT_PRESETS", "GenerationRequest", "GenerationResult", "QwenImagePipeline", "SizeLimits", "Task",
           "load_pipeline"]
