"""`QwenImagePipeline`: components + the one sampler, for every task and for mixed batches.

    pipe = QwenImagePipeline.from_pretrained("Qwen-Image", dtype=torch.bfloat16, device="cuda")
    images = pipe.generate([GenerationRequest("a red fox", seed=1), GenerationRequest("logo", width=1664, height=928)])

Requests in one call are independent: each result equals the request run alone with the same seed.
Requests that share the number of steps and the start step are sampled together in one batch (sizes,
prompts, condition images and guidance may differ); others run as separate batches. A text_focus edit is
sampled as its canvas edits (pipelines/text_focus.py), batched with the rest, and pasted back into its source.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from qwenimage.images import load_image, pil_to_tensor, tensor_to_pil

from qwenimage.pipelines.keep import DEFAULT_KEEP_THRESHOLD, edited_area, keep_unedited
from qwenimage.pipelines.offload import Offloader
from qwenimage.pipelines.request import GenerationRequest, Task
from qwenimage.pipelines.sizes import SizeLimits
from qwenimage.pipelines.tasks import Prepared, prepare
from qwenimage.pipelines.text_focus import FocusPlan, TextFocus, focus_request
from qwenimage.sampling.conditioning import TextConditioning, TokenLayout, stack_text
from qwenimage.sampling.guidance import Guidance, batch_cfg_by_default, guided_velocity
from qwenimage.sampling.packing import pack_latents, unpack_latents
from qwenimage.sampling.sampler import InpaintBlend, sample, start_index
from qwenimage.sampling.step_cache import StepCaching
from qwenimage.sampling.schedule import ScheduleConfig, noise_to, override_schedule, sigmas_for

log = logging.getLogger(__name__)

# (request index in the call, step, steps) -> None
ProgressFn = Callable[[int, int], None]  # (steps done, steps)
# (request index, steps done, steps, denoised estimate [C, h, w] as normalised latents; `decode` makes it an image)
PreviewFn = Callable[[int, int, int, torch.Tensor], None]


@dataclass
class GenerationResult:
    image: Image.Image
    latents: torch.Tensor  # [C, h, w] normalised latents of the result (text_focus: of its first canvas edit)
    request: GenerationRequest
    seed: int | None
    cache_skips: int = 0  # transformer passes the step cache skipped (conditional and unconditional counted apart)
    kept_fraction: float | None = None  # keep_unedited: share of pixels that are the source's own


def check_edit_support(edit_style: str | None, num_images: int) -> None:
    """A model of `edit_style` (None: text-to-image) can take `num_images` condition images, or ValueError."""
    if num_images and edit_style is None:
        raise ValueError("this model folder holds a text-to-image model; editing with condition images needs "
                         "Qwen-Image-Edit weights (model_index.json names QwenImageEdit[Plus]Pipeline)")
    if num_images > 1 and edit_style == "edit":
        raise ValueError(f"this edit model takes one condition image, got {num_images} "
                         "(multi-image editing needs Qwen-Image-Edit-2509 or later)")


class QwenImagePipeline:
    def __init__(self, transformer, vae, encoder, schedule: ScheduleConfig = ScheduleConfig(), *,
                 device: str | torch.device = "cpu", size_limits: SizeLimits = SizeLimits(),
                 edit_style: str | None = "edit_plus", cfg_batching: bool | None = None, offload: bool = False,
                 text_focus: TextFocus | None = None):
        self.transformer, self.vae, self.encoder = transformer, vae, encoder
        self.schedule = schedule
        self.device = torch.device(device)
        self.size_limits = size_limits
        self.edit_style = edit_style
        self.cfg_batching = cfg_batching  # None: batch_cfg_by_default decides per group
        self.offload = Offloader(self.device, enabled=offload)
        self.text_focus = text_focus  # the model's text geometry, for requests with text_focus (qwenimage.json)
        self._ocr = None

    # ---- properties derived from the components -------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return next(self.transformer.parameters()).dtype

    @property
    def latent_channels(self) -> int:
        return self.vae.config.z_dim

    @property
    def token_step(self) -> int:
        """Pixels per token side: VAE factor x 2x2 packing (16 for the official VAE)."""
        return self.vae.spatial_factor * 2

    def load_lora(self, source, scale: float = 1.0, adapter_name: str | None = None) -> str:
        """Add a LoRA adapter (diffusers, kohya or ComfyUI key names) to the transformer; returns its name."""
        from qwenimage.weights.lora import lora_adapters, load_lora

        name = adapter_name or f"lora_{len(lora_adapters(self.transformer))}"
        load_lora(self.transformer, source, adapter_name=name, scale=scale)
        return name

    def compile(self, fallback: bool = False) -> bool:
        """Regional torch.compile of the transformer blocks (model/compile.py); False when left eager."""
        from qwenimage.model.compile import compile_blocks

        return compile_blocks(self.transformer, fallback=fallback)

    # ---- services used by the task adapters ---------------------------------------------------
    def generator(self, request: GenerationRequest) -> torch.Generator:
        seed = request.seed if request.seed is not None else torch.seed()
        request.seed = seed
        return torch.Generator("cpu").manual_seed(seed)

    def initial_noise(self, request: GenerationRequest, width: int, height: int,
                      generator: torch.Generator) -> torch.Tensor:
        """Packed noise [S, C] from the request's seed (or its explicit noise [C, h, w])."""
        self.size_limits.check(width, height)
        factor = self.vae.spatial_factor
        shape = (self.latent_channels, height // factor, width // factor)
        if request.noise is not None:
            if tuple(request.noise.shape) != shape:
                raise ValueError(f"explicit noise has shape {list(request.noise.shape)}, expected {list(shape)}")
            noise = request.noise.float()
        else:
            noise = torch.randn((1, 1, *shape), generator=generator)[0, 0]  # [C, h, w], the reference's draw order
        return pack_latents(noise[None])[0].to(self.device, self.dtype)

    def encode_text(self, request: GenerationRequest, images: list[Image.Image] | None = None
                    ) -> tuple[TextConditioning, TextConditioning | None]:
        with self.offload.on_device(self.encoder):
            positive = self._encode_one(request.prompt, images, request.max_sequence_length)
            negative = None
            if request.uses_cfg():
                negative = self._encode_one(request.negative_prompt, images, request.max_sequence_length)
        return positive, negative

    def _encode_one(self, prompt: str, images, max_sequence_length: int) -> TextConditioning:
        check_edit_support(self.edit_style, len(images or []))
        if images:
            from qwenimage.text.encoder import edit_style

            style = edit_style(self.edit_style, self.size_limits.edit_area)
            out = self.encoder.encode_edit([prompt], [images], style=style)
        else:
            out = self.encoder.encode_prompts([prompt], max_sequence_length=max_sequence_length)
        return TextConditioning(out.embeds.to(self.device, self.dtype), None)

    def encode_image(self, image: Image.Image, *, sample: bool,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """RGB image -> normalised latents [C, h, w] (posterior mode, or a sample drawn with `generator`)."""
        pixels = pil_to_tensor(image)[None].to(self.device, self.vae_dtype)  # [1, 3, H, W]
        with self.offload.on_device(self.vae), torch.inference_mode():
            posterior = self.vae.encode(pixels)
            if sample:
                noise = torch.randn(posterior.mean.shape, generator=generator).to(posterior.mean)
                latents = posterior.mean + posterior.std * noise
            else:
                latents = posterior.mode()
            return self.vae.normalize_latents(latents)[0].to(self.dtype)

    @property
    def vae_dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    # ---- generation -----------------------------------------------------------------------------
    def generate(self, requests: GenerationRequest | list[GenerationRequest], progress: ProgressFn | None = None,
                 preview: PreviewFn | None = None) -> list[GenerationResult]:
        requests = [requests] if isinstance(requests, GenerationRequest) else list(requests)
        for r in requests:
            r.validate()  # every value that needs no weights, before any work
        with torch.inference_mode():
            # what is sampled: each request, or for a text_focus request its edits on the model's canvas
            pieces: list[tuple[int, GenerationRequest, FocusPlan | None]] = []
            for index, request in enumerate(requests):
                focused = self._focus(request) if request.text_focus else []
                pieces += [(index, r, plan) for r, plan in focused] or [(index, request, None)]
            prepared = [prepare(self, r) for _, r, _ in pieces]
            done: list[GenerationResult | None] = [None] * len(pieces)
            key = lambda i: (pieces[i][1].num_steps, self._start(pieces[i][1]))  # noqa: E731
            for _, group in itertools.groupby(sorted(range(len(pieces)), key=key), key=key):
                group = list(group)
                latents, skips = self._sample_group([prepared[i] for i in group], [pieces[i][0] for i in group],
                                                    progress, preview)
                for i, z, skipped in zip(group, latents, skips):
                    done[i] = self._result(prepared[i], z, skipped) if pieces[i][2] is None else \
                        GenerationResult(None, z, pieces[i][1], pieces[i][1].seed, skipped)
            return [self._assemble(request, [(done[i], pieces[i][2]) for i in range(len(pieces))
                                             if pieces[i][0] == index])
                    for index, request in enumerate(requests)]

    def _focus(self, request: GenerationRequest) -> list[tuple[GenerationRequest, FocusPlan]]:
        if self.text_focus is None:
            raise ValueError("text_focus needs the model's text geometry (\"text_focus\" in its qwenimage.json); "
                             "this model declares none")
        if self._ocr is None:
            from qwenimage.ocr import OcrEngine

            self._ocr = OcrEngine()
        return focus_request(request, self.text_focus, self._ocr)

    def _assemble(self, request: GenerationRequest,
                  parts: list[tuple[GenerationResult, FocusPlan | None]]) -> GenerationResult:
        """A request's result: its own, or its canvas edits pasted into the source one after another where their
        latents changed (pipelines/text_focus.py); latents: the first canvas's."""
        if parts[0][1] is None:
            return parts[0][0]
        threshold = request.keep_unedited if request.keep_unedited is not None else DEFAULT_KEEP_THRESHOLD
        image, edited = None, None
        for part, plan in parts:
            mask = edited_area(part.latents, self.encode_image(plan.canvas, sample=False), threshold,
                               self.vae.spatial_factor)                                # [h, w] on the canvas
            image, alpha = plan.paste(self.decode_pixels(part.latents).cpu(), mask.cpu(), base=image)
            edited = alpha > 0 if edited is None else edited | (alpha > 0)
        return GenerationResult(image, parts[0][0].latents, request, request.seed,
                                sum(part.cache_skips for part, _ in parts),
                                kept_fraction=float(1 - edited.mean()))

    def _result(self, prepared: Prepared, latents: torch.Tensor, cache_skips: int) -> GenerationResult:
        request = prepared.request
        if request.keep_unedited is None or request.task is not Task.EDIT:
            return GenerationResult(self.decode(latents), latents, request, request.seed, cache_skips)
        # the last condition image at the output size: its pixels and latents, compared with the edit's
        source = load_image(request.images[-1]).resize((prepared.width, prepared.height), Image.Resampling.LANCZOS)
        mask = edited_area(latents, self.encode_image(source, sample=False), request.keep_unedited,
                           self.vae.spatial_factor)                                    # [H, W]
        pixels = keep_unedited(self.decode_pixels(latents).cpu(), pil_to_tensor(source), mask.cpu())
        return GenerationResult(tensor_to_pil(pixels), latents, request, request.seed, cache_skips,
                                kept_fraction=float((mask == 0).float().mean()))

    def _start(self, request: GenerationRequest) -> int:
        return start_index(request.num_steps, request.start_strength())

    def _sample_group(self, group: list[Prepared], indices: list[int], progress: ProgressFn | None,
                      preview: PreviewFn | None) -> tuple[list[torch.Tensor], list[int]]:
        """The group's latents [C, h, w] per request, and the transformer passes the step cache skipped."""
        request = group[0].request
        steps, start = request.num_steps, self._start(request)
        target_len = max(p.grid[0] * p.grid[1] for p in group)
        pad = lambda t: torch.nn.functional.pad(t, (0, 0, 0, target_len - t.shape[0]))  # noqa: E731
        noise = torch.stack([pad(p.noise) for p in group])  # [B, S_tgt, C]
        sigmas = torch.stack([sigmas_for(steps, p.grid[0] * p.grid[1], self.schedule_for(p.request))
                              for p in group]).to(self.device)  # [B, steps + 1]
        layout = TokenLayout([p.grid for p in group], [p.reference_grids for p in group],
                             [p.reference_tokens for p in group])
        x, hook = noise, None
        if any(p.known is not None for p in group):
            known = torch.stack([pad(p.known if p.known is not None else p.noise) for p in group])
            x = noise_to(known, noise, sigmas[:, start, None, None]).to(noise.dtype)
            if any(p.mask is not None for p in group):
                mask = torch.stack([pad(p.mask if p.mask is not None else torch.ones_like(p.noise)) for p in group])
                hook = InpaintBlend(known, noise, mask, sigmas)
        text = stack_text([p.text for p in group])
        thresholds = [p.request.cache_threshold or 0.0 for p in group]
        caching = StepCaching(torch.tensor(thresholds)) if any(t > 0 for t in thresholds) else None
        velocity = guided_velocity(self.transformer, layout, text, self._guidance(group, layout, text), caching)
        def unpack(tokens: torch.Tensor) -> list[torch.Tensor]:  # [B, S_tgt, C] -> per request [C, h, w]
            return [unpack_latents(tokens[b:b + 1, : p.grid[0] * p.grid[1]], 2 * p.grid[0], 2 * p.grid[1])[0]
                    for b, p in enumerate(group)]

        def callback(step: int, steps: int, _x: torch.Tensor, denoised: torch.Tensor) -> None:
            if progress:
                progress(step + 1, steps)
            if preview:
                for index, latents in zip(indices, unpack(denoised)):
                    preview(index, step + 1, steps, latents)

        with self.offload.on_device(self.transformer):
            x = sample(velocity, x, sigmas, start=start, hook=hook, callback=callback if progress or preview else None)
        return unpack(x), caching.skipped() if caching is not None else [0] * len(group)

    def schedule_for(self, request: GenerationRequest) -> ScheduleConfig:
        """The pipeline's schedule with the request's overrides (`request.scheduler`) applied."""
        return override_schedule(self.schedule, request.scheduler) if request.scheduler else self.schedule

    def _guidance(self, group: list[Prepared], layout: TokenLayout, text: TextConditioning) -> Guidance:
        scales = torch.tensor([p.request.true_cfg_scale if p.negative is not None else 1.0 for p in group])
        if all(p.negative is None for p in group):
            return Guidance(scales)
        negatives = stack_text([p.negative if p.negative is not None else p.text for p in group])
        batched = self.cfg_batching
        if batched is None:
            text_len = max(text.embeds.shape[1], negatives.embeds.shape[1])
            batched = batch_cfg_by_default(self.device, layout.image_len() + text_len)
        return Guidance(scales, negatives, batched=batched)

    def decode(self, latents: torch.Tensor) -> Image.Image:
        """Normalised latents [C, h, w] -> RGB image."""
        return tensor_to_pil(self.decode_pixels(latents))

    def decode_pixels(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents [C, h, w] -> pixels [3, H, W] in [-1, 1]."""
        with self.offload.on_device(self.vae), torch.inference_mode():
            z = self.vae.denormalize_latents(latents[None].to(self.device, self.vae_dtype))  # [1, C, h, w]
            return self.vae.decode(z)[0]
