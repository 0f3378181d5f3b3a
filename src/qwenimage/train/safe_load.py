"""Reading a checkpoint folder without running code from it (it may come from elsewhere).

torch.distributed.checkpoint reads its `.metadata` with plain `pickle.load` and the non-tensor values of a
state dict (optimizer hyper-parameters) with `torch.load(weights_only=False)`. Here `.metadata` is first read
by an unpickler that only builds DCP's own metadata records, and the values go through `weights_only=True`.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch
from torch.distributed.checkpoint import DefaultLoadPlanner
from torch.distributed.checkpoint._traverse import set_element  # what DefaultLoadPlanner itself uses

METADATA_MODULES = ("torch.distributed.checkpoint.metadata", "torch.distributed.checkpoint.filesystem")
PLAIN_GLOBALS = {("torch", "Size"), ("torch.serialization", "_get_layout"), ("pathlib", "PosixPath"),
                 ("pathlib", "PurePosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "PureWindowsPath"),
                 ("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset")}


class UnsafePickle(pickle.UnpicklingError):
    """A pickle that names a global outside the allowed records (it could run code)."""


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        value = super().find_class(module, name) if module in METADATA_MODULES or (module, name) in PLAIN_GLOBALS \
            or module == "torch" and isinstance(getattr(torch, name, None), torch.dtype) else None
        if value is None:
            raise UnsafePickle(f"refused to unpickle {module}.{name}: not a DCP metadata record")
        return value


def read_metadata(path: Path):
    """DCP's Metadata from a `.metadata` file, refusing any global but DCP's records, torch sizes and dtypes."""
    with open(path, "rb") as handle:
        return _MetadataUnpickler(handle).load()


class WeightsOnlyLoadPlanner(DefaultLoadPlanner):
    """DCP's default planner, except that non-tensor values load with `torch.load(weights_only=True)`."""

    def load_bytes(self, read_item, value: io.BytesIO) -> None:
        loaded = torch.load(value, weights_only=True)
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], loaded)
        else:
            self.state_dict[read_item.dest_index.fqn] = loaded
