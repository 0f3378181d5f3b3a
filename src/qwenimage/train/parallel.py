"""Process groups and model wrapping: one process by default, DDP or FSDP2 under torchrun.

The model stays plain; parallelism is applied here, from outside (torchtitan style).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from qwenimage.dtypes import DTYPES



@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(strategy: str) -> DistInfo:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE set); otherwise one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if strategy != "none" and world == 1 and "RANK" not in os.environ:
        raise ValueError(f"parallel.strategy={strategy} needs torchrun (e.g. torchrun --nproc_per_node=2 ...)")
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if "RANK" not in os.environ:
        return DistInfo(device=device)
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=30))
    return DistInfo(dist.get_rank(), dist.get_world_size(), device)


def freeze_unused(transformer: nn.Module) -> list[str]:
    """Freeze parameters that cannot affect the output: the last block's text-stream attention output and
    text MLP (the text stream ends there). DDP and FSDP then need no unused-parameter search."""
    last = f"transformer_blocks.{len(transformer.transformer_blocks) - 1}."
    frozen = []
    for name, p in transformer.named_parameters():
        if name.startswith(last + "txt_mlp.") or name.startswith(last + "attn.to_add_out."):
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def wrap_model(model: nn.Module, strategy: str, info: DistInfo, param_dtype: str = "fp32") -> nn.Module:
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [info.device.index] if info.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    if strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(info.device.type, (info.world,))
        policy = MixedPrecisionPolicy(param_dtype=DTYPES[param_dtype], reduce_dtype=torch.float32)
        for block in model.transformer_blocks:
            fully_shard(block, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
        return model
    return model


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def shutdown_distributed() -> None:
    """Leave the process group cleanly: exiting with it alive can abort in gloo's threads at interpreter exit."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def average_gradients(module: nn.Module) -> None:
    """Average the gradients of a module that no DDP/FSDP wrapper syncs (a jointly trained text encoder)."""
    if not dist.is_initialized():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
