"""The device names accepted on the command line and by the loaders, checked before anything is loaded."""

from __future__ import annotations

import functools

import torch

DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """`name` as a torch.device that exists on this machine; None means cuda when available, else cpu.

    Raises ValueError naming the device for an unknown name, an unsupported type or an absent accelerator.
    """
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {str(name)!r}; use one of {', '.join(DEVICE_TYPES)} "
                         "(with an index for accelerators, e.g. cuda:1)") from err
    if device.type not in DEVICE_TYPES:
        raise ValueError(f"device {str(name)!r} is not supported here; use one of {', '.join(DEVICE_TYPES)}")
    if device.type != "cpu":
        _check_available(device, str(name))
    return device


def _check_available(device: torch.device, name: str) -> None:
    if device.type == "mps":
        available, count = torch.backends.mps.is_available(), 1
    else:
        backend = getattr(torch, device.type)  # torch.cuda, torch.xpu
        available = backend.is_available()
        count = backend.device_count() if available else 0
    if not available:
        raise ValueError(f"device {name!r} is not available: this machine (or this torch build, "
                         f"{torch.__version__}) has no {device.type.upper()} support; use --device cpu")
    if device.index is not None and device.index >= count:
        raise ValueError(f"device {name!r} does not exist: this machine has {count} {device.type} device(s)")


@functools.cache  # the hardware does not change; the attention asks at every call
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX) through oneDNN. Without it bf16 matmuls are
    emulated: a training step under bf16 autocast measured ~10x slower than in fp32 on an AVX2 AMD EPYC."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_autocast(setting: bool | str, device: torch.device) -> bool:
    """Whether a training run computes under bf16 autocast: true / false as set; "auto" where the device computes
    bf16 in hardware (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), fp32 elsewhere."""
    if type(setting) not in (bool, str) or setting not in (True, False, "auto"):
        raise ValueError(f"autocast_bf16 must be true, false or auto, got {setting!r}")
    if setting != "auto":
        return setting
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


@functools.cache
def cpu_has_int8_dot() -> bool:
    """Whether this CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX) that oneDNN's int8 GEMM
    (`torch._int_mm`) uses; without them model/int8_gemm.py computes the int8 products in fp32."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_vnni_supported", "_is_amx_tile_supported")]
    try:
        return any(bool(check()) for check in checks if check is not None)
    except RuntimeError:
        return False
