"""MMDiT configuration: a frozen dataclass whose fields are the diffusers `config.json` keys."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class MMDiTConfig:
    """Defaults are the official Qwen-Image transformer (20.4B parameters)."""

    patch_size: int = 2
    in_channels: int = 64  # 16 latent channels x 2x2 patch
    out_channels: int = 16
    num_layers: int = 60
    attention_head_dim: int = 128
    num_attention_heads: int = 24
    joint_attention_dim: int = 3584  # Qwen2.5-VL-7B hidden size
    guidance_embeds: bool = False
    axes_dims_rope: tuple[int, int, int] = (16, 56, 56)  # frame, row, column
    zero_cond_t: bool = False  # Qwen-Image-Edit-2511: condition tokens are modulated as if t = 0
    use_additional_t_cond: bool = False  # Qwen-Image-Layered
    use_layer3d_rope: bool = False  # Qwen-Image-Layered: the last image gets frame position -1

    def __post_init__(self) -> None:
        for name in ("patch_size", "in_channels", "num_layers", "attention_head_dim", "num_attention_heads",
                     "joint_attention_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if len(self.axes_dims_rope) != 3 or any(d <= 0 or d % 2 for d in self.axes_dims_rope):
            raise ValueError(f"axes_dims_rope must be three positive even numbers, got {self.axes_dims_rope}")
        if sum(self.axes_dims_rope) != self.attention_head_dim:
            raise ValueError(f"axes_dims_rope {self.axes_dims_rope} sums to {sum(self.axes_dims_rope)}, "
                             f"expected attention_head_dim {self.attention_head_dim}")
        if self.guidance_embeds:
            raise ValueError("guidance_embeds=True is not supported (no released Qwen-Image checkpoint uses it)")

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def output_channels(self) -> int:
        """Per-token output features: out_channels latent channels times the 2x2 patch."""
        return self.out_channels * self.patch_size**2


MMDIT_PRESETS: dict[str, MMDiTConfig] = {
    "official": MMDiTConfig(),
    # a ~0.5B model that trains on one GPU; the default small model grows from here
    "mini": MMDiTConfig(num_layers=12, attention_head_dim=64, num_attention_heads=16, joint_attention_dim=3584,
                        axes_dims_rope=(8, 28, 28)),
    # qwenimage-mini, the default model trained by this package on a CPU (mini/): 22.6M parameters
    "qwenimage-mini": MMDiTConfig(num_layers=6, attention_head_dim=64, num_attention_heads=5, joint_attention_dim=128,
                                  axes_dims_rope=(8, 28, 28)),
    # a CPU-test model with the official 16-channel latents and a 32-dim text encoder
    "tiny": MMDiTConfig(num_layers=2, attention_head_dim=16, num_attention_heads=4, joint_attention_dim=32,
                        axes_dims_rope=(4, 6, 6)),
}


def mmdit_preset(name: str, **overrides) -> MMDiTConfig:
    if name not in MMDIT_PRESETS:
        raise ValueError(f"unknown transformer preset {name!r}; choose one of {sorted(MMDIT_PRESETS)}")
    return replace(MMDIT_PRESETS[name], **overrides)
