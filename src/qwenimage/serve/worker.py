"""The worker: what the scheduler calls to turn GenerationRequests into images. `PipelineWorker` wraps a
loaded `QwenImagePipeline`; tests pass a fake with the same three members, and a Ray Serve replica would
wrap the same class (one pipeline per replica, the scheduler inside it)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from PIL import Image

from qwenimage.pipelines.request import GenerationRequest
from qwenimage.serve.convert import ModelDefaults

PreviewSink = Callable[[int, int, int, Image.Image], None]  # (request index, step, steps, image)
WantsPreview = Callable[[int, int, int], bool]  # (request index, step, steps) -> decode a preview now?


class Worker(Protocol):
    model_id: str
    defaults: ModelDefaults

    def admit(self, request: GenerationRequest) -> None:
        """Every check that needs no sampling (values, sizes, the task); ValueError naming the bad value."""

    def run(self, requests: list[GenerationRequest], *, progress: Callable[[int, int], None] | None = None,
            preview: PreviewSink | None = None, wants_preview: WantsPreview | None = None) -> list[Image.Image]:
        """One image per request, in order; called from the scheduler's thread only."""


class PipelineWorker:
    def __init__(self, pipe, model_id: str, defaults: ModelDefaults, cache_threshold: float | None = None):
        self.pipe, self.model_id, self.defaults = pipe, model_id, defaults
        self.cache_threshold = cache_threshold  # the server's step cache, for requests that set none

    @classmethod
    def load(cls, folder: Path, device: str | None = None, dtype: str = "bf16", model_id: str | None = None, *,
             revision: str | None = None, quantize: str | None = None, compile: bool = False,
             scheduler: dict[str, object] | None = None, cache_threshold: float | None = None) -> PipelineWorker:
        import torch

        from qwenimage.devices import resolve_device
        from qwenimage.dtypes import DTYPES
        from qwenimage.pipelines.loading import load_pipeline
        from qwenimage.weights.hub import resolve_model

        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(sorted(DTYPES))}")
        device = resolve_device(device)
        torch_dtype = torch.float32 if device.type == "cpu" else DTYPES[dtype]  # half precision is slow on CPU
        folder = resolve_model(folder, revision)
        pipe = load_pipeline(folder, dtype=torch_dtype, device=device, scheduler=scheduler, quantize=quantize)
        if compile:
            pipe.compile()
        return cls(pipe, model_id or Path(folder).resolve().name, ModelDefaults.from_folder(Path(folder)),
                   cache_threshold)

    @classmethod
    def from_config(cls, config) -> PipelineWorker:
        """The worker a ServeConfig describes (its model, device, dtype and loading / sampling settings)."""
        return cls.load(config.model, device=config.device, dtype=config.dtype, model_id=config.model_id,
                        revision=config.revision, quantize=config.quantize, compile=config.compile,
                        scheduler=config.scheduler, cache_threshold=config.cache_threshold)

    def admit(self, request: GenerationRequest) -> None:
        from qwenimage.images import load_mask
        from qwenimage.pipelines.pipeline import check_edit_support
        from qwenimage.pipelines.request import Task
        from qwenimage.pipelines.tasks import source_image, target_size

        if request.cache_threshold is None:
            request.cache_threshold = self.cache_threshold
        request.validate()
        check_edit_support(self.pipe.edit_style, len(request.images))
        source = source_image(request)
        width, height = target_size(request, self.pipe.size_limits, self.pipe.token_step,
                                    source.size if source is not None else None)
        if request.task is Task.INPAINT:
            if request.mask.size != source.size:
                raise ValueError(f"mask size {request.mask.width}x{request.mask.height} does not match the image "
                                 f"size {source.width}x{source.height}")
            if request.mask.size != (width, height):  # the image is resized to the output size; so is its mask
                request.mask = request.mask.resize((width, height), Image.Resampling.NEAREST)
            load_mask(request.mask, (width, height))

    def run(self, requests: list[GenerationRequest], *, progress=None, preview: PreviewSink | None = None,
            wants_preview: WantsPreview | None = None) -> list[Image.Image]:
        def on_latents(index: int, step: int, steps: int, latents) -> None:  # latents [C, h, w]
            if wants_preview is None or wants_preview(index, step, steps):
                preview(index, step, steps, self.pipe.decode(latents))

        results = self.pipe.generate(requests, progress=progress, preview=on_latents if preview else None)
        return [result.image for result in results]
