"""`PretrainedModel`: from_pretrained / save_pretrained for our model classes (diffusers folder layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from qwenimage.weights.config_io import config_from_dict, config_to_dict, read_json, write_json_atomic
from qwenimage.devices import resolve_device
from qwenimage.weights.load import find_weight_files, load_weights, parse_size, save_weights
from qwenimage.weights.quantize import QUANTIZATION_NAME, load_quantized, save_quantized, stored_quantization

M = TypeVar("M", bound="PretrainedModel")

CONFIG_NAME = "config.json"


class PretrainedModel(nn.Module):
    """Base class: a model built from a frozen config dataclass whose fields are diffusers' config keys.

    Subclasses set `config_class` and `diffusers_class_name` and take the config as their only
    constructor argument.
    """

    config_class: ClassVar[type]
    diffusers_class_name: ClassVar[str]

    @classmethod
    def config_from_folder(cls, folder: str | Path) -> Any:
        path = Path(folder) / CONFIG_NAME
        return config_from_dict(cls.config_class, read_json(path, what="config.json"), source=str(path),
                                class_name=cls.diffusers_class_name)

    @classmethod
    def from_pretrained(cls: type[M], folder: str | Path, *, subfolder: str | None = None,
                        dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
                        quantize: str | None = None) -> M:
        """Load a component folder (config.json + safetensors, single or sharded).

        The model is built on the meta device and the stored tensors are assigned into it, so memory
        holds one copy of the weights. `dtype=None` keeps the stored dtype of every tensor. `quantize`
        (int8, int8-dynamic, fp8) quantises the linears while loading (weights/quantize.py); a folder
        saved quantised (with quantization.json) loads quantised either way.
        """
        folder = Path(folder) / subfolder if subfolder else Path(folder)
        config = cls.config_from_folder(folder)
        files = find_weight_files(folder)
        with torch.device("meta"):
            model = cls(config)
        if quantize is not None or stored_quantization(folder) is not None:
            load_quantized(model, folder, files, mode=quantize, dtype=dtype, device=resolve_device(device))
        else:
            load_weights(model, files, dtype=dtype, device=device)
        return model.eval()

    def save_pretrained(self, folder: str | Path, *, max_shard_size: int | str = "10GB") -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if getattr(self, "quantization", None):
            save_quantized(self, folder, max_shard_bytes=parse_size(max_shard_size))
        else:
            save_weights(self, folder, max_shard_bytes=parse_size(max_shard_size))
            (folder / QUANTIZATION_NAME).unlink(missing_ok=True)
        write_json_atomic(folder / CONFIG_NAME, config_to_dict(self.config, class_name=self.diffusers_class_name))
        return folder

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
