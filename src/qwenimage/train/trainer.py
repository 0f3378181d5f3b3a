"""The training loop: flow matching (or Diffusion-DPO, or Flow-GRPO) over curriculum stages, on 1..N ranks.

    trainer = Trainer(load_job_config(TrainConfig, "train.yaml"))
    trainer.run()

Each optimizer step: stage from the step, micro-batches from the deterministic plan, encoded ahead by the
data plane's producers (train/dataplane: threads or Ray actors, with a persistent latent cache), loss,
backward, clip, AdamW, warmup+cosine LR, EMA; then logging, checkpoints and sample images on schedule.
With model.train_text_encoder the text encoder's language model trains too: the producers ship prompt token ids,
the loss runs the encoder with gradients, and checkpoints, EMA and exports cover both (JointModules).
With objective.kind grpo there is no data plane: each step's gradients come from the model's own samples and
their rewards (train/grpo.py), and the optimizer step, checkpoints, EMA and exports are the same.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import threading
from pathlib import Path

import torch

from qwenimage.jobconfig import job_config_to_dict, save_job_config
from qwenimage.model import QwenImageMMDiT, mmdit_preset
from qwenimage.train.checkpoint import finished_checkpoints, resume, save_checkpoint
from qwenimage.train.config import TrainConfig, resume_changes
from qwenimage.train.curriculum import stage_at
from qwenimage.train.data import loser_record  # noqa: F401  (imported from here by users and tests)
from qwenimage.train.data import (SampleEncoder, collate, load_frozen_encoders, noise_and_time, pipeline_edit_area,
                                  text_dropped)
from qwenimage.train.dataplane import Schedule, build_feed
from qwenimage.train.dataplane.updates import DataUpdates, broadcast_from_main, load_versions, save_versions
from qwenimage.train.ema import EMA
from qwenimage.train.objective import dpo_loss, flow_matching_loss
from qwenimage.devices import bf16_autocast, cpu_has_bf16
from qwenimage.dtypes import DTYPES
from qwenimage.train.parallel import (all_reduce_mean, average_gradients, freeze_unused, init_distributed, unwrap,
                                     wrap_model)
from qwenimage.sampling.conditioning import TextConditioning
from qwenimage.train.records import check_bad_records, read_sources

log = logging.getLogger(__name__)


def warmup_cosine(warmup: int, total: int, min_ratio: float):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def check_resumable(output: Path, config: TrainConfig) -> None:
    """A folder with checkpoints resumes only with the same model, LoRA and objective kind (config.RESUME_FIXED)
    as its config.yaml; other fields (steps, stages, lr, intervals) may change."""
    saved = output / "config.yaml"
    if not finished_checkpoints(output) or not saved.is_file():
        return
    import yaml

    try:
        old = yaml.safe_load(saved.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{saved}: unreadable ({err}); it records the run the checkpoints belong to") from None
    changes = resume_changes(old if isinstance(old, dict) else {}, job_config_to_dict(config))
    if changes:
        raise ValueError(f"{output} holds checkpoints of another model config ({'; '.join(changes)}): resume with "
                         "the same model, lora and objective.kind, or choose another output.dir")


def write_text_encoder(language_model: dict[str, torch.Tensor], source: Path, folder: Path) -> None:
    """A transformers `text_encoder/` folder: the Qwen2.5-VL of `source` (vision tower and all) with trained
    language-model weights, in fp32 (its states are all the transformer knows of the prompt)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    full = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(source), dtype=torch.float32, local_files_only=True)
    full.model.language_model.load_state_dict(language_model)
    full.save_pretrained(str(folder))


class JointModules(torch.nn.Module):
    """The transformer and a jointly trained text encoder under one module, for the optimizer, EMA and
    checkpoints (state keys `transformer.*` and `text_encoder.*`)."""

    def __init__(self, transformer: torch.nn.Module, text_encoder: torch.nn.Module):
        super().__init__()
        self.transformer, self.text_encoder = transformer, text_encoder


class Trainer:
    def __init__(self, config: TrainConfig):
        self.config = config
        self.info = init_distributed(config.parallel.strategy)
        torch.manual_seed(config.seed)
        self.output = Path(config.output.dir)
        check_resumable(self.output, config)
        self.records, bad = read_sources(config.data.sources)  # before any model loads: bad data fails fast
        check_bad_records(bad, len(self.records) + len(bad), config.data.max_bad_records)
        self.bad_records = len(bad)
        self.grpo = self._grpo_objective()  # None unless objective.kind is grpo (its prompts fail fast here)
        if self.info.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
            save_job_config(config, self.output / "config.yaml")
        self.autocast_bf16 = bf16_autocast(config.optim.autocast_bf16, self.info.device)
        if config.optim.autocast_bf16 is True and self.info.device.type == "cpu" and not cpu_has_bf16():
            log.warning("optim.autocast_bf16 on a CPU without bf16 units (AVX512-BF16 or AMX): bf16 matmuls are "
                        "emulated and a step may be ~10x slower than in fp32; set autocast_bf16: auto or false here")
        elif config.optim.autocast_bf16 == "auto":
            log.info("optim.autocast_bf16 auto: %s", "bf16 autocast" if self.autocast_bf16 else
                     "fp32 (no bf16 units on this device)")
        self.encoder, self.vae = self._frozen_encoders()
        self.text_model = self._trained_text_model()  # None unless model.train_text_encoder
        transformer = self._transformer()
        self.reference = None
        if config.objective.kind == "dpo" or (self.grpo is not None and config.objective.grpo.kl_beta > 0):
            self.reference = copy.deepcopy(transformer).requires_grad_(False).eval()
        if config.lora.rank > 0:
            self._add_lora(transformer)
        freeze_unused(transformer)
        transformer.set_activation_checkpointing(config.model.activation_checkpointing)
        self.model = wrap_model(transformer.train(), config.parallel.strategy, self.info,
                                config.parallel.fsdp_param_dtype)
        # what the optimizer, EMA and checkpoints cover: the transformer, with the text encoder when it trains
        self.trained = self.model if self.text_model is None else JointModules(self.model, self.text_model)
        optim = config.optim
        groups = [{"params": [p for p in self.model.parameters() if p.requires_grad]}]
        if self.text_model is not None:
            groups.append({"params": list(self.text_model.parameters()), "lr": optim.text_encoder_lr or optim.lr})
        self.optimizer = torch.optim.AdamW(groups, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(optim.warmup_steps, config.total_steps, optim.min_lr_ratio))
        self.ema = EMA(self.trained, optim.ema_decay, optim.ema_warmup) if optim.ema_decay > 0 else None
        self.samples = SampleEncoder(self.encoder, self.vae, config.data.cache_size, self.info.device,
                                     text_ids=self.text_model is not None,
                                     edit_area=pipeline_edit_area(config.model.pipeline))
        self.schedule = None  # GRPO samples its own images: no data schedule
        self.plans = []
        if self.grpo is None:
            self.schedule = Schedule(config, self.info.rank, self.info.world, self._data_versions(), self.records)
            self.plans = [self.schedule.plans[(0, i)] for i in range(len(config.stages))]
        self.updates = DataUpdates(config.data.sources_file)
        self.encoder_lock = threading.Lock()  # in-process producers share the encoders with sample images
        self.feed = None  # the data plane's consumer end, started by the first step
        self._null_text = None
        self._rollout_pipe = None
        self.step = resume(self.output, self.trained, self.optimizer, self.scheduler, self.ema, self.info)

    # ---- set-up ----------------------------------------------------------------------------------
    def _frozen_encoders(self):
        return load_frozen_encoders(self.config.model.pipeline, self.info.device)

    def _trained_text_model(self) -> torch.nn.Module | None:
        """The condition encoder's language model, in fp32 and with gradients, when it trains jointly."""
        if not self.config.model.train_text_encoder:
            return None
        language_model = self.encoder.model.language_model.float()
        scale = self.config.model.text_embedding_scale
        if scale != 1.0:  # before resume(), which loads a checkpoint's own embeddings over these
            with torch.no_grad():
                language_model.embed_tokens.weight.mul_(scale)
        return language_model.requires_grad_(True).train()

    def _grpo_objective(self):
        if self.config.objective.kind != "grpo":
            return None
        from qwenimage.train.grpo import GrpoObjective

        return GrpoObjective(self.config.objective.grpo, self.config.seed, self.info.rank, self.info.world,
                             self.config.data.ray_address)

    def _data_versions(self):
        versions = load_versions(self.output)
        if versions and versions[0].sources != list(self.config.data.sources):
            log.warning("data.sources differ from the recorded data versions: starting a new data history")
            return []
        return versions

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
        last = cfg.last_step
        monitor = Monitor(self.output, last, self.step, cfg.output.tensorboard, self.info.is_main)
        losses = []
        try:
            while self.step < last:
                step = self.step
                loss, samples, tokens = self.train_step(step)
                losses.append(loss)
                self.step = step + 1
                stage = cfg.stages[stage_at(cfg.stages, step)[0]].name
                logged = self.step % cfg.output.log_every == 0 or self.step == last
                monitor.step(self.step, loss, self.scheduler.get_last_lr()[0], samples, tokens, stage, log=logged,
                             extra=self.data_metrics(step) if logged else None)
                if self.step % cfg.output.checkpoint_every == 0 or self.step == last:
                    save_checkpoint(self.output, self.step, self.trained, self.optimizer, self.scheduler, self.ema,
                                    self.info)
                if cfg.output.sample_every and self.step % cfg.output.sample_every == 0:
                    self.write_samples()
                if cfg.output.export_every and self.step % cfg.output.export_every == 0:
                    self.export_snapshot()
        finally:
            self.close()
        monitor.close()
        self.export()
        return losses

    def train_step(self, step: int) -> tuple[float, int, int]:
        if self.grpo is not None:
            side = self.config.stages[stage_at(self.config.stages, step)[0]].resolution
            total, samples, tokens = self.grpo.accumulate(self.model, self.reference, self.rollout_pipeline(), step,
                                                          side, self.autocast_bf16)
        else:
            total, samples, tokens = self.accumulate_data_step(step)
        return self.apply_gradients(total), samples * self.info.world, tokens * self.info.world

    def accumulate_data_step(self, step: int) -> tuple[torch.Tensor, int, int]:
        """Flow matching / DPO: this step's micro-batches, backpropagated; (mean loss, samples, tokens) of this
        rank."""
        cfg = self.config
        feed = self.data_feed()
        self.poll_data_updates(step)
        accumulation = cfg.optim.grad_accumulation
        total, samples, tokens = torch.zeros((), device=self.info.device), 0, 0
        for micro in range(accumulation):
            stage_index, planned, _ = self.schedule.planned(step * accumulation + micro)
            encoded = feed.take(step * accumulation + micro)  # planned samples (then DPO losers), in order
            with torch.autocast(self.info.device.type, dtype=torch.bfloat16, enabled=self.autocast_bf16):
                loss, batch_tokens = self.micro_loss(planned, stage_index, encoded)
            (loss / accumulation).backward()
            total += loss.detach() / accumulation
            samples, tokens = samples + len(planned), tokens + batch_tokens
        return total, samples, tokens

    def apply_gradients(self, total: torch.Tensor) -> float:
        """Clip, step the optimizer and the learning rate, update the EMA; the loss averaged over the ranks."""
        cfg = self.config
        if self.text_model is not None:
            average_gradients(self.text_model)  # the transformer's are synced by its DDP wrapper
        trainable = [p for p in self.trained.parameters() if p.requires_grad]
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.trained, self.step + 1)  # self.step: the step being trained, from 0
        return all_reduce_mean(total).item()

    def rollout_pipeline(self):
        """The model in training as a pipeline (the folder's schedule, edit style and edit area) that GRPO samples
        its rollouts with."""
        from qwenimage.pipelines.loading import folder_edit_style
        from qwenimage.pipelines.pipeline import QwenImagePipeline
        from qwenimage.pipelines.sizes import SizeLimits
        from qwenimage.sampling.schedule import ScheduleConfig

        if self._rollout_pipe is None:
            folder = self.config.model.pipeline
            limits = SizeLimits(min_side=16, max_side=4096, edit_area=pipeline_edit_area(folder))
            self._rollout_pipe = QwenImagePipeline(
                self.model, self.vae, self.encoder, ScheduleConfig.from_folder(folder),
                device=self.info.device, size_limits=limits, edit_style=folder_edit_style(folder))
        return self._rollout_pipe

    def micro_loss(self, planned, stage_index: int, encoded) -> tuple[torch.Tensor, int]:
        objective = self.config.objective
        targets = [self.with_null_text(e) if text_dropped(p, self.config.seed, stage_index, objective.text_dropout)
                   else e for p, e in zip(planned, encoded)]
        batch = collate(targets, self.info.device, self.trained_text(targets))
        noise, t = noise_and_time(planned, batch, self.config.seed, stage_index, objective.logit_mean,
                                  objective.logit_std)
        if objective.resolution_shift:
            from qwenimage.sampling.schedule import ScheduleConfig
            from qwenimage.train.objective import shift_for_resolution

            t = shift_for_resolution(t, batch.layout.target_lengths, ScheduleConfig())
        tokens = sum(batch.layout.target_lengths)
        if objective.kind == "dpo":
            lose = collate(encoded[len(planned):], self.info.device)
            return dpo_loss(self.model, self.reference, batch, lose, t, noise, objective.dpo_beta), 2 * tokens
        return flow_matching_loss(self.model, batch, t, noise, objective.edit_weight,
                                  objective.edit_threshold).mean(), tokens

    def trained_text(self, samples) -> TextConditioning | None:
        """[B, S_txt, D] prompt states of the text encoder in training (None when it is frozen: the samples
        carry their states)."""
        if self.text_model is None:
            return None
        prompt = self.encoder.encode_ids([s.text_ids for s in samples])
        return TextConditioning(prompt.embeds, prompt.mask_or_none())

    def with_null_text(self, sample):
        """The sample with the null prompt (text dropout): its token ids, or its frozen states."""
        if self.text_model is not None:
            return dataclasses.replace(sample, text_ids=self.encoder.prompt_ids(self.config.objective.null_prompt))
        return dataclasses.replace(sample, text=self.null_text())

    def null_text(self) -> torch.Tensor:
        """[S, D] embedding of the null prompt, which text-dropped samples train with (encoded once)."""
        if self._null_text is None:
            with self.encoder_lock, torch.no_grad():
                embeds = self.encoder.encode_prompts([self.config.objective.null_prompt]).embeds[0]
            self._null_text = embeds.float().cpu()
        return self._null_text

    # ---- the data plane ----------------------------------------------------------------------------
    def data_feed(self):
        if self.feed is None:
            self.feed = build_feed(self.config, self.schedule, self.samples, self.encoder_lock, self.info.world)
        return self.feed

    def update_data(self, sources: list[str] | None = None, tasks: dict[str, float] | None = None) -> None:
        """Change the training data while training runs (rank 0; None keeps the current value): applied at the
        next check (data.watch_every) and from the next epoch boundary on, on every rank."""
        self.updates.request(sources, tasks)

    def poll_data_updates(self, step: int) -> None:
        every = self.config.data.watch_every
        if every <= 0 or step % every:
            return
        version = self._decide_data_update(step) if self.info.is_main else None
        version = broadcast_from_main(version)
        if version is not None and not self.info.is_main:
            self.schedule.add(version)
        if version is not None:
            log.info("data version %d (sources %s, tasks %s) decided at step %d, starts at step %d", version.index,
                     version.sources, version.tasks, step, version.start_step)

    def _decide_data_update(self, step: int):
        change = self.updates.poll(self.schedule.versions[-1])
        if change is None:
            return None
        try:
            version = self.schedule.decide(change["sources"], change["tasks"], step, self.feed.submitted_until)
        except (ValueError, OSError) as err:
            log.warning("data update rejected: %s", err)
            return None
        save_versions(self.output, self.schedule.versions)
        return version

    def data_metrics(self, step: int) -> dict[str, float]:
        if self.grpo is not None:
            return dict(self.grpo.metrics)  # rewards, KL, clipped share of the last step
        metrics = self.feed.metrics() if self.feed is not None else {}
        return {**metrics, "data_version": self.schedule.version_at(step).index, "bad_records": self.bad_records}

    def close(self) -> None:
        """Stop the producers and the reward workers (threads or Ray actors)."""
        if self.feed is not None:
            self.feed.close()
            self.feed = None
        if self.grpo is not None:
            self.grpo.close()

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
        with self.encoder_lock, torch.no_grad():
            results = pipe.generate(requests)
        self.model.train()
        if self.info.is_main:
            folder = self.output / "samples"
            folder.mkdir(exist_ok=True)
            for i, result in enumerate(results):
                result.image.save(folder / f"step-{self.step:08d}-{i}.png")

    def full_state(self) -> dict[str, torch.Tensor] | None:
        """Every weight of the (possibly sharded) model on the CPU, on the main rank (None elsewhere)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return full if self.info.is_main else None

    def save_transformer(self, state: dict[str, torch.Tensor], folder: Path) -> None:
        """`state` as a diffusers transformer folder (built on the meta device: no second copy of the weights)."""
        with torch.device("meta"):
            export = QwenImageMMDiT(unwrap(self.model).config)
        export.load_state_dict(state, assign=True)
        export.save_pretrained(folder)

    def ema_names(self) -> dict[str, str]:
        """Transformer weight name (as in full_state) -> its EMA name (which carries the DDP and joint prefixes)."""
        prefix = "transformer." if self.text_model is not None else ""
        return {clean: prefix + wrapped for (clean, _), (wrapped, _) in
                zip(unwrap(self.model).named_parameters(), self.model.named_parameters())}

    def text_state(self, ema: bool) -> dict[str, torch.Tensor]:
        """The trained text encoder's language-model weights (EMA ones when `ema`), on the CPU."""
        state = self.text_model.state_dict()
        if ema:
            state = {name: self.ema.shadow.get(f"text_encoder.{name}", value) for name, value in state.items()}
        return {name: value.detach().float().cpu() for name, value in state.items()}

    def save_text_encoder(self, state: dict[str, torch.Tensor], folder: Path) -> None:
        if self.info.is_main:
            write_text_encoder(state, Path(self.config.model.pipeline) / "text_encoder", folder)

    def export_snapshot(self) -> Path | None:
        """The transformer's current weights (EMA when enabled; the training weights are left untouched) as a
        diffusers folder `exports/step-N/transformer`, written under a temporary name and renamed when complete."""
        import shutil

        full = self.full_state()
        if full is None:
            return None
        if self.ema is not None:
            names = self.ema_names()
            full = {name: self.ema.shadow.get(names.get(name, name), value) for name, value in full.items()}
        dtype = DTYPES[self.config.output.export_dtype]
        final = self.output / "exports" / f"step-{self.step:08d}"
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.save_transformer({k: v.to(dtype) for k, v in full.items()}, tmp / "transformer")
        if self.text_model is not None:
            self.save_text_encoder(self.text_state(ema=self.ema is not None), tmp / "text_encoder")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        log.info("exported the transformer at step %d to %s", self.step, final)
        return final

    def export(self) -> None:
        """Write the trained transformer (EMA weights when enabled, and then the training weights beside them as
        `transformer-raw/`) or the LoRA, in loadable formats."""
        if self.ema is not None and self.config.lora.rank == 0:
            raw = self.full_state()
            if raw is not None:
                self.save_transformer(raw, self.output / "transformer-raw")
            if raw is not None and self.text_model is not None:
                self.save_text_encoder(self.text_state(ema=False), self.output / "text_encoder-raw")
        if self.ema is not None:
            self.ema.copy_to(self.trained)
        full = self.full_state()
        if full is None:
            return
        if self.text_model is not None:  # the model holds the EMA weights now (when enabled)
            self.save_text_encoder(self.text_state(ema=False), self.output / "text_encoder")
        if self.config.lora.rank > 0:
            from qwenimage.weights.lora import save_lora

            save_lora(unwrap(self.model), self.output / "lora.safetensors")
            return
        self.save_transformer(full, self.output / "transformer")
