"""LoRA adapters at inference: load, scale, fuse, unfuse, unload and save, on top of peft.

peft supplies the adapter layers (`inject_adapter_in_model`, `set_peft_model_state_dict`, merge/unmerge);
this module only turns the LoRA files people bring into a peft state dict plus a `LoraConfig`.

Key styles accepted (one per file; `X` is a module name of our model, e.g. `transformer_blocks.0.attn.to_q`):

    diffusers / peft   transformer.X.lora_A.weight, transformer.X.lora_B.weight (prefix optional: Lightning omits it)
    ComfyUI            diffusion_model.X.lora_A.weight / lora_B, or .lora_down.weight / .lora_up.weight
    kohya (musubi)     lora_unet_<X with '.' -> '_'>.lora_down.weight / .lora_up.weight

Every style may carry `<module>.alpha`; the update is then W + scale * (alpha / r) * B @ A, and without an
alpha it is W + scale * B @ A (alpha = r), as in diffusers, kohya and ComfyUI. A diffusers file without alpha
keys may record `lora_alpha` / `alpha_pattern` in its safetensors metadata (`lora_adapter_metadata`).
The kohya names are mapped back through the model's own module names, so the mapping is exact.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Mapping

import torch
from peft import LoraConfig
from peft.functional import delete_adapter, inject_adapter_in_model, set_adapter, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from peft.utils.other import get_pattern_key
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from qwenimage.weights.errors import CheckpointError

__all__ = ["LoraError", "fuse_lora", "linear_modules", "load_lora", "lora_adapters", "lora_config",
           "lora_state_dict_to_peft", "read_lora_file", "save_lora", "set_lora_scale", "unfuse_lora", "unload_lora"]

# key suffix -> which tensor of the module's LoRA it holds (A: down [r, in], B: up [out, r])
PART_SUFFIXES = {
    ".lora_A.weight": "A", ".lora_B.weight": "B",
    ".lora_A.default.weight": "A", ".lora_B.default.weight": "B",  # peft state dicts saved with the adapter name
    ".lora_down.weight": "A", ".lora_up.weight": "B",
    ".alpha": "alpha",
}
UNSUPPORTED_SUFFIXES = {
    ".dora_scale": "DoRA magnitude vectors", ".diff": "full weight differences", ".diff_b": "bias differences",
    ".lora_B.bias": "LoRA biases", ".lora_up.bias": "LoRA biases", ".lora_mid.weight": "LoCon mid weights",
}
UNSUPPORTED_MARKERS = {"hada_w": "LoHa", "lokr_w": "LoKr"}
# key style -> prefix; the bare style (no prefix) comes last and takes everything else
STYLE_PREFIXES = {"kohya": "lora_unet_", "ComfyUI": "diffusion_model.", "diffusers": "transformer.", "bare": ""}
SAVE_PREFIX = "transformer."
METADATA_KEY = "lora_adapter_metadata"  # diffusers stores the LoraConfig of a saved adapter here


class LoraError(CheckpointError):
    """A LoRA file or state dict that cannot be applied to the model; the message names the key."""


# ---------------------------------------------------------------- format detection and key normalisation

def lora_state_dict_to_peft(state_dict: Mapping[str, torch.Tensor], model: nn.Module,
                            metadata: Mapping[str, str] | None = None,
                            source: str = "LoRA state dict") -> tuple[dict[str, torch.Tensor], LoraConfig]:
    """A LoRA state dict in any accepted key style -> (peft state dict, LoraConfig) for `model`.

    The peft state dict has keys `<module>.lora_A.weight` [r, in] and `<module>.lora_B.weight` [out, r],
    cast to the dtype and device of the module's weight. The config targets exactly those modules and
    reproduces each module's rank and alpha through `rank_pattern` / `alpha_pattern`.
    `metadata` is the safetensors header metadata of the file, if any.
    """
    linears = linear_modules(model)
    parts = _split_parts(state_dict, source)
    style = _key_style(parts, source)
    modules = _module_names(list(parts), style, linears)
    unknown = [stem for name, stem in modules.items() if name not in linears]
    if unknown and style == "bare" and len(unknown) == len(modules):
        raise LoraError(f"{source}: unknown LoRA format: no key starts with one of "
                        f"{[p for p in STYLE_PREFIXES.values() if p]} or a module name of {type(model).__name__}; "
                        f"first few: {unknown[:5]}")
    if unknown:
        raise LoraError(f"{source}: {len(unknown)} of {len(modules)} LoRA modules ({style} key style) match no "
                        f"linear layer of {type(model).__name__}; first few: {unknown[:5]}")
    meta_alpha = _metadata_alphas(metadata)

    peft_sd: dict[str, torch.Tensor] = {}
    ranks: dict[str, int] = {}
    alphas: dict[str, float] = {}
    for name, stem in sorted(modules.items()):
        found = parts[stem]
        for needed in ("A", "B"):
            if needed not in found:
                raise LoraError(f"{source}: {stem} has no {'lora_A/lora_down' if needed == 'A' else 'lora_B/lora_up'} "
                                f"weight (found only {sorted(key for key, _ in found.values())})")
        (key_a, down), (key_b, up) = found["A"], found["B"]
        weight = linears[name].weight
        out_features, in_features = weight.shape
        rank = down.shape[0] if down.ndim == 2 else -1
        if down.ndim != 2 or down.shape[1] != in_features:
            raise LoraError(f"{source}: {key_a} has shape {list(down.shape)}, expected [rank, {in_features}] "
                            f"for {name} (a Linear {in_features} -> {out_features})")
        if tuple(up.shape) != (out_features, rank):
            raise LoraError(f"{source}: {key_b} has shape {list(up.shape)}, expected [{out_features}, {rank}] "
                            f"for {name} (a Linear {in_features} -> {out_features}, rank {rank} from {key_a})")
        if "alpha" in found:
            key_alpha, alpha = found["alpha"]
            if alpha.numel() != 1:
                raise LoraError(f"{source}: {key_alpha} has shape {list(alpha.shape)}, expected a scalar")
            alphas[name] = float(alpha.item())
        else:
            alphas[name] = meta_alpha(name, rank)
        ranks[name] = rank
        peft_sd[f"{name}.lora_A.weight"] = down.to(weight.device, weight.dtype)
        peft_sd[f"{name}.lora_B.weight"] = up.to(weight.device, weight.dtype)

    return peft_sd, lora_config(ranks, alphas)


def lora_config(ranks: Mapping[str, int], alphas: Mapping[str, float]) -> LoraConfig:
    """A LoraConfig targeting exactly these modules, with each module's rank and alpha (scale alpha / rank)."""
    r = Counter(ranks.values()).most_common(1)[0][0]
    alpha = Counter(alphas.values()).most_common(1)[0][0]
    return LoraConfig(
        r=r, lora_alpha=alpha, target_modules=sorted(ranks), lora_dropout=0.0, bias="none",
        rank_pattern={exact_pattern(n): v for n, v in ranks.items() if v != r},
        alpha_pattern={exact_pattern(n): v for n, v in alphas.items() if v != alpha},
        inference_mode=True)


def exact_pattern(name: str) -> str:
    """A peft rank/alpha pattern key that matches this module name only: peft tries `(.*\\.)?(key)$`, so
    `^` rules out a longer name that merely ends in this one."""
    return "^" + re.escape(name)


def linear_modules(model: nn.Module) -> dict[str, nn.Linear]:
    """Dotted name -> nn.Linear for every linear of the model; a LoRA-wrapped layer counts as its base layer."""
    found: dict[str, nn.Linear] = {}

    def walk(module: nn.Module, prefix: str) -> None:
        for child_name, child in module.named_children():
            name = prefix + child_name
            if isinstance(child, LoraLayer):
                found[name] = child.get_base_layer()
            elif isinstance(child, nn.Linear):
                found[name] = child
            else:
                walk(child, name + ".")

    walk(model, "")
    return found


def _split_parts(state_dict: Mapping[str, torch.Tensor], source: str) -> dict[str, dict[str, tuple[str, torch.Tensor]]]:
    """stem (key without its suffix) -> {"A" | "B" | "alpha": (original key, tensor)}."""
    parts: dict[str, dict[str, tuple[str, torch.Tensor]]] = {}
    unknown, unsupported = [], []
    for key, tensor in state_dict.items():
        suffix = next((s for s in PART_SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            kind = next((v for s, v in UNSUPPORTED_SUFFIXES.items() if key.endswith(s)), None)
            kind = kind or next((v for m, v in UNSUPPORTED_MARKERS.items() if m in key), None)
            (unsupported if kind else unknown).append(f"{key} ({kind})" if kind else key)
            continue
        part = parts.setdefault(key[: -len(suffix)], {})
        if PART_SUFFIXES[suffix] in part:
            raise LoraError(f"{source}: {key} and {part[PART_SUFFIXES[suffix]][0]} give the same LoRA tensor twice")
        part[PART_SUFFIXES[suffix]] = (key, tensor)
    if unsupported:
        raise LoraError(f"{source}: holds {len(unsupported)} keys of adapter kinds this loader does not support "
                        f"(plain LoRA only); first few: {unsupported[:5]}")
    if unknown:
        raise LoraError(f"{source}: unknown LoRA format: {len(unknown)} key(s) end in none of "
                        f"{sorted(PART_SUFFIXES)}; first few: {unknown[:5]}")
    if not parts:
        raise LoraError(f"{source}: no LoRA tensors in it (empty state dict)")
    return parts


def _style_of(stem: str) -> str:
    return next(style for style, prefix in STYLE_PREFIXES.items() if stem.startswith(prefix))


def _key_style(parts: Mapping[str, object], source: str) -> str:
    examples: dict[str, str] = {}
    for stem in parts:
        examples.setdefault(_style_of(stem), stem)
    if len(examples) > 1:
        raise LoraError(f"{source}: mixes LoRA key styles, e.g. {examples}; one file must use one style")
    return next(iter(examples))


def _module_names(stems: list[str], style: str, linears: Mapping[str, nn.Module]) -> dict[str, str]:
    """The kohya/ComfyUI/diffusers adapter: our dotted module name -> key stem (unmatched stems map to themselves)."""
    prefix = STYLE_PREFIXES[style]
    if style != "kohya":
        return {stem[len(prefix):]: stem for stem in stems}
    flat: dict[str, list[str]] = {}
    for name in linears:  # kohya flattens dots to underscores; invert through our own names, never by guessing
        flat.setdefault(name.replace(".", "_"), []).append(name)
    ambiguous = {k: v for k, v in flat.items() if len(v) > 1}
    assert not ambiguous, f"kohya names are ambiguous for this model: {ambiguous}"
    return {flat[stem[len(prefix):]][0] if stem[len(prefix):] in flat else stem: stem for stem in stems}


def _metadata_alphas(metadata: Mapping[str, str] | None):
    """(module name, rank) -> alpha from a diffusers `lora_adapter_metadata` header; alpha = rank without one."""
    raw = (metadata or {}).get(METADATA_KEY)
    if not raw:
        return lambda name, rank: float(rank)
    config = json.loads(raw)
    config = {k.removeprefix(SAVE_PREFIX): v for k, v in config.items() if "." not in k or k.startswith(SAVE_PREFIX)}
    if config.get("use_dora"):
        raise LoraError("the LoRA metadata says use_dora=True: DoRA adapters are not supported")
    default = config.get("lora_alpha")
    pattern = config.get("alpha_pattern") or {}

    def alpha(name: str, rank: int) -> float:
        key = get_pattern_key(list(pattern), name)
        value = float(pattern[key] if key in pattern else default if default is not None else rank)
        return value * rank ** 0.5 if config.get("use_rslora") else value  # rsLoRA scales by alpha / sqrt(r)

    return alpha


# ---------------------------------------------------------------- applying adapters

def read_lora_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and header metadata of a .safetensors LoRA file."""
    path = Path(path)
    if not path.is_file():
        raise LoraError(f"{path}: no such LoRA file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata() or {})
    except SafetensorError as err:
        raise LoraError(f"{path}: not a readable safetensors file ({err})") from err


def load_lora(model: nn.Module, source: str | Path | Mapping[str, torch.Tensor], adapter_name: str = "default",
              scale: float = 1.0) -> LoraConfig:
    """Add a LoRA adapter from a .safetensors file or a state dict and make it active next to any others.

    Loaded adapters add up: y = W x + sum_i scale_i * (alpha_i / r_i) * B_i A_i x. The base weights and their
    `requires_grad` flags are left as they were; the adapter tensors take the dtype and device of the base layers.
    """
    if any(layer.merged for layer in _lora_layers(model)):
        raise LoraError("the model has fused LoRA weights: call unfuse_lora(model) before loading another adapter")
    if adapter_name in lora_adapters(model):
        raise LoraError(f"an adapter named {adapter_name!r} is already loaded; unload it first")
    if isinstance(source, (str, Path)):
        state_dict, metadata = read_lora_file(source)
        name = str(source)
    else:
        state_dict, metadata, name = dict(source), None, "LoRA state dict"
    peft_sd, config = lora_state_dict_to_peft(state_dict, model, metadata, source=name)
    if not isinstance(source, (str, Path)):  # peft adopts these tensors as parameters: never alias the caller's
        peft_sd = {k: v.clone() for k, v in peft_sd.items()}

    grad_flags = {p: p.requires_grad for p in model.parameters()}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
        inject_adapter_in_model(config, model, adapter_name=adapter_name, low_cpu_mem_usage=True)
    result = set_peft_model_state_dict(model, peft_sd, adapter_name=adapter_name, low_cpu_mem_usage=True)
    for p, flag in grad_flags.items():
        p.requires_grad_(flag)
    if result.unexpected_keys:
        raise LoraError(f"{name}: peft did not place {result.unexpected_keys[:5]}")
    wrapped = {n for n, m in model.named_modules() if isinstance(m, LoraLayer) and adapter_name in m.lora_A}
    # not config.target_modules: from 20 names on, peft rewrites them as the shortest distinct suffixes
    targeted = {key.rsplit(".lora_", 1)[0] for key in peft_sd}
    assert wrapped == targeted, f"peft adapted {sorted(wrapped ^ targeted)[:5]}"
    set_adapter(model, lora_adapters(model), inference_mode=True, layer_cls=LoraLayer)
    set_lora_scale(model, scale, adapter_name)
    return config


def lora_adapters(model: nn.Module) -> list[str]:
    """Names of the loaded adapters, in load order."""
    return list(getattr(model, "peft_config", {}))


def set_lora_scale(model: nn.Module, scale: float, adapter_name: str = "default") -> None:
    """Set the user strength of one adapter: its update becomes scale * (alpha / r) * B A."""
    _require_adapter(model, adapter_name)
    for layer in _lora_layers(model):
        if layer.merged:
            raise LoraError("cannot change a LoRA scale while the adapters are fused; unfuse_lora(model) first")
        layer.set_scale(adapter_name, scale)


def fuse_lora(model: nn.Module, keep_base: bool = False) -> None:
    """Merge every loaded adapter into the base weights: W <- W + sum_i scale_i (alpha_i / r_i) B_i A_i.

    All adapters at once: peft skips the unmerged adapters of a merged layer, so fusing some would silently
    drop the others. With `keep_base=True` a CPU copy of each touched base weight is kept, so unfuse/unload
    restore it bit for bit; otherwise unfusing subtracts the update again, exact only up to rounding.
    """
    layers = _lora_layers(model)
    if any(layer.merged for layer in layers):
        raise LoraError("the model already has fused LoRA weights; unfuse_lora(model) first")
    for layer in layers:
        if keep_base:
            layer._qwenimage_base_weight = layer.get_base_layer().weight.detach().to("cpu", copy=True)
        layer.merge(adapter_names=list(layer.lora_A))


def unfuse_lora(model: nn.Module) -> None:
    """Take fused adapters out of the base weights again; they stay loaded and active."""
    for layer in _lora_layers(model):
        backup = layer.__dict__.pop("_qwenimage_base_weight", None)
        if backup is not None:
            with torch.no_grad():
                layer.get_base_layer().weight.copy_(backup)
            layer.merged_adapters.clear()
        elif layer.merged:
            layer.unmerge()


def unload_lora(model: nn.Module, adapter_name: str | None = None) -> None:
    """Remove one adapter (or all of them) and put the base linear layers back.

    Unfuses first. Base weights that were never fused (or fused with keep_base=True) come back exactly.
    """
    unfuse_lora(model)
    names = lora_adapters(model) if adapter_name is None else [adapter_name]
    for name in names:
        _require_adapter(model, name)
        delete_adapter(model, name, prefix="lora_", layer_cls=LoraLayer)
        del model.peft_config[name]
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, LoraLayer) and not child.lora_A:
                setattr(parent, child_name, child.get_base_layer())
    if lora_adapters(model):
        set_adapter(model, lora_adapters(model), inference_mode=True, layer_cls=LoraLayer)
    elif hasattr(model, "peft_config"):
        del model.peft_config


def save_lora(model: nn.Module, path: str | Path, adapter_name: str = "default", fold_alpha: bool = False) -> Path:
    """Write one adapter the way diffusers does: `transformer.X.lora_A.weight` / `lora_B.weight`, with the
    LoraConfig (ranks, alphas) in the safetensors metadata under `lora_adapter_metadata`.

    Tools that ignore that metadata (ComfyUI) assume alpha = rank; `fold_alpha=True` multiplies B by
    alpha / rank and saves alpha = rank, so the file means the same everywhere (the original alpha is lost).
    The user scale set at load time is not saved.
    """
    _require_adapter(model, adapter_name)
    tensors, ranks, alphas = {}, {}, {}
    for name, layer in model.named_modules():
        if isinstance(layer, LoraLayer) and adapter_name in layer.lora_A:
            if layer.use_rslora.get(adapter_name, False):
                raise LoraError(f"{name}: saving rsLoRA adapters is not supported")
            ranks[name], alphas[name] = layer.r[adapter_name], float(layer.lora_alpha[adapter_name])
            up = layer.lora_B[adapter_name].weight.detach()
            if fold_alpha:
                up, alphas[name] = up * (alphas[name] / ranks[name]), float(ranks[name])
            down = layer.lora_A[adapter_name].weight.detach()
            tensors[f"{SAVE_PREFIX}{name}.lora_A.weight"] = down.contiguous().cpu()
            tensors[f"{SAVE_PREFIX}{name}.lora_B.weight"] = up.contiguous().cpu()
    config = lora_config(ranks, alphas).to_dict()
    config = {SAVE_PREFIX + k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt", METADATA_KEY: json.dumps(config, sort_keys=True)})
    tmp.replace(path)
    return path


def _lora_layers(model: nn.Module) -> list[LoraLayer]:
    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def _require_adapter(model: nn.Module, name: str) -> None:
    if name not in lora_adapters(model):
        raise LoraError(f"no LoRA adapter named {name!r} is loaded (loaded: {lora_adapters(model)})")
