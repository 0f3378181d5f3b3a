"""Flow-matching noise schedule: sigmas from 1 towards 0 with the resolution-dependent (dynamic) shift.

sigma is the time t of the package convention (t = 1 is noise). The shift bends the schedule so that
larger images (more tokens) spend more steps at high noise:
    mu = linear in the target token count (base_image_seq_len -> base_shift, max_image_seq_len -> max_shift)
    sigma' = e^mu / (e^mu + (1/sigma - 1))              (exponential time shift)
    sigma'' = 1 - (1 - sigma') / k, k chosen so the last sigma equals shift_terminal
Reads the official `scheduler/scheduler_config.json` (FlowMatchEulerDiscreteScheduler keys).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import torch

from qwenimage.weights.config_io import read_json
from qwenimage.weights.errors import ConfigError

MAX_STEPS = 1000  # the schedule's ceiling: the official models are trained on 1000 timesteps

# keys of a diffusers scheduler config that must be off (we do not implement those variants)
UNSUPPORTED_FLAGS = ("invert_sigmas", "stochastic_sampling", "use_karras_sigmas", "use_exponential_sigmas",
                     "use_beta_sigmas")


@dataclass(frozen=True)
class ScheduleConfig:
    """Defaults are the official Qwen-Image scheduler config."""

    num_train_timesteps: int = 1000
    shift: float = 1.0
    use_dynamic_shifting: bool = True
    base_shift: float = 0.5
    max_shift: float = 0.9
    base_image_seq_len: int = 256
    max_image_seq_len: int = 8192
    shift_terminal: float | None = 0.02
    time_shift_type: str = "exponential"

    def __post_init__(self) -> None:
        if self.time_shift_type not in ("exponential", "linear"):
            raise ValueError(f"time_shift_type must be 'exponential' or 'linear', got {self.time_shift_type!r}")
        if self.shift_terminal is not None and not 0 <= self.shift_terminal < 1:
            raise ValueError(f"shift_terminal must be in [0, 1), got {self.shift_terminal}")
        if self.max_image_seq_len <= self.base_image_seq_len:
            raise ValueError(f"max_image_seq_len {self.max_image_seq_len} must exceed "
                             f"base_image_seq_len {self.base_image_seq_len}")
        if not self.shift > 0:
            raise ValueError(f"shift must be positive, got {self.shift}")

    @classmethod
    def from_folder(cls, folder: str | Path) -> ScheduleConfig:
        """Read `scheduler_config.json` from a scheduler folder (or a pipeline folder's `scheduler/`)."""
        folder = Path(folder)
        path = folder / "scheduler_config.json"
        if not path.is_file() and (folder / "scheduler" / "scheduler_config.json").is_file():
            path = folder / "scheduler" / "scheduler_config.json"
        raw = read_json(path, what="scheduler_config.json")
        enabled = [k for k in UNSUPPORTED_FLAGS if raw.get(k)]
        if enabled:
            raise ConfigError(f"{path}: unsupported scheduler options enabled: {enabled}")
        fields = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in raw.items() if k in fields})
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{path}: {err}") from err


def override_schedule(config: ScheduleConfig, overrides: Mapping[str, object] | Iterable[str]) -> ScheduleConfig:
    """`config` with some fields replaced: {"shift": 3} or ["shift=3", "shift_terminal=none"] (values from text are
    parsed by the field's type; none/null clears an optional field). Setting `shift` alone also turns the
    dynamic shift off, so that the fixed shift applies (as Lightning-style few-step LoRAs need).
    Raises ValueError naming an unknown key or a bad value."""
    if not isinstance(overrides, Mapping):
        overrides = parse_schedule_overrides(overrides)
    types = {f.name: f.type for f in dataclasses.fields(ScheduleConfig)}
    changes = {}
    for key, value in overrides.items():
        if key not in types:
            raise ValueError(f"unknown scheduler key {key!r}; known: {', '.join(types)}")
        changes[key] = _parse_value(key, value, types[key])
    if "shift" in changes and "use_dynamic_shifting" not in changes:
        changes["use_dynamic_shifting"] = False
    return dataclasses.replace(config, **changes)


def parse_schedule_overrides(items: Iterable[str]) -> dict[str, str]:
    """["shift=3", "shift_terminal=none"] -> {"shift": "3", "shift_terminal": "none"} (the last of a key wins)."""
    overrides = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"scheduler override {item!r} is not KEY=VALUE (e.g. shift=3)")
        overrides[key.strip()] = value.strip()
    return overrides


def _parse_value(key: str, value: object, kind: str) -> object:
    """A field value from its text (or as given, through its text): kind is the annotation, e.g. 'float | None'."""
    text = str(value).strip().lower()
    if "None" in kind and text in ("none", "null"):
        return None
    try:
        if kind.startswith("bool"):
            return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[text]
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float"):
            number = float(text)
            if not math.isfinite(number):
                raise ValueError
            return number
    except (KeyError, ValueError):
        raise ValueError(f"scheduler {key} must be a {kind}, got {value!r}") from None
    return str(value)


def shift_mu(image_seq_len: int, config: ScheduleConfig) -> float:
    """The shift parameter mu, linear in the number of target image tokens."""
    slope = (config.max_shift - config.base_shift) / (config.max_image_seq_len - config.base_image_seq_len)
    return image_seq_len * slope + (config.base_shift - slope * config.base_image_seq_len)


def time_shift(t: torch.Tensor, mu: float, kind: str = "exponential") -> torch.Tensor:
    """Bend t in (0, 1] towards 1 (noise): e^mu / (e^mu + (1/t - 1)), or mu / (mu + (1/t - 1)) if linear."""
    inverse = 1 / t - 1
    return math.exp(mu) / (math.exp(mu) + inverse) if kind == "exponential" else mu / (mu + inverse)


def sigmas_for(num_steps: int, image_seq_len: int, config: ScheduleConfig = ScheduleConfig()) -> torch.Tensor:
    """[num_steps + 1] fp32 sigmas, decreasing from 1, the last entry 0 (the clean image)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    if num_steps > MAX_STEPS:
        raise ValueError(f"num_steps must be at most {MAX_STEPS}, got {num_steps}")
    sigma = torch.linspace(1.0, 1.0 / num_steps, num_steps, dtype=torch.float64)
    if config.use_dynamic_shifting:
        sigma = time_shift(sigma, shift_mu(image_seq_len, config), config.time_shift_type)
    else:
        sigma = config.shift * sigma / (1 + (config.shift - 1) * sigma)
    if config.shift_terminal and sigma[-1] < 1:  # a 1-step schedule [1] has nothing to stretch
        one_minus = 1 - sigma
        sigma = 1 - one_minus / (one_minus[-1] / (1 - config.shift_terminal))
    return torch.cat([sigma.float(), torch.zeros(1)])


def euler_step(x: torch.Tensor, velocity: torch.Tensor, sigma: float | torch.Tensor,
               sigma_next: float | torch.Tensor) -> torch.Tensor:
    """x_{next} = x + (sigma_next - sigma) * v, in fp32, cast back to x's dtype."""
    return (x.float() + (sigma_next - sigma) * velocity.float()).to(x.dtype)


def noise_to(x0: torch.Tensor, noise: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """The point x_sigma = (1 - sigma) * x0 + sigma * noise on the straight path from x0 to noise."""
    return (1 - sigma) * x0 + sigma * noise
