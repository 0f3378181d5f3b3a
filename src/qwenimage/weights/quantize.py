"""Weight quantisation of the transformer's linears through torchao, applied while the weights load.

Modes (`--quantize`, `load_pipeline(quantize=...)`):

- `int8`: int8 weights, one scale per output channel; activations stay in the model dtype (weight-only).
- `int8-dynamic`: int8 weights and int8 activations quantised per token at run time (W8A8), int8 GEMMs.
- `fp8`: float8 e4m3 weights and activations, per row; CUDA GPUs of compute capability >= 8.9 only.

Only the linears inside `transformer_blocks` are quantised (over 99% of the official model's weights); the
input, timestep and output layers stay in full precision. Each linear is quantised as soon as its weight
has been read, so memory holds the quantised model plus one full-precision layer, never the whole
full-precision model.

A quantised checkpoint is a component folder like any other (config.json, one or more
diffusion_pytorch_model*.safetensors) plus `quantization.json` ({"mode": ..., "format": ..., "torchao": version}).
The safetensors files hold torchao's flattened tensor subclasses: `<module>._weight_qdata`,
`<module>._weight_scale`, ... with the subclass attributes in the file's metadata
(`torchao.prototype.safetensors`). It loads with the same memory-mapped, module-by-module reading.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from qwenimage.devices import cpu_has_int8_dot
from qwenimage.weights.config_io import read_json, write_json_atomic
from qwenimage.weights.errors import CheckpointError
from qwenimage.weights.load import (assert_materialized, expected_shapes, load_weights, save_weights, split_key)

log = logging.getLogger(__name__)

QUANTIZE_MODES = ("int8", "int8-dynamic", "fp8")
QUANTIZED_PREFIX = "transformer_blocks."
QUANTIZATION_NAME = "quantization.json"
FORMAT = "torchao-safetensors"
FP8_MIN_CAPABILITY = (8, 9)


def check_quantize(mode: str | None, device: torch.device) -> None:
    """Raise a one-line ValueError for an unknown mode, a missing torchao, or fp8 where it cannot run."""
    if mode is None:
        return
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantization {mode!r}; choose one of {', '.join(QUANTIZE_MODES)}")
    try:
        import torchao  # noqa: F401
    except ImportError as err:
        raise ValueError(f"quantization {mode!r} needs torchao: pip install 'qwenimage[quant]'") from err
    if mode == "fp8":
        if device.type != "cuda":
            raise ValueError(f"quantization 'fp8' needs a CUDA GPU of compute capability >= 8.9; "
                             f"device {device} has no fp8 GEMMs (use int8 or int8-dynamic)")
        capability = torch.cuda.get_device_capability(device)
        if capability < FP8_MIN_CAPABILITY:
            raise ValueError(f"quantization 'fp8' needs compute capability >= 8.9; "
                             f"{torch.cuda.get_device_name(device)} has {capability[0]}.{capability[1]} (use int8 or int8-dynamic)")
    if mode == "int8-dynamic" and device.type == "cpu" and not cpu_has_int8_dot():
        log.warning("quantization 'int8-dynamic': this CPU has no int8 dot-product instructions (VNNI / AMX), so its "
                    "products run in fp32: int8 memory and numerics at about fp32 speed, not faster")


def torchao_config(mode: str):
    from torchao.quantization import (Float8DynamicActivationFloat8WeightConfig,
                                      Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, PerRow)

    configs = {"int8": lambda: Int8WeightOnlyConfig(),
               "int8-dynamic": lambda: Int8DynamicActivationInt8WeightConfig(),
               "fp8": lambda: Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())}
    return configs[mode]()


def is_quantized_weight(tensor: torch.Tensor) -> bool:
    return type(tensor) not in (torch.Tensor, nn.Parameter) and not tensor.is_meta


def linear_quantizer(mode: str):
    """A `load_weights` hook: quantise a block linear once its weight is loaded (and only once)."""
    from torchao.quantization import quantize_

    config = torchao_config(mode)

    def hook(name: str, module: nn.Module) -> None:
        if not (isinstance(module, nn.Linear) and name.startswith(QUANTIZED_PREFIX)):
            return
        if module.weight.is_meta or is_quantized_weight(module.weight):
            return
        quantize_(module, config, filter_fn=lambda m, fqn: m is module)

    return hook


def quantize_model(model: nn.Module, mode: str, device: torch.device | str = "cpu") -> nn.Module:
    """Quantise an already loaded model in place (the loaders quantise while reading instead)."""
    check_quantize(mode, torch.device(device))
    hook = linear_quantizer(mode)
    for name, module in model.named_modules():
        hook(name, module)
    model.quantization = mode
    return model


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes held by a tensor; for a torchao subclass, the sum of its inner tensors (qdata, scales)."""
    if hasattr(tensor, "__tensor_flatten__") and type(tensor) not in (torch.Tensor, nn.Parameter):
        names, _ = tensor.__tensor_flatten__()
        return sum(tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def model_bytes(model: nn.Module) -> int:
    return sum(tensor_bytes(t) for t in [*model.parameters(), *model.buffers()])


def stored_quantization(folder: Path) -> str | None:
    """The mode of a quantised checkpoint folder, None for a full-precision one."""
    path = Path(folder) / QUANTIZATION_NAME
    if not path.is_file():
        return None
    info = read_json(path, what=QUANTIZATION_NAME)
    mode = info.get("mode") if isinstance(info, dict) else None
    if mode not in QUANTIZE_MODES or info.get("format") != FORMAT:
        raise CheckpointError(f"{path}: expected mode in {QUANTIZE_MODES} and format {FORMAT!r}, got {info}")
    return mode


def load_quantized(model: nn.Module, folder: Path, files: list[Path], *, mode: str | None,
                   dtype: torch.dtype | None, device: torch.device) -> None:
    """Load `files` into the meta-built `model`, quantised: a stored quantised checkpoint as it is, a
    full-precision one quantised linear by linear while it is read."""
    stored = stored_quantization(folder)
    if stored is not None and mode not in (None, stored):
        raise ValueError(f"{folder} holds a {stored!r}-quantised checkpoint; it cannot be loaded as {mode!r}")
    check_quantize(mode or stored, device)
    if stored is None:
        load_weights(model, files, dtype=dtype, device=device, after_module=linear_quantizer(mode))
    else:
        _load_stored(model, files, device=device)
    model.quantization = mode or stored
    log.info("transformer weights quantised: %s", model.quantization)


def save_quantized(model: nn.Module, folder: Path, *, max_shard_bytes: int) -> list[Path]:
    """Write a quantised model's weights in the torchao safetensors format, plus quantization.json."""
    import torchao
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

    files = save_weights(model, folder, max_shard_bytes=max_shard_bytes, flatten=flatten_tensor_state_dict)
    write_json_atomic(Path(folder) / QUANTIZATION_NAME,
                      {"mode": model.quantization, "format": FORMAT, "torchao": torchao.__version__})
    return files


def _load_stored(model: nn.Module, files: list[Path], *, device: torch.device) -> None:
    from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict

    expected = expected_shapes(model)
    names = set()
    for path in files:
        try:
            with safe_open(str(path), framework="pt", device=str(device)) as handle:
                metadata = handle.metadata() or {}
                if "tensor_names" not in metadata:
                    raise CheckpointError(f"{path}: no torchao 'tensor_names' metadata; not a quantised checkpoint")
                by_module = _names_by_module(json.loads(metadata["tensor_names"]))
                file_keys = _keys_by_module(handle.keys())
                for prefix, tensor_names in by_module.items():
                    data = {key: handle.get_tensor(key) for key in file_keys.pop(prefix, [])}
                    sub_metadata = {"tensor_names": json.dumps(tensor_names),
                                    **{n: metadata[n] for n in tensor_names}}
                    tensors, leftover = unflatten_tensor_state_dict(data, sub_metadata)
                    if leftover or len(tensors) != len(tensor_names):
                        raise CheckpointError(f"{path}: module {prefix!r}: incomplete or extra quantised tensors "
                                              f"({sorted(set(tensor_names) - set(tensors)) or sorted(leftover)})")
                    _assign(model, prefix, tensors, expected, path)
                    names.update(tensors)
                if file_keys:
                    raise CheckpointError(f"{path}: tensors not listed in the metadata: {sorted(file_keys)[:5]}")
        except SafetensorError as err:
            raise CheckpointError(f"{path}: not a readable safetensors file, truncated or corrupt ({err})") from err
    missing = sorted(set(expected) - names)
    if missing:
        raise CheckpointError(f"{files[0].parent}: missing keys ({len(missing)}): {', '.join(missing[:12])}")
    assert_materialized(model)


def _assign(model: nn.Module, prefix: str, tensors: dict[str, torch.Tensor], expected: dict, path: Path) -> None:
    for key, tensor in tensors.items():
        if key not in expected:
            raise CheckpointError(f"{path}: unexpected key {key!r}")
        if tuple(tensor.shape) != expected[key]:
            raise CheckpointError(f"{path}: key {key!r} has shape {list(tensor.shape)}, "
                                  f"the model expects {list(expected[key])}")
    module = model.get_submodule(prefix)
    module.load_state_dict({split_key(k)[1]: t for k, t in tensors.items()}, strict=False, assign=True)
    for _, parameter in module.named_parameters(recurse=False):
        parameter.requires_grad_(False)


def _names_by_module(names: list[str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name in names:
        grouped.setdefault(split_key(name)[0], []).append(name)
    return grouped


def _keys_by_module(keys) -> dict[str, list[str]]:
    """File keys by module: `a.b.bias` and the flattened `a.b._weight_qdata` both belong to `a.b`."""
    grouped: dict[str, list[str]] = {}
    for key in keys:
        grouped.setdefault(split_key(key)[0], []).append(key)
    return grouped
