"""Training configuration: one dataclass tree, loaded from YAML with dotted overrides (see qwenimage.jobconfig)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DTYPE_NAMES = ("fp32", "bf16", "fp16")  # qwenimage.dtypes.DTYPES, named here without importing torch
AUTOCAST_SETTINGS = (True, False, "auto")  # optim.autocast_bf16 (qwenimage.devices.bf16_autocast)
# what a resumed run must share with the run that wrote its checkpoints (the rest, e.g. steps, stages, lr,
# log and checkpoint intervals, may change): the weights' shapes and dtype, the LoRA layout, the objective
RESUME_FIXED = ("model", "lora", "objective.kind")
# activation checkpointing recomputes activations (same numbers, less memory); model.transformer only names the
# starting weights, which a resumed run replaces with its checkpoint's
RESUME_FREE = ("model.activation_checkpointing", "model.transformer")


@dataclass
class ModelConfig:
    pipeline: str = ""  # a diffusers-layout folder: condition encoder, VAE, scheduler (and the transformer)
    transformer: str | None = None  # start the transformer from this folder instead of pipeline/transformer
    preset: str | None = None  # or build a fresh transformer from a preset (tiny | mini | official)
    dtype: str = "fp32"  # weights of the trainable model: fp32 (with autocast for bf16 compute) or bf16
    activation_checkpointing: bool = False
    # train the text encoder's language model jointly (text-to-image only; the producers then ship prompt token
    # ids instead of frozen prompt states). For small models trained from scratch, whose random encoder gives each
    # character a context-free code; exports then hold text_encoder/ beside transformer/.
    train_text_encoder: bool = False
    # with train_text_encoder: multiply the token embeddings by this when the run starts (a resumed run takes its
    # checkpoint's). qwenimage-mini's random encoder has unit-scale embeddings, so its layers add ~1% to the
    # residual stream and could not make the states depend on context; at 0.05 the states barely change (cosine
    # 0.98) and the layers weigh 20x more.
    text_embedding_scale: float = 1.0


@dataclass
class DataConfig:
    sources: list[str] = field(default_factory=list)  # image folders with sidecar captions, or WebDataset tars
    batch_size: int = 4  # global batch (all ranks, one micro-step)
    cache_size: int = 4096  # encoded samples kept in memory (per producer)
    short_text_chars: int = 12  # text of at most this many characters is "short"; longer or multi-line is "paragraph"
    # the data plane (train/dataplane/): producers encode ahead of the trainer, consumers only train
    producer: str = "local"  # local: worker threads in the trainer process | ray: producer actors
    producers: int = 1  # producer threads (local) or actors (ray) per trainer rank
    prefetch: int = 4  # micro-batches encoded ahead of the one training (bounds memory)
    disk_cache: bool = True  # keep encoded samples as safetensors files, reused by later epochs and runs
    cache_dir: str = ""  # default: <output.dir>/latent-cache; runs with the same encoders may share one
    ray_address: str = ""  # a Ray cluster to join ("auto", "ray://head:10001"); empty: start Ray locally
    producer_cpus: float = 1.0  # per Ray producer actor
    producer_gpus: float = 0.0  # per Ray producer actor; > 0 runs its encoders on that GPU
    max_restarts: int = 3  # a Ray producer that dies is restarted up to this many times (-1: always)
    sources_file: str = ""  # watched YAML: a list of sources or {sources, tasks}; edits apply at an epoch boundary
    watch_every: int = 10  # steps between checks for data updates (0: never)
    # records skipped as unreadable (image, JSON sidecar, tar member) that a run tolerates: a share of all the
    # records when < 1 (0.05 = 5 %), a count when >= 1; more is an error before training starts
    max_bad_records: float = 0.05


@dataclass
class GrpoConfig:
    """Flow-GRPO (train/grpo.py): the model samples its own images with the SDE sampler and learns from rewards.
    Image size and step counts come from the stages (resolution, steps); data.sources stay empty."""

    # an eval suite (qwenimage.eval.suites: en-words, words:PATH.txt, ...) or a text file, one prompt a line
    prompts: str = "en-words"
    # edits instead of text-to-image: a folder of edit pairs (what `eval edit --pairs` reads: a pairs.jsonl
    # manifest, the ID.source.png convention, or a synth folder written with `format: folder`); each rollout edits
    # a pair's source with its instruction, and the reward reads the pair's new text. `prompts` is then unused
    edit_pairs: str = ""
    prompt_split: str = "all"  # a suite's split to draw prompts from: all | dev | test
    prompts_per_step: int = 2  # prompts per optimizer step (per rank); each is sampled group_size times
    group_size: int = 4  # G: images per prompt, whose rewards are normalised together
    num_steps: int = 10  # sampling steps of a rollout
    cfg: float = 4.0  # true CFG scale of the rollouts (<= 1: no unconditional pass)
    negative_prompt: str = " "
    noise_level: float = 0.7  # a in the SDE's std_t = a * sqrt(sigma / (1 - sigma)) (sampling/sde.py)
    # the policy ratio's clip band [1 - clip, 1 + clip]; log-probs are means over all latent elements, so
    # ratios stay near 1 and the band is narrow
    clip: float = 1e-4
    # the log-probability the ratio divides by. recomputed: the policy's own, recomputed in the training pass and
    # detached (one update per rollout is exactly on-policy, so the ratio is 1 and the gradient A * grad log p; the
    # rollout's numerics, e.g. no-grad vs grad kernels, cannot push it out of the narrow band). rollout: the
    # value stored while sampling (for updates that reuse a rollout)
    old_log_prob: str = "recomputed"
    # DAPO's dynamic-sampling filter: a group whose G rewards are all equal has zero advantages, so its steps are
    # not trained (only its KL would pull); saves the training passes of the groups that teach nothing (one
    # process only: DDP ranks must all run their backward passes)
    skip_uniform_groups: bool = True
    kl_beta: float = 0.04  # weight of the KL to the frozen starting model (0: no reference model is kept)
    train_fraction: float = 1.0  # share of a rollout's steps trained on (a random subset per rollout)
    # train only on the first share of each rollout's steps: the last, least noisy ones have log-probs scaled by
    # 1 / std^2, so their gradients can drown the others' (1.0: every step eligible)
    trained_step_limit: float = 1.0
    reward: str = "ocr"  # ocr | module:function (train/rewards.py)
    reward_pool: str = "thread"  # where rewards are scored: thread | ray (actors; data.ray_address to join one)
    reward_workers: int = 1


@dataclass
class ObjectiveConfig:
    kind: str = "flow"  # flow | dpo | grpo
    logit_mean: float = 0.0  # t = sigmoid(N(logit_mean, logit_std))
    logit_std: float = 1.0
    resolution_shift: bool = False  # shift t towards noise for larger images, like the sampling schedule
    text_dropout: float = 0.0  # share of text-to-image samples trained with the empty prompt (for true CFG)
    null_prompt: str = " "  # the prompt of dropped samples: the negative prompt sampling uses
    # edit pairs: the target tokens that differ from the source (mean |latent difference| > edit_threshold)
    # weigh 1 + edit_weight in the flow loss, so the few tokens of the edit are not drowned by the copy
    edit_weight: float = 0.0
    edit_threshold: float = 0.5
    dpo_beta: float = 2000.0
    grpo: GrpoConfig = field(default_factory=GrpoConfig)


@dataclass
class StageConfig:
    name: str = "main"
    steps: int = 100
    resolution: int = 64  # the square side of the resolution tier, in pixels (256 / 640 / 1328 in the paper)
    text: str = "any"  # which records: any | none (no text) | short | paragraph
    tasks: dict[str, float] = field(default_factory=lambda: {"t2i": 1.0})  # t2i / ti2i / i2i weights
    sources: list[str] = field(default_factory=list)  # train only on these of data.sources (empty: all of them)
    # serve a task only from these of the sources, e.g. {t2i: [data/words]}: an edit pair's target has a caption
    # and would otherwise also train text-to-image (a task not named here: every source serves it)
    task_sources: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0
    grad_accumulation: int = 1
    ema_decay: float = 0.0  # 0 disables EMA
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) at update n: early exports follow training
    autocast_bf16: bool | str = False  # true, false or "auto" (bf16 where the device has bf16 units)
    text_encoder_lr: float = 0.0  # with model.train_text_encoder; 0: the same as lr


@dataclass
class LoraConfig:
    rank: int = 0  # 0 = full fine-tuning
    alpha: float | None = None  # default: rank
    targets: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])


@dataclass
class ParallelConfig:
    strategy: str = "none"  # none | ddp | fsdp (under torchrun)
    fsdp_param_dtype: str = "fp32"  # fsdp mixed precision: dtype of the all-gathered params (bf16 on GPU)


@dataclass
class OutputConfig:
    dir: str = "outputs/train"
    log_every: int = 10
    checkpoint_every: int = 100
    sample_every: int = 0  # 0 disables periodic sample images
    export_every: int = 0  # write the (EMA) transformer to <dir>/exports/step-N/transformer every N steps (0: never)
    export_dtype: str = "fp32"  # dtype of exported weights (bf16 halves the files of a shipped model)
    sample_prompts: list[str] = field(default_factory=lambda: ["a sign that reads HELLO"])
    sample_steps: int = 20
    tensorboard: bool = True


@dataclass
class TrainConfig:
    kind: str = "transformer"  # transformer (this config) | vae (train/vae_trainer.py: VaeTrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig()])
    optim: OptimConfig = field(default_factory=OptimConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    seed: int = 0
    # end the run after this step (0: at the end of the stages). The learning-rate schedule still spans all the
    # stages, so a time-boxed run ends where an uninterrupted one would have been, and raising it continues.
    stop_after: int = 0

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("at least one curriculum stage is needed")
        for stage in self.stages:
            unknown = set(stage.tasks) - {"t2i", "ti2i", "i2i"}
            if unknown or not any(w > 0 for w in stage.tasks.values()):
                raise ValueError(f"stage {stage.name!r}: tasks must weight some of t2i / ti2i / i2i, got {stage.tasks}")
            unknown = set(stage.task_sources) - {"t2i", "ti2i", "i2i"}
            if unknown:
                raise ValueError(f"stage {stage.name!r}: task_sources names {sorted(unknown)}, not t2i / ti2i / i2i")
            named = [src for srcs in stage.task_sources.values() for src in srcs]
            missing = [src for src in [*stage.sources, *named] if src not in self.data.sources]
            if missing and self.data.sources:
                raise ValueError(f"stage {stage.name!r}: sources {missing} are not among data.sources")
            if stage.text not in ("any", "none", "short", "paragraph"):
                raise ValueError(f"stage {stage.name!r}: text must be any|none|short|paragraph, got {stage.text!r}")
        if not 0.0 <= self.objective.text_dropout < 1.0:
            raise ValueError(f"objective.text_dropout must lie in [0, 1), got {self.objective.text_dropout}")
        if self.kind != "transformer":
            raise ValueError(f"a transformer training config has kind: transformer, got {self.kind!r}")
        if self.objective.kind not in ("flow", "dpo", "grpo"):
            raise ValueError(f"objective.kind must be flow, dpo or grpo, got {self.objective.kind!r}")
        if self.objective.kind == "grpo":
            self._check_grpo()
        data = self.data
        if data.producer not in ("local", "ray") or data.producers < 1 or data.prefetch < 0:
            raise ValueError(f"data.producer must be local|ray with producers >= 1 and prefetch >= 0, got "
                             f"{data.producer!r}, {data.producers}, {data.prefetch}")
        if self.parallel.strategy not in ("none", "ddp", "fsdp"):
            raise ValueError(f"parallel.strategy must be none|ddp|fsdp, got {self.parallel.strategy!r}")
        if self.model.train_text_encoder:
            self._check_text_encoder_training()
        for name, value, ok, rule in self._ranges():
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {value!r}")

    def _check_text_encoder_training(self) -> None:
        edits = sorted({t for stage in self.stages for t, w in stage.tasks.items() if w > 0 and t != "t2i"})
        problems = [f"stages train {edits}" if edits else "", "lora.rank > 0" if self.lora.rank > 0 else "",
                    f"objective.kind is {self.objective.kind}" if self.objective.kind != "flow" else "",
                    "parallel.strategy is fsdp" if self.parallel.strategy == "fsdp" else ""]
        problems = [p for p in problems if p]
        if problems:
            raise ValueError("model.train_text_encoder trains text-to-image only, with full weights, flow matching and "
                             f"one process or DDP; here {', '.join(problems)}")

    def _check_grpo(self) -> None:
        from qwenimage.train.rewards import POOL_KINDS, check_reward_spec

        g = self.objective.grpo
        if self.data.sources:
            raise ValueError(f"objective.kind grpo trains on its own samples: data.sources must be empty, got "
                             f"{self.data.sources}")
        check_reward_spec(g.reward)
        checks = [
            ("objective.grpo.prompts", g.prompts, bool(g.prompts.strip()) or bool(g.edit_pairs.strip()),
             "a suite name or a prompt file"),
            ("objective.grpo.prompt_split", g.prompt_split, g.prompt_split in ("all", "dev", "test"),
             "all, dev or test"),
            ("objective.grpo.prompts_per_step", g.prompts_per_step, g.prompts_per_step >= 1, ">= 1"),
            ("objective.grpo.group_size", g.group_size, g.group_size >= 2, ">= 2 (rewards are normalised per group)"),
            ("objective.grpo.num_steps", g.num_steps, 1 <= g.num_steps <= 1000, "in 1..1000"),
            ("objective.grpo.cfg", g.cfg, 0 <= g.cfg < float("inf"), "a finite number >= 0"),
            ("objective.grpo.noise_level", g.noise_level, g.noise_level > 0, "> 0 (0 has no log-probability)"),
            ("objective.grpo.clip", g.clip, 0 < g.clip < 1, "in (0, 1)"),
            ("objective.grpo.old_log_prob", g.old_log_prob, g.old_log_prob in ("recomputed", "rollout"),
             "recomputed or rollout"),
            ("objective.grpo.kl_beta", g.kl_beta, g.kl_beta >= 0, ">= 0"),
            ("objective.grpo.train_fraction", g.train_fraction, 0 < g.train_fraction <= 1, "in (0, 1]"),
            ("objective.grpo.trained_step_limit", g.trained_step_limit, 0 < g.trained_step_limit <= 1, "in (0, 1]"),
            ("objective.grpo.reward_pool", g.reward_pool, g.reward_pool in POOL_KINDS, f"one of {POOL_KINDS}"),
            ("objective.grpo.reward_workers", g.reward_workers, g.reward_workers >= 1, ">= 1"),
        ]
        for name, value, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {value!r}")

    def _ranges(self) -> list[tuple[str, object, bool, str]]:
        """(field, value, valid, rule) for every number and name that would otherwise fail mid-run."""
        d, o, out, lora = self.data, self.optim, self.output, self.lora
        checks = [(f"stages[{i}].steps", s.steps, s.steps >= 1, ">= 1") for i, s in enumerate(self.stages)]
        checks += [(f"stages[{i}].resolution", s.resolution, s.resolution >= 16, ">= 16")
                   for i, s in enumerate(self.stages)]
        return checks + [
            ("stop_after", self.stop_after, self.stop_after >= 0, ">= 0 (0: the end of the stages)"),
            ("data.batch_size", d.batch_size, d.batch_size >= 1, ">= 1"),
            ("data.cache_size", d.cache_size, d.cache_size >= 0, ">= 0"),
            ("data.watch_every", d.watch_every, d.watch_every >= 0, ">= 0 (0: never)"),
            ("data.max_bad_records", d.max_bad_records, d.max_bad_records >= 0, ">= 0 (a share < 1 or a count)"),
            ("model.text_embedding_scale", self.model.text_embedding_scale, self.model.text_embedding_scale > 0,
             "> 0 (1: unchanged)"),
            ("objective.edit_weight", self.objective.edit_weight, 0 <= self.objective.edit_weight < math.inf,
             ">= 0 and finite (0: every token weighs 1)"),
            ("objective.edit_threshold", self.objective.edit_threshold,
             0 < self.objective.edit_threshold < math.inf, "> 0 and finite (a mean latent difference)"),
            ("optim.lr", o.lr, o.lr > 0, "> 0"),
            ("optim.text_encoder_lr", o.text_encoder_lr, o.text_encoder_lr >= 0, ">= 0 (0: optim.lr)"),
            ("optim.warmup_steps", o.warmup_steps, o.warmup_steps >= 0, ">= 0"),
            ("optim.min_lr_ratio", o.min_lr_ratio, 0 <= o.min_lr_ratio <= 1, "in [0, 1]"),
            ("optim.grad_clip", o.grad_clip, o.grad_clip >= 0, ">= 0 (0: no clipping)"),
            ("optim.grad_accumulation", o.grad_accumulation, o.grad_accumulation >= 1, ">= 1"),
            ("optim.ema_decay", o.ema_decay, 0 <= o.ema_decay < 1, "in [0, 1) (0: no EMA)"),
            ("optim.autocast_bf16", o.autocast_bf16, o.autocast_bf16 in AUTOCAST_SETTINGS
             and type(o.autocast_bf16) in (bool, str), "true, false or auto"),
            ("lora.rank", lora.rank, lora.rank >= 0, ">= 0 (0: full fine-tuning)"),
            ("lora.alpha", lora.alpha, lora.alpha is None or lora.alpha > 0, "> 0 or null"),
            ("output.log_every", out.log_every, out.log_every >= 1, ">= 1"),
            ("output.checkpoint_every", out.checkpoint_every, out.checkpoint_every >= 1, ">= 1"),
            ("output.sample_every", out.sample_every, out.sample_every >= 0, ">= 0 (0: never)"),
            ("output.export_every", out.export_every, out.export_every >= 0, ">= 0 (0: never)"),
            ("output.sample_steps", out.sample_steps, out.sample_steps >= 1, ">= 1"),
            ("model.dtype", self.model.dtype, self.model.dtype in DTYPE_NAMES, f"one of {', '.join(DTYPE_NAMES)}"),
            ("output.export_dtype", out.export_dtype, out.export_dtype in DTYPE_NAMES,
             f"one of {', '.join(DTYPE_NAMES)}"),
        ]

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    @property
    def last_step(self) -> int:
        """The step the run ends after: `stop_after` when set, else the end of the stages."""
        return min(self.stop_after, self.total_steps) if self.stop_after else self.total_steps


def resume_changes(saved: dict, current: dict) -> list[str]:
    """The RESUME_FIXED fields that differ between a saved config and the current one (both as plain dicts,
    see qwenimage.jobconfig.job_config_to_dict), as "name: old there, new now"."""
    import dataclasses

    defaults = {"model": dataclasses.asdict(ModelConfig()), "lora": dataclasses.asdict(LoraConfig())}
    changes = []
    for key in RESUME_FIXED:
        old, new = _dotted(saved, key), _dotted(current, key)
        # a field missing from the saved config was added later: the run used its default
        known = _flat(_dotted(defaults, key), key) if _dotted(defaults, key) is not None else {}
        for name in sorted(set(_flat(old, key)) | set(_flat(new, key))):
            before = _flat(old, key).get(name, known.get(name))
            after = _flat(new, key).get(name)
            if before != after and name not in RESUME_FREE:
                changes.append(f"{name}: {before!r} there, {after!r} now")
    return changes


def _dotted(tree: dict, key: str):
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _flat(value, prefix: str) -> dict:
    if not isinstance(value, dict):
        return {prefix: list(value) if isinstance(value, tuple) else value}
    return {name: v for k, sub in value.items() for name, v in _flat(sub, f"{prefix}.{k}").items()}
