"""Keep what an edit did not change: paste the source's own pixels back outside the edited area.

An edit model redraws the whole picture through the VAE, so even a perfect edit loses the VAE's round-trip error
everywhere, and a real one adds drift (peers' users report pixel shift and colour drift on Qwen-Image-Edit). With
`GenerationRequest.keep_unedited = T`, the edited area is found where the result's latents differ from the
source's: per latent cell, the mean over channels of |z_edit - z_source| (normalised latents, where the values
spread about one) above T. The area grows by one cell, and a ramp one cell wide fades it out at the edge; the
output is edit * ramp + source * (1 - ramp), so pixels away from the edit are the source's, exactly.

    mask = edited_area(z_edit, z_source, threshold=0.5, factor=8)      # [H, W] in [0, 1]
    pixels = keep_unedited(edit_pixels, source_pixels, mask)          # [3, H, W]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_KEEP_THRESHOLD = 0.5  # mean |latent difference| of an edited cell (normalised latents)


def check_keep_threshold(threshold: float | None) -> None:
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0 < threshold < float("inf")):
        raise ValueError(f"keep_unedited must be a positive number (a latent difference), got {threshold!r}")


def edited_area(z_edit: torch.Tensor, z_source: torch.Tensor, threshold: float, factor: int) -> torch.Tensor:
    """The soft pixel mask [H, W] of what the edit changed (1 = the edit's pixels) from latents [C, h, w]."""
    if z_edit.shape != z_source.shape:
        raise ValueError(f"edit latents {tuple(z_edit.shape)} and source latents {tuple(z_source.shape)} differ")
    change = (z_edit.float() - z_source.float()).abs().mean(dim=0)                 # [h, w]
    cells = (change > threshold).float()[None, None]                                # [1, 1, h, w]
    grown = F.max_pool2d(cells, kernel_size=3, stride=1, padding=1)                 # one cell around each
    # a ramp across the added ring: blur the changed cells' pixel mask by one cell, keep them fully edited
    pixels = F.interpolate(cells, scale_factor=factor, mode="nearest")              # [1, 1, H, W]
    ramp = F.avg_pool2d(pixels, kernel_size=2 * factor + 1, stride=1, padding=factor, count_include_pad=False)
    ramp = torch.maximum(pixels, (2 * ramp).clamp(max=1.0))
    inside = F.interpolate(grown, scale_factor=factor, mode="nearest")
    return (ramp * inside)[0, 0]                                                    # [H, W]


def keep_unedited(edit: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """edit * mask + source * (1 - mask) for pixels [3, H, W] and a mask [H, W]."""
    if edit.shape != source.shape or edit.shape[-2:] != mask.shape:
        raise ValueError(f"edit {tuple(edit.shape)}, source {tuple(source.shape)} and mask {tuple(mask.shape)} "
                         "must share their size")
    mask = mask.to(edit.dtype)[None]                                                # [1, H, W]
    return edit * mask + source.to(edit.dtype) * (1 - mask)
