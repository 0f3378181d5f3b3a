"""`qwenimage train`: flow-matching / DPO / GRPO training of the transformer, or VAE training (a config with
`kind: vae`), from a YAML config with dotted overrides.

One process:   qwenimage train --config train.yaml optim.lr=1e-4 data.batch_size=8
The VAE:       qwenimage train --config configs/train/mini_vae.yaml optim.steps=4000
A recipe:      qwenimage train --config configs/train/mini_recipe.yaml   (data, VAE, transformer: `kind: recipe`)
RL (GRPO):     qwenimage train --config configs/train/mini_grpo.yaml     (rewards from OCR; no image data)
Several ranks: torchrun --nproc_per_node=8 -m qwenimage.cli.main train --config train.yaml parallel.strategy=fsdp
A run resumes from the newest complete checkpoint in output.dir.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the transformer (full, LoRA, DPO) over curriculum stages, or the VAE",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=None, help="YAML training config (see configs/train/)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.lr=1e-4")
    p.set_defaults(run=run_train)


def config_kind(path: Path | None, overrides: list[str]) -> str:
    """The job's `kind` (transformer training unless the YAML or an override says `kind: vae`)."""
    import yaml

    kind = "transformer"
    if path is not None and path.is_file():
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            raw = None  # load_job_config reports the syntax error with the file name
        if isinstance(raw, dict):
            kind = str(raw.get("kind", kind))
    for override in overrides:
        if override.startswith("kind="):
            kind = override.partition("=")[2]
    return kind


def run_train(args: argparse.Namespace) -> int:
    from qwenimage.jobconfig import load_job_config

    kind = config_kind(args.config, args.overrides)
    if kind == "vae":
        return run_vae_training(args)
    if kind == "recipe":
        return run_recipe_file(args)
    if kind != "transformer":
        raise ValueError(f"unknown training kind {kind!r}: use transformer (the default), vae or recipe")
    from qwenimage.train.config import TrainConfig
    from qwenimage.train.parallel import shutdown_distributed
    from qwenimage.train.trainer import Trainer

    config = load_job_config(TrainConfig, args.config, args.overrides)
    if not config.data.sources and config.objective.kind != "grpo":  # GRPO trains on its own samples
        raise ValueError("no training data: set data.sources (image folders or .tar shards)")
    try:
        losses = Trainer(config).run()
    finally:
        shutdown_distributed()
    return report_training("trained", losses, config.last_step, config.output.dir)


def report_training(what: str, losses: list[float], steps: int, out: str) -> int:
    if losses:
        print(f"{what} to step {steps}: first loss {losses[0]:.4f}, last loss {losses[-1]:.4f}; outputs in {out}")
    else:
        print(f"nothing to do: {out} already holds step {steps}")
    return 0


def run_vae_training(args: argparse.Namespace) -> int:
    from qwenimage.jobconfig import load_job_config
    from qwenimage.train.vae_trainer import VaeTrainConfig, VaeTrainer

    config = load_job_config(VaeTrainConfig, args.config, args.overrides)
    return report_training("VAE trained", VaeTrainer(config).run(), config.optim.steps, config.output.dir)


def run_recipe_file(args: argparse.Namespace) -> int:
    from qwenimage.jobconfig import load_job_config
    from qwenimage.train.recipe import RecipeConfig, run_recipe

    config = load_job_config(RecipeConfig, args.config, args.overrides)
    ran = run_recipe(config, args.config)
    print(f"recipe done: ran {', '.join(ran) if ran else 'nothing (every step was done)'}")
    return 0
