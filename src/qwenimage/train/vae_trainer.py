"""Training the VAE from scratch: L1 + MSE + a small KL, with an optional edge term that keeps letter strokes sharp.

    qwenimage train --config configs/train/mini_vae.yaml          # a YAML with `kind: vae`
    VaeTrainer(load_job_config(VaeTrainConfig, "mini_vae.yaml")).run()

Images only: the temporal convolutions (which mix video frames) are frozen. Each step draws `batch_size` random crops (`crop` pixels square) from the training images resized to the
`resolution` tier (the same tiers the transformer trains on), encodes them, samples the posterior, decodes
and takes the loss. Checkpoints (model, optimizer, schedule, EMA, RNG) go through train/checkpoint.py, so a
killed run resumes exactly. At the end the (EMA) VAE is saved in the diffusers layout with the per-channel
mean and std of its latents over the training images written into `latents_mean` / `latents_std`, which the
transformer's latent normalisation then uses.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from qwenimage.devices import bf16_autocast
from qwenimage.dtypes import DTYPES
from qwenimage.images import pil_to_tensor
from qwenimage.jobconfig import save_job_config
from qwenimage.train.checkpoint import resume, save_checkpoint
from qwenimage.train.config import DTYPE_NAMES
from qwenimage.train.data import fit_to_bucket, seed_for
from qwenimage.train.ema import EMA
from qwenimage.train.parallel import init_distributed
from qwenimage.train.records import Record, open_record_image, read_records
from qwenimage.train.trainer import warmup_cosine
from qwenimage.vae import WanVAE
from qwenimage.vae.config import VAEConfig

log = logging.getLogger(__name__)


@dataclass
class VaeModelConfig:
    init: str = ""  # a vae/ folder to start from; empty: a fresh VAE of `preset`
    preset: str = "mini"  # mini (qwenimage-mini's VAE) or a name of qwenimage.vae.VAE_PRESETS
    decoder_only: bool = False  # freeze the encoder: the latent space (and a transformer trained on it) stays valid


@dataclass
class VaeDataConfig:
    sources: list[str] = field(default_factory=list)  # image folders or WebDataset tars (like the transformer's)
    photos: int = 0  # also train on this many of the photos shipped with scikit-image (0: none)
    resolution: int = 128  # images are first fitted to this tier, like the transformer's training data
    crop: int = 64  # square random crops of this side (a multiple of 8)
    batch_size: int = 16


@dataclass
class VaeLossConfig:
    l1: float = 1.0
    mse: float = 1.0
    kl: float = 1e-6  # small: the latent must stay informative, only its scale is kept in check
    edge: float = 0.5  # L1 between Sobel gradients of input and reconstruction (0 disables)


@dataclass
class VaeOptimConfig:
    steps: int = 2000
    lr: float = 3e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) at update n (train/ema.py)
    autocast_bf16: bool | str = False  # true, false or "auto" (bf16 where the CPU has bf16 units)


@dataclass
class VaeOutputConfig:
    dir: str = "outputs/train-vae"
    log_every: int = 20
    checkpoint_every: int = 200
    export_to: str = ""  # also write the trained VAE into this pipeline folder's vae/ (e.g. the mini base folder)
    stats_images: int = 256  # training images whose latents give latents_mean / latents_std
    export_dtype: str = "fp32"  # fp32 | bf16 | fp16: the exported VAE's weights (training keeps fp32 masters)


@dataclass
class VaeTrainConfig:
    kind: str = "vae"
    model: VaeModelConfig = field(default_factory=VaeModelConfig)
    data: VaeDataConfig = field(default_factory=VaeDataConfig)
    loss: VaeLossConfig = field(default_factory=VaeLossConfig)
    optim: VaeOptimConfig = field(default_factory=VaeOptimConfig)
    output: VaeOutputConfig = field(default_factory=VaeOutputConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind != "vae":
            raise ValueError(f"a VAE training config has kind: vae, got {self.kind!r}")
        if self.data.crop % 8 or self.data.crop > self.data.resolution:
            raise ValueError(f"data.crop must be a multiple of 8 and at most data.resolution "
                             f"({self.data.resolution}), got {self.data.crop}")
        for name, value in (("data.batch_size", self.data.batch_size), ("optim.steps", self.optim.steps),
                            ("output.log_every", self.output.log_every),
                            ("output.checkpoint_every", self.output.checkpoint_every)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        if self.output.export_dtype not in DTYPE_NAMES:
            raise ValueError(f"output.export_dtype must be one of {', '.join(DTYPE_NAMES)}, "
                             f"got {self.output.export_dtype!r}")


def vae_config_for(preset: str) -> VAEConfig:
    if preset == "mini":
        from qwenimage.mini.build import MINI_VAE

        return MINI_VAE
    from qwenimage.vae import vae_preset

    return vae_preset(preset)


def sobel(x: torch.Tensor) -> torch.Tensor:
    """Horizontal and vertical Sobel responses of every channel: [B, C, H, W] -> [B, 2C, H, W]."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    kernel = torch.stack([kx, kx.T])[:, None].repeat(x.shape[1], 1, 1, 1)  # [2C, 1, 3, 3]
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])


def vae_loss(vae: WanVAE, x: torch.Tensor, weights: VaeLossConfig,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """x [B, 3, H, W] in [-1, 1] -> (loss, its parts)."""
    posterior = vae.encode(x)
    z = posterior.sample(generator)  # [B, Z, h, w]
    rec = vae.decode(z, clamp=False).float()  # [B, 3, H, W]
    parts = {"l1": (rec - x).abs().mean(), "mse": (rec - x).square().mean()}
    mean, logvar = posterior.mean.float(), posterior.logvar.float()
    parts["kl"] = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum(dim=1).mean()
    parts["edge"] = (sobel(rec) - sobel(x)).abs().mean() if weights.edge > 0 else torch.zeros((), device=x.device)
    loss = sum(getattr(weights, name) * value for name, value in parts.items())
    return loss, {name: float(value) for name, value in parts.items()}


def shipped_photos(count: int) -> list[Record]:
    """Up to `count` of the photos that ship with scikit-image: the synth engine's built-in backgrounds."""
    from PIL import Image

    from qwenimage.synth.scenes import photo_entries

    return [Record(id=f"photo/{entry.name}", image=Image.fromarray(entry.load().astype(np.uint8)), caption="")
            for entry in photo_entries(None, True)[:max(0, count)]]


class CropSampler:
    """Deterministic random crops: batch k's images and crop offsets are a function of (seed, k)."""

    def __init__(self, records: list[Record], resolution: int, crop: int, seed: int, step: int = 16):
        if not records:
            raise ValueError("no training images for the VAE: set data.sources or data.photos")
        self.records, self.resolution, self.crop, self.seed, self.step = records, resolution, crop, seed, step
        self.fitted: dict[int, torch.Tensor] = {}  # record index -> [3, H, W] in [-1, 1] at the tier

    def image(self, index: int) -> torch.Tensor:
        if index not in self.fitted:
            picture = fit_to_bucket(open_record_image(self.records[index].image), self.resolution, self.step)
            self.fitted[index] = pil_to_tensor(picture)
        return self.fitted[index]

    def batch(self, number: int, size: int) -> torch.Tensor:
        rng = np.random.default_rng(seed_for(self.seed, number, 5))
        crops = []
        for index in rng.integers(len(self.records), size=size):
            image = self.image(int(index))
            top = int(rng.integers(image.shape[1] - self.crop + 1))
            left = int(rng.integers(image.shape[2] - self.crop + 1))
            crops.append(image[:, top:top + self.crop, left:left + self.crop])
        return torch.stack(crops)  # [B, 3, crop, crop]


@torch.no_grad()
def latent_statistics(vae: WanVAE, sampler: CropSampler, count: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the posterior means over up to `count` whole training images, evenly spread."""
    sums, squares, n = 0.0, 0.0, 0
    picks = np.unique(np.linspace(0, len(sampler.records) - 1, min(count, len(sampler.records))).round().astype(int))
    for index in picks.tolist():  # spread over every source, not the first one's images
        z = vae.encode(sampler.image(index)[None]).mode().double()  # [1, Z, h, w]
        sums = sums + z.sum(dim=(0, 2, 3))
        squares = squares + z.square().sum(dim=(0, 2, 3))
        n += z.shape[0] * z.shape[2] * z.shape[3]
    mean = sums / n
    std = (squares / n - mean.square()).clamp_min(1e-12).sqrt()
    return [round(float(v), 5) for v in mean], [round(float(v), 5) for v in std]


class VaeTrainer:
    def __init__(self, config: VaeTrainConfig):
        self.config = config
        self.info = init_distributed("none")
        self.autocast_bf16 = bf16_autocast(config.optim.autocast_bf16, torch.device("cpu"))
        torch.manual_seed(config.seed)
        self.output = Path(config.output.dir)
        self.output.mkdir(parents=True, exist_ok=True)
        save_job_config(config, self.output / "config.yaml")
        model = config.model
        # fp32 master weights whatever the init folder stores (the shipped mini VAE is bf16)
        self.vae = (WanVAE.from_pretrained(model.init, dtype=torch.float32) if model.init
                    else WanVAE(vae_config_for(model.preset))).train()
        for name, param in self.vae.named_parameters():
            frozen = ".time_conv." in name  # time convolutions see only video: frozen here
            frozen |= model.decoder_only and name.startswith(("encoder.", "quant_conv."))
            param.requires_grad_(not frozen)
        optim = config.optim
        trainable = [p for p in self.vae.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=optim.lr, betas=(0.9, 0.99))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(optim.warmup_steps, optim.steps, optim.min_lr_ratio))
        self.ema = EMA(self.vae, optim.ema_decay, optim.ema_warmup) if optim.ema_decay > 0 else None
        data = config.data
        records = (read_records(data.sources) if data.sources else []) + shipped_photos(data.photos)
        self.sampler = CropSampler(records, data.resolution, data.crop, config.seed)
        self.step = resume(self.output, self.vae, self.optimizer, self.scheduler, self.ema, self.info)

    def train_step(self) -> tuple[float, dict[str, float]]:
        cfg = self.config
        x = self.sampler.batch(self.step, cfg.data.batch_size)
        generator = torch.Generator().manual_seed(seed_for(cfg.seed, self.step, 6))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast_bf16):
            loss, parts = vae_loss(self.vae, x, cfg.loss, generator)
        loss.backward()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in self.vae.parameters() if p.requires_grad], cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.vae, self.step + 1)  # self.step: the step being trained, from 0
        return float(loss), parts

    def run(self) -> list[float]:
        from qwenimage.train.monitor import Monitor

        cfg = self.config
        monitor = Monitor(self.output, cfg.optim.steps, self.step, tensorboard=False)
        losses = []
        while self.step < cfg.optim.steps:
            loss, parts = self.train_step()
            losses.append(loss)
            self.step += 1
            logged = self.step % cfg.output.log_every == 0 or self.step == cfg.optim.steps
            psnr = 10 * np.log10(4.0 / max(parts["mse"], 1e-12))  # pixels span [-1, 1]: peak-to-peak 2
            monitor.step(self.step, loss, self.scheduler.get_last_lr()[0], cfg.data.batch_size,
                         cfg.data.batch_size * cfg.data.crop ** 2, "vae", log=logged,
                         extra={**parts, "psnr": psnr} if logged else None)
            if self.step % cfg.output.checkpoint_every == 0 or self.step == cfg.optim.steps:
                save_checkpoint(self.output, self.step, self.vae, self.optimizer, self.scheduler, self.ema, self.info)
        monitor.close()
        self.export()
        return losses

    def export(self) -> Path:
        """The (EMA) VAE with its latent statistics, in `output/vae` (and `output.export_to/vae`)."""
        if self.ema is not None:
            self.ema.copy_to(self.vae)
        self.vae.eval()
        if self.config.model.decoder_only:  # the encoder did not change: keep its statistics
            mean, std = list(self.vae.config.latents_mean), list(self.vae.config.latents_std)
        else:
            mean, std = latent_statistics(self.vae, self.sampler, self.config.output.stats_images)
        exported = WanVAE(dataclasses.replace(self.vae.config, latents_mean=tuple(mean), latents_std=tuple(std)))
        exported.load_state_dict(self.vae.state_dict())
        exported.to(DTYPES[self.config.output.export_dtype])
        targets = [self.output / "vae"]
        if self.config.output.export_to:
            targets.append(Path(self.config.output.export_to) / "vae")
        for target in targets:
            exported.save_pretrained(target)
        log.info("VAE latents: mean %s, std %s", mean, std)
        return targets[0]
