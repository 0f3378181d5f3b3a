"""Adapter for checkpoints with the original Wan-2.1 VAE names (`Wan2.1_VAE.pth`, ComfyUI files).

Both layouts hold the same tensors with the same shapes; only module names differ:

    ours (= diffusers)                          original Wan-2.1
    quant_conv / post_quant_conv                conv1 / conv2
    {encoder,decoder}.conv_in                   {encoder,decoder}.conv1
    {encoder,decoder}.norm_out / conv_out       {encoder,decoder}.head.0 / head.2
    *.mid_block.resnets.0 / attentions.0 / resnets.1   *.middle.0 / middle.1 / middle.2
    encoder.down_blocks.N                       encoder.downsamples.N
    decoder.up_blocks.I.resnets.J               decoder.upsamples.K  (one flat list: each stage's
    decoder.up_blocks.I.upsamplers.0            resnets, then its upsampler)
    <residual block>.norm1 / conv1 / norm2 / conv2 / conv_shortcut
                                                <residual block>.residual.0 / 2 / 3 / 6 / shortcut

The mapping is derived from the model built for `config`, so it holds for any VAEConfig.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from qwenimage.vae.blocks import ResidualBlock
from qwenimage.vae.config import VAEConfig
from qwenimage.vae.wan import WanVAE
from qwenimage.weights.errors import CheckpointError
from qwenimage.weights.load import load_state_dict_strict

RESIDUAL_PARTS = {"norm1": "residual.0", "conv1": "residual.2", "norm2": "residual.3", "conv2": "residual.6",
                  "conv_shortcut": "shortcut"}


def original_module_names(model: WanVAE) -> dict[str, str]:
    """Our module path -> the original module path, for every module whose name differs."""
    names = {"quant_conv": "conv1", "post_quant_conv": "conv2"}
    for coder in ("encoder", "decoder"):
        names.update({f"{coder}.conv_in": f"{coder}.conv1", f"{coder}.norm_out": f"{coder}.head.0",
                      f"{coder}.conv_out": f"{coder}.head.2", f"{coder}.mid_block.resnets.0": f"{coder}.middle.0",
                      f"{coder}.mid_block.attentions.0": f"{coder}.middle.1",
                      f"{coder}.mid_block.resnets.1": f"{coder}.middle.2"})
    for i in range(len(model.encoder.down_blocks)):
        names[f"encoder.down_blocks.{i}"] = f"encoder.downsamples.{i}"
    flat = 0
    for i, block in enumerate(model.decoder.up_blocks):
        for j in range(len(block.resnets)):
            names[f"decoder.up_blocks.{i}.resnets.{j}"] = f"decoder.upsamples.{flat}"
            flat += 1
        if block.upsamplers is not None:
            names[f"decoder.up_blocks.{i}.upsamplers.0"] = f"decoder.upsamples.{flat}"
            flat += 1
    for path, module in model.named_modules():
        if isinstance(module, ResidualBlock):
            names.update({f"{path}.{ours}": f"{names[path]}.{theirs}" for ours, theirs in RESIDUAL_PARTS.items()})
    return names


def original_key_map(model: WanVAE) -> dict[str, str]:
    """Our state-dict key -> the original Wan-2.1 key, for every tensor of `model`."""
    names = original_module_names(model)
    mapping = {}
    for key in model.state_dict():
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):  # the longest renamed module path that contains the tensor
            module = ".".join(parts[:cut])
            if module in names:
                mapping[key] = ".".join([names[module], *parts[cut:]])
                break
        else:
            mapping[key] = key
    return mapping


def convert_wan_original(state_dict: dict[str, torch.Tensor], config: VAEConfig, *,
                         source: str = "<state dict>") -> dict[str, torch.Tensor]:
    """An original-named state dict -> our names; unknown or missing keys raise CheckpointError naming `source`."""
    with torch.device("meta"):
        model = WanVAE(config)
    ours_by_original = {theirs: ours for ours, theirs in original_key_map(model).items()}
    unknown = sorted(set(state_dict) - set(ours_by_original))
    missing = sorted(set(ours_by_original) - set(state_dict))
    if unknown or missing:
        raise CheckpointError(f"{source}: not an original Wan-2.1 VAE state dict for this config: unknown keys "
                              f"{unknown[:8]} ({len(unknown)}), missing keys {missing[:8]} ({len(missing)})")
    expected = model.state_dict()
    converted = {}
    for key, tensor in state_dict.items():
        ours = ours_by_original[key]
        if tuple(tensor.shape) != tuple(expected[ours].shape):
            raise CheckpointError(f"{source}: original key {key!r} ({ours!r}) has shape {list(tensor.shape)}, "
                                  f"the model expects {list(expected[ours].shape)}")
        converted[ours] = tensor
    return converted


def load_wan_original(source: str | Path | dict[str, torch.Tensor], config: VAEConfig | None = None, *,
                      dtype: torch.dtype | None = None, device: str | torch.device = "cpu") -> WanVAE:
    """A WanVAE from an original-named checkpoint: a state dict, a .safetensors file or a .pth file."""
    config = config or VAEConfig()
    name = "<state dict>" if isinstance(source, dict) else str(source)
    state_dict = source if isinstance(source, dict) else _read_state_dict(Path(source))
    converted = convert_wan_original(state_dict, config, source=name)
    with torch.device("meta"):
        model = WanVAE(config)
    load_state_dict_strict(model, converted, source=name, dtype=dtype, device=device)
    return model.eval()


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors or .pth file; anything unreadable raises CheckpointError naming the file."""
    if not path.is_file():
        raise CheckpointError(f"Wan VAE checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  unpickling junk raises anything (KeyError, UnpicklingError, ...)
        kind = "safetensors" if path.suffix == ".safetensors" else "PyTorch (.pth)"
        raise CheckpointError(f"{path}: not a readable {kind} checkpoint, truncated or corrupt "
                              f"({type(err).__name__}: {(str(err).splitlines() or [''])[0]})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors")
    return state
