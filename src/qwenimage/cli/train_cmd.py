"""`qwenimage train`: flow-matching / DPO training from a YAML config with dotted overrides.

One process:   qwenimage train --config train.yaml optim.lr=1e-4 data.batch_size=8
Several ranks: torchrun --nproc_per_node=8 -m qwenimage.cli.main train --config train.yaml parallel.strategy=fsdp
A run resumes from the newest complete checkpoint in output.dir.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the transformer (full, LoRA, or DPO) over curriculum stages",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=None, help="YAML training config (see configs/train/)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.lr=1e-4")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from qwenimage.jobconfig import load_job_config
    from qwenimage.train.config import TrainConfig
    from qwenimage.train.parallel import shutdown_distributed
    from qwenimage.train.trainer import Trainer

    config = load_job_config(TrainConfig, args.config, args.overrides)
    if not config.data.sources:
        raise ValueError("no training data: set data.sources (image folders or .tar shards)")
    try:
        losses = Trainer(config).run()
    finally:
        shutdown_distributed()
    if losses:
        print(f"trained to step {config.total_steps}: first loss {losses[0]:.4f}, last loss {losses[-1]:.4f}; "
              f"outputs in {config.output.dir}")
    else:
        print(f"nothing to do: {config.output.dir} already holds step {config.total_steps}")
    return 0
