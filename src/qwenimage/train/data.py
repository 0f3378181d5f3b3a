"""From records to training batches: a deterministic plan, encoding with a cache, and collation.

The plan is a pure function of (seed, stage, micro-step, rank): which records, which task, and the noise
and times of every sample. Resuming at step N therefore continues exactly where an uninterrupted run
would be, and a run on W ranks sees the same global batch as one process.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qwenimage.images import EDIT_AREA, condition_size, pil_to_tensor
from qwenimage.sampling.conditioning import TextConditioning, TokenLayout, stack_text
from qwenimage.sampling.packing import pack_latents
from qwenimage.train.config import StageConfig
from qwenimage.train.objective import FlowBatch, logit_normal_t
from qwenimage.train.records import Record, open_record_image

TASKS = ("t2i", "ti2i", "i2i")
I2I_PROMPT = "Reconstruct the input image exactly."


def seed_for(*parts: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence mixing)."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass(frozen=True)
class PlannedSample:
    record: int  # index into the record list
    task: str
    global_index: int  # position in the stage's stream of samples: seeds noise and time


class BatchPlan:
    """Which records each (stage, micro-step, rank) trains on."""

    def __init__(self, records: list[Record], stage: StageConfig, stage_index: int, seed: int, short_chars: int,
                 need_loser: bool = False, origin: int = 0, salt: int = 0):
        self.stage, self.stage_index, self.seed = stage, stage_index, seed
        self.need_loser = need_loser
        self.origin, self.salt = origin, salt  # epochs count from sample `origin`; salt: a data version's shuffle
        self._order: tuple[int, np.ndarray] | None = None  # the last epoch's permutation
        self.tasks = [t for t in TASKS if stage.tasks.get(t, 0) > 0]
        self.eligible = [i for i, r in enumerate(records) if self._selected(r, short_chars)]
        if not self.eligible:
            where = f" in {stage.sources}" if stage.sources else ""
            raise ValueError(f"stage {stage.name!r}: no record{where} with a sample_weight > 0 has text="
                             f"{stage.text!r} and one of the tasks {self.tasks}")
        self.records = records
        weights = np.array([records[i].weight for i in self.eligible], dtype=np.float64)
        # curation's sample_weight (category balance x token rarity): an epoch then draws as many records as the
        # stage has, in proportion to their weights; equal weights keep the plain permutation
        self.draw_p = None if np.all(weights == weights[0]) else weights / weights.sum()

    def _selected(self, record: Record, short_chars: int) -> bool:
        if self.stage.sources and record.origin not in self.stage.sources:
            return False
        text_ok = self.stage.text == "any" or record.text_kind(short_chars) == self.stage.text
        loser_ok = not self.need_loser or record.lose is not None
        return text_ok and loser_ok and record.weight > 0 and bool(self._options(record))

    def _options(self, record: Record) -> list[str]:
        """The stage's tasks this record serves (a task with task_sources only from those sources)."""
        served = self.stage.task_sources
        return [t for t in self.tasks if t in record.tasks() and (t not in served or record.origin in served[t])]

    def sample(self, global_index: int) -> PlannedSample:
        epoch, position = divmod(global_index - self.origin, len(self.eligible))
        record = self.eligible[self.order(epoch)[position]]
        options = self._options(self.records[record])
        weights = np.array([self.stage.tasks[t] for t in options], dtype=np.float64)
        rng = np.random.default_rng(seed_for(self.seed, self.stage_index, global_index, 7))
        return PlannedSample(record, options[rng.choice(len(options), p=weights / weights.sum())], global_index)

    def order(self, epoch: int) -> np.ndarray:
        """The eligible records of one epoch, in order (the last epoch's is kept): a permutation, or with unequal
        sample weights as many draws (with replacement) in proportion to them."""
        if self._order is None or self._order[0] != epoch:
            salt = (self.salt,) if self.salt else ()
            rng = np.random.default_rng(seed_for(self.seed, self.stage_index, epoch, *salt))
            count = len(self.eligible)
            order = rng.permutation(count) if self.draw_p is None else rng.choice(count, size=count, p=self.draw_p)
            self._order = (epoch, order)
        return self._order[1]

    def micro_batch(self, micro_step: int, global_batch: int, rank: int, world: int) -> list[PlannedSample]:
        if global_batch % world:
            raise ValueError(f"batch_size {global_batch} is not divisible by the {world} ranks")
        local = global_batch // world
        first = micro_step * global_batch + rank * local
        return [self.sample(first + k) for k in range(local)]


@dataclass
class EncodedSample:
    latents: torch.Tensor  # [C, h, w] normalised target latents
    text: torch.Tensor | None  # [S_txt, D] prompt states of the frozen encoder (None when text_ids is set)
    conditions: list[torch.Tensor]  # [C, h_i, w_i] normalised condition latents (TI2I, I2I)
    text_ids: torch.Tensor | None = None  # [S] templated prompt token ids, when the trainer trains the encoder

    def cpu(self) -> EncodedSample:
        move = (lambda t: None if t is None else t.cpu())
        return EncodedSample(self.latents.cpu(), move(self.text), [c.cpu() for c in self.conditions],
                             move(self.text_ids))


class SampleEncoder:
    """Runs the condition encoder and the VAE on records, with an LRU cache of encoded samples. With
    `text_ids` the prompt is only tokenized (the trainer runs the text encoder, which it trains)."""

    def __init__(self, encoder, vae, cache_size: int = 4096, device: str | torch.device = "cpu",
                 text_ids: bool = False, edit_area: int = EDIT_AREA):
        self.encoder, self.vae, self.device = encoder, vae, torch.device(device)
        self.text_ids = text_ids
        self.edit_area = edit_area  # the VL copy of an edit source: the pipeline's edit area, as at inference
        self.cache: OrderedDict[tuple, EncodedSample] = OrderedDict()
        self.cache_size = cache_size
        self.hits = self.misses = 0

    def encode(self, record: Record, task: str, resolution: int) -> EncodedSample:
        key = (record.id, task, resolution)
        if key in self.cache:
            self.hits += 1
            self.cache.move_to_end(key)
            return self.cache[key]
        self.misses += 1
        sample = self.encode_uncached(record, task, resolution)
        self.cache[key] = sample
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return sample

    @torch.no_grad()
    def encode_uncached(self, record: Record, task: str, resolution: int) -> EncodedSample:
        step = self.vae.spatial_factor * 2
        target = fit_to_bucket(open_record_image(record.image), resolution, step)
        if task == "t2i" and self.text_ids:
            return EncodedSample(self.latents(target), None, [], self.encoder.prompt_ids(record.caption))
        if self.text_ids:
            raise ValueError(f"model.train_text_encoder trains on text-to-image samples only, not {task!r}")
        if task == "t2i":
            text = self.encoder.encode_prompts([record.caption]).embeds[0]
            return EncodedSample(self.latents(target), text, [])
        source = target if task == "i2i" else fit_to_bucket(open_record_image(record.source), resolution, step)
        prompt = record.instruction if task == "ti2i" else (record.caption or I2I_PROMPT)
        from qwenimage.text.encoder import edit_style

        text = self.encoder.encode_edit([prompt], [[source]], style=edit_style("edit", self.edit_area)).embeds[0]
        return EncodedSample(self.latents(target), text, [self.latents(source)])

    def latents(self, image: Image.Image) -> torch.Tensor:
        dtype = next(self.vae.parameters()).dtype
        pixels = pil_to_tensor(image)[None].to(self.device, dtype)  # [1, 3, H, W]
        return self.vae.normalize_latents(self.vae.encode(pixels).mode())[0].float()  # [C, h, w]


def pipeline_edit_area(pipeline: str | Path) -> int:
    """The edit area the pipeline folder's qwenimage.json declares (size_limits.edit_area; 1024^2 if none)."""
    from qwenimage.pipelines.loading import size_limits

    return size_limits(Path(pipeline)).edit_area if str(pipeline) else EDIT_AREA


def load_frozen_encoders(pipeline: str | Path, device: str | torch.device):
    """The frozen condition encoder (Qwen2.5-VL) and VAE of a diffusers-layout pipeline folder: in the stored
    dtype on accelerators, in fp32 on the CPU (half-precision convolutions there are 10-40x slower)."""
    from qwenimage.text import ConditionEncoder
    from qwenimage.vae import WanVAE

    folder = Path(pipeline)
    if not (folder / "vae").is_dir():
        raise ValueError(f"model.pipeline {folder} is not a pipeline folder with text_encoder/ and vae/")
    dtype = torch.float32 if torch.device(device).type == "cpu" else None
    encoder = ConditionEncoder.from_pretrained(folder, dtype=dtype, device=device).eval().requires_grad_(False)
    vae = WanVAE.from_pretrained(folder / "vae", dtype=dtype, device=device).eval().requires_grad_(False)
    return encoder, vae


def loser_record(record: Record) -> Record:
    """DPO: the record of the losing image, encoded like a T2I sample with the same caption."""
    return replace(record, id=record.id + "#lose", image=record.lose, lose=None)


def fit_to_bucket(image: Image.Image, resolution: int, step: int) -> Image.Image:
    """Resize to about resolution^2 pixels at the image's aspect ratio (sides multiples of `step`), centre crop."""
    width, height = condition_size(image.width, image.height, resolution * resolution)
    width, height = max(step, width // step * step), max(step, height // step * step)
    scale = max(width / image.width, height / image.height)
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))),
                           Image.Resampling.LANCZOS)
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    return resized.crop((left, top, left + width, top + height))


def collate(samples: list[EncodedSample], device: torch.device, text: TextConditioning | None = None) -> FlowBatch:
    """Encoded samples -> FlowBatch: packed targets padded to the longest, condition tokens, padded text
    (`text` when given: the states of a text encoder in training; else the samples' own)."""
    targets = [pack_latents(s.latents[None])[0] for s in samples]  # [S_i, C*4]
    longest = max(t.shape[0] for t in targets)
    x0 = torch.stack([torch.nn.functional.pad(t, (0, 0, 0, longest - t.shape[0])) for t in targets])
    layout = TokenLayout(
        [(s.latents.shape[1] // 2, s.latents.shape[2] // 2) for s in samples],
        [[(c.shape[1] // 2, c.shape[2] // 2) for c in s.conditions] for s in samples],
        [torch.cat([pack_latents(c[None])[0] for c in s.conditions]).to(device) if s.conditions else None
         for s in samples])
    if text is None:
        text = stack_text([TextConditioning(s.text[None].to(device)) for s in samples])
    return FlowBatch(x0.to(device), layout, text)


def text_dropped(planned: PlannedSample, seed: int, stage_index: int, rate: float) -> bool:
    """Whether a text-to-image sample trains with the null prompt (seeded by its global index, like its noise)."""
    if rate <= 0 or planned.task != "t2i":
        return False
    rng = np.random.default_rng(seed_for(seed, stage_index, planned.global_index, 13))
    return bool(rng.random() < rate)


def noise_and_time(planned: list[PlannedSample], batch: FlowBatch, seed: int, stage_index: int, mean: float,
                   std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample noise [B, S, C] (zero on padding) and t [B], each seeded by the sample's global index, so
    they do not depend on the rank or on the other samples of the batch."""
    x0 = batch.x0
    noise = torch.zeros_like(x0)
    times = []
    for b, (p, length) in enumerate(zip(planned, batch.layout.target_lengths)):
        gen = torch.Generator().manual_seed(seed_for(seed, stage_index, p.global_index, 11))
        times.append(logit_normal_t(gen, 1, mean, std))
        noise[b, :length] = torch.randn(length, x0.shape[2], generator=gen).to(x0)
    return noise, torch.cat(times).to(x0.device)
