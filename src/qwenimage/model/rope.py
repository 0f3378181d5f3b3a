"""MSRoPE: multimodal scalable rotary position embedding over (frame, row, column).

Every image token gets three positions: its frame (the image's index in the sample's image list: target 0,
condition images 1, 2, ...), and its row and column in a grid centred on 0 (rows -ceil(h/2) .. floor(h/2)-1).
Text token j gets position (m + j) on all three axes, where m = max over the images of max(h//2, w//2), so
text sits on the diagonal just past the largest image. The head dim is split (16, 56, 56) between the axes,
and features (2k, 2k+1) rotate together as (real, imaginary) parts, in fp32.

Unlike the reference implementation, each sample of a batch has its own list of image shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ImageShape = tuple[int, int, int]  # (frames, token rows, token cols)
SampleShapes = list[ImageShape]  # target first, then condition images


@dataclass
class Rotation:
    """Unit complex numbers e^(i*angle), [B, S, head_dim/2] complex64, one per feature pair."""

    phases: torch.Tensor

    @classmethod
    def from_angles(cls, angles: torch.Tensor) -> Rotation:
        return cls(torch.polar(torch.ones_like(angles), angles))

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, S, heads, head_dim] -> rotated x: pairs (2k, 2k+1) times phase k, in fp32, cast back."""
        pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))  # [B, S, H, Dh/2] complex
        return torch.view_as_real(pairs * self.phases[:, :, None, :]).flatten(-2).to(x.dtype)


def image_token_count(shapes: SampleShapes) -> int:
    return sum(f * h * w for f, h, w in shapes)


def centred(n: int, device: torch.device) -> torch.Tensor:
    """Grid positions -ceil(n/2) .. floor(n/2) - 1."""
    return torch.arange(n, device=device) - (n - n // 2)


def image_positions(shapes: SampleShapes, device: torch.device, layered: bool = False) -> torch.Tensor:
    """[S_img, 3] integer (frame, row, col) positions for one sample, frame-major then row-major."""
    out = []
    for index, (frames, rows, cols) in enumerate(shapes):
        first_frame = -1 if layered and index == len(shapes) - 1 else index
        grid = torch.meshgrid(torch.arange(frames, device=device) + first_frame, centred(rows, device),
                              centred(cols, device), indexing="ij")
        out.append(torch.stack(grid, dim=-1).reshape(-1, 3))  # [F*h*w, 3]
    return torch.cat(out)


def text_offset(shapes: SampleShapes, layered: bool = False) -> int:
    offset = max(max(h // 2, w // 2) for _, h, w in shapes)
    return max(offset, len(shapes) - 1) if layered else offset


class MSRoPE:
    """Builds per-sample rotations for the image and text streams. Holds no tensors, only the axis split."""

    def __init__(self, axes_dims: tuple[int, int, int], theta: float = 10_000.0, layered: bool = False):
        self.axes_dims = tuple(axes_dims)
        self.theta = theta
        self.layered = layered

    def angles(self, positions: torch.Tensor) -> torch.Tensor:
        """[..., 3] integer positions -> [..., head_dim/2] fp32 angles (axis frequencies use the axis dim)."""
        parts = []
        for axis, dim in enumerate(self.axes_dims):
            exponent = torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device) / dim
            inv_freq = 1.0 / torch.pow(self.theta, exponent)  # [dim/2]
            parts.append(positions[..., axis, None].float() * inv_freq)
        return torch.cat(parts, dim=-1)

    def __call__(self, img_shapes: list[SampleShapes], text_len: int, image_len: int,
                 device: torch.device) -> tuple[Rotation, Rotation]:
        """Rotations for a batch: image [B, image_len, Dh/2] (padding rows get angle 0) and text [B, text_len, Dh/2]."""
        batch = len(img_shapes)
        img_pos = torch.zeros(batch, image_len, 3, dtype=torch.long, device=device)
        txt_pos = torch.empty(batch, text_len, 3, dtype=torch.long, device=device)
        text_index = torch.arange(text_len, device=device)
        for b, shapes in enumerate(img_shapes):
            positions = image_positions(shapes, device, self.layered)
            img_pos[b, : positions.shape[0]] = positions
            txt_pos[b] = (text_index + text_offset(shapes, self.layered))[:, None]
        return Rotation.from_angles(self.angles(img_pos)), Rotation.from_angles(self.angles(txt_pos))
