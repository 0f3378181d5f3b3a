"""The training loop: flow matching (or Diffusion-DPO) over curriculum stages, on 1..N ranks.

    trainer = Trainer(load_job_config(TrainConfig, "train.yaml"))
    trainer.run()

Each optimizer step: stage from the step, micro-batches from the deterministic plan, loss, backward,
clip, AdamW, warmup+cosine LR, EMA; then logging, checkpoints and sample images on schedule.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import replace
from pathlib import Path

import torch

from qwenimage.jobconfig import save_job_config
from qwenimage.model import QwenImageMMDiT, mmdit_preset
from qwenimage.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from qwenimage.train.config import TrainConfig
from qwenimage.train.curriculum import stage_at
from qwenimage.train.data import BatchPlan, SampleEncoder, collate, noise_and_time
from qwenimage.train.ema import EMA
from qwenimage.train.objective import dpo_loss, flow_matching_loss
from qwenimage.train.parallel import DTYPES, all_reduce_mean, freeze_unused, init_distributed, unwrap, wrap_model
from qwenimage.train.records import Record, read_records

log = logging.getLogger(__name__)


def warmup_cosine(warmup: int, total: int, min_ratio: float):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class Trainer:
    def __init__(self, config: TrainConfig):
        self.config = config
        self.info = init_distributed(config.parallel.strategy)
        torch.manual_seed(config.seed)
        self.output = Path(config.output.dir)
        if self.info.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
            save_job_config(config, self.output / "config.yaml")
        self.encoder, self.vae = self._frozen_encoders()
        transformer = self._transformer()
        self.reference = None
        if config.objective.kind == "dpo":
            self.reference = copy.deepcopy(transformer).requires_grad_(False).eval()
        if config.lora.rank > 0:
            self._add_lora(transformer)
        freeze_unused(transformer)
        transformer.set_activation_checkpointing(config.model.activation_checkpointing)
        self.model = wrap_model(transformer.train(), config.parallel.strategy, self.info,
                                config.parallel.fsdp_param_dtype)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        optim = config.optim
        self.optimizer = torch.optim.AdamW(trainable, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(optim.warmup_steps, config.total_steps, optim.min_lr_ratio))
        self.ema = EMA(self.model, optim.ema_decay) if optim.ema_decay > 0 else None
        self.records = read_records(config.data.sources)
        self.samples = SampleEncoder(self.encoder, self.vae, config.data.cache_size, self.info.device)
        self.plans = [BatchPlan(self.records, stage, i, config.seed, config.data.short_text_chars,
                                need_loser=config.objective.kind == "dpo") for i, stage in enumerate(config.stages)]
        self.step = 0
        latest = latest_checkpoint(self.output)
        if latest is not None:
            self.step = load_checkpoint(latest, self.model, self.optimizer, self.scheduler, self.ema, self.info)
            log.info("resumed from %s at step %d", latest, self.step)

    # ---- set-up ----------------------------------------------------------------------------------
    def _frozen_encoders(self):
        from qwenimage.text import ConditionEncoder
        from qwenimage.vae import WanVAE

        folder = Path(self.config.model.pipeline)
        if not (folder / "vae").is_dir():
            raise ValueError(f"model.pipeline {folder} is not a pipeline folder with text_encoder/ and vae/")
        encoder = ConditionEncoder.from_pretrained(folder, device=self.info.device).eval().requires_grad_(False)
        vae = WanVAE.from_pretrained(folder / "vae", device=self.info.device).eval().requires_grad_(False)
        return encoder, vae

    def _transformer(self) -> QwenImageMMDiT:
        model_cfg = self.config.model
        dtype = DTYPES[model_cfg.dtype]
        if model_cfg.preset:
            config = mmdit_preset(model_cfg.preset, joint_attention_dim=self.encoder.hidden_size,
                                  in_channels=self.vae.config.z_dim * 4, out_channels=self.vae.config.z_dim)
            return QwenImageMMDiT(config).to(self.info.device, dtype)
        folder = Path(model_cfg.transformer or Path(model_cfg.pipeline) / "transformer")
        return QwenImageMMDiT.from_pretrained(folder, dtype=dtype, device=self.info.device)

    def _add_lora(self, transformer: torch.nn.Module) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        lora = self.config.lora
        config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha or lora.rank, target_modules=list(lora.targets))
        transformer.requires_grad_(False)
        inject_adapter_in_model(config, transformer, adapter_name="default")
        for name, p in transformer.named_parameters():
            p.requires_grad_("lora_" in name)

    # ---- the loop --------------------------------------------------------------------------------
    def run(self) -> list[float]:
        from qwenimage.train.monitor import Monitor

        cfg = self.config
        monitor = Monitor(self.output, cfg.total_steps, self.step, cfg.output.tensorboard, self.info.is_main)
        losses = []
        while self.step < cfg.total_steps:
            step = self.step
            loss, samples, tokens = self.train_step(step)
            losses.append(loss)
            self.step = step + 1
            stage = cfg.stages[stage_at(cfg.stages, step)[0]].name
            monitor.step(self.step, loss, self.scheduler.get_last_lr()[0], samples, tokens, stage,
                         log=self.step % cfg.output.log_every == 0 or self.step == cfg.total_steps)
            if self.step % cfg.output.checkpoint_every == 0 or self.step == cfg.total_steps:
                save_checkpoint(self.output, self.step, self.model, self.optimizer, self.scheduler, self.ema,
                                self.info)
            if cfg.output.sample_every and self.step % cfg.output.sample_every == 0:
                self.write_samples()
        monitor.close()
        self.export()
        return losses

    def train_step(self, step: int) -> tuple[float, int, int]:
        cfg = self.config
        stage_index, step_in_stage = stage_at(cfg.stages, step)
        accumulation = cfg.optim.grad_accumulation
        total, samples, tokens = torch.zeros((), device=self.info.device), 0, 0
        for micro in range(accumulation):
            planned = self.plans[stage_index].micro_batch(step_in_stage * accumulation + micro, cfg.data.batch_size,
                                                          self.info.rank, self.info.world)
            with torch.autocast(self.info.device.type, dtype=torch.bfloat16, enabled=cfg.optim.autocast_bf16):
                loss, batch_tokens = self.micro_loss(planned, stage_index)
            (loss / accumulation).backward()
            total += loss.detach() / accumulation
            samples, tokens = samples + len(planned) * self.info.world, tokens + batch_tokens * self.info.world
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        return all_reduce_mean(total).item(), samples, tokens

    def micro_loss(self, planned, stage_index: int) -> tuple[torch.Tensor, int]:
        stage, objective = self.config.stages[stage_index], self.config.objective
        encoded = [self.samples.encode(self.records[p.record], p.task, stage.resolution) for p in planned]
        batch = collate(encoded, self.info.device)
        noise, t = noise_and_time(planned, batch, self.config.seed, stage_index, objective.logit_mean,
                                  objective.logit_std)
        if objective.resolution_shift:
            from qwenimage.sampling.schedule import ScheduleConfig
            from qwenimage.train.objective import shift_for_resolution

            t = shift_for_resolution(t, batch.layout.target_lengths, ScheduleConfig())
        tokens = sum(batch.layout.target_lengths)
        if objective.kind == "dpo":
            losers = [self.samples.encode(loser_record(self.records[p.record]), "t2i", stage.resolution)
                      for p in planned]
            lose = collate(losers, self.info.device)
            return dpo_loss(self.model, self.reference, batch, lose, t, noise, objective.dpo_beta), 2 * tokens
        return flow_matching_loss(self.model, batch, t, noise).mean(), tokens

    # ---- outputs ---------------------------------------------------------------------------------
    def write_samples(self) -> None:
        from qwenimage.pipelines.pipeline import QwenImagePipeline
        from qwenimage.pipelines.request import GenerationRequest
        from qwenimage.pipelines.sizes import SizeLimits

        cfg = self.config
        side = cfg.stages[stage_at(cfg.stages, max(0, self.step - 1))[0]].resolution
        pipe = QwenImagePipeline(self.model, self.vae, self.encoder, device=self.info.device,
                                 size_limits=SizeLimits(min_side=16, max_side=4096))
        requests = [GenerationRequest(p, width=side, height=side, num_steps=cfg.output.sample_steps, seed=i)
                    for i, p in enumerate(cfg.output.sample_prompts)]
        self.model.eval()
        results = pipe.generate(requests)
        self.model.train()
        if self.info.is_main:
            folder = self.output / "samples"
            folder.mkdir(exist_ok=True)
            for i, result in enumerate(results):
                result.image.save(folder / f"step-{self.step:08d}-{i}.png")

    def export(self) -> None:
        """Write the trained transformer (EMA weights when enabled) or the LoRA, in loadable formats."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        if self.ema is not None:
            self.ema.copy_to(self.model)
        full = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not self.info.is_main:
            return
        base = unwrap(self.model)
        if self.config.lora.rank > 0:
            from qwenimage.weights.lora import save_lora

            save_lora(base, self.output / "lora.safetensors")
            return
        with torch.device("meta"):
            export = QwenImageMMDiT(base.config)
        export.load_state_dict(full, assign=True)
        export.save_pretrained(self.output / "transformer")


def loser_record(record: Record) -> Record:
    return replace(record, id=record.id + "#lose", image=record.lose, lose=None)
