"""Joint attention of the dual-stream block: text and image tokens attend together, text first."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qwenimage.devices import cpu_has_bf16
from qwenimage.model.layers import RMSNorm
from qwenimage.model.linear import Linear
from qwenimage.model.rope import Rotation


def build_key_mask(text_mask: torch.Tensor | None, image_valid: torch.Tensor | None, text_len: int,
                   image_len: int, batch: int, device: torch.device) -> torch.Tensor | None:
    """Boolean key mask [B, 1, 1, S_txt + S_img] (True = attend), or None when every token is valid.

    text_mask: [B, S_txt] (1 = real token); image_valid: [B, S_img] (False = padding of a shorter sample).
    """
    text_ok = text_mask is None or bool(text_mask.all())
    image_ok = image_valid is None or bool(image_valid.all())
    if text_ok and image_ok:
        return None
    if text_mask is None:
        text_mask = torch.ones(batch, text_len, dtype=torch.bool, device=device)
    if image_valid is None:
        image_valid = torch.ones(batch, image_len, dtype=torch.bool, device=device)
    return torch.cat([text_mask.bool(), image_valid], dim=1)[:, None, None, :]


CPU_QUERY_CHUNK = 128  # query rows per score block: [B, H, 128, S_k] bf16 stays in cache-friendly sizes
CPU_TRAIN_SCORES_BUDGET = 2**27  # score elements (all chunks) kept for backward before falling back to SDPA


def use_cpu_bf16_attention(q: torch.Tensor, k: torch.Tensor) -> bool:
    """Whether `attend` takes the blocked-matmul path: bf16 on a CPU with bf16 GEMMs. There, torch's SDPA kernel
    is no faster in bf16 than in fp32 (measured on AVX512-BF16 without AMX), while these blocks of bf16 matmuls
    ran 1.2x (8 heads x 64) to 2.3x (12 x 128) faster than fp32 SDPA at 1,152 tokens on one core. With autograd
    on, the path keeps every score block for backward, so it is used only while they fit CPU_TRAIN_SCORES_BUDGET."""
    if q.device.type != "cpu" or q.dtype != torch.bfloat16 or not cpu_has_bf16():
        return False
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad):
        batch, heads, q_len, _ = q.shape
        return batch * heads * q_len * k.shape[2] <= CPU_TRAIN_SCORES_BUDGET
    return True


def blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None,
                      chunk: int = CPU_QUERY_CHUNK) -> torch.Tensor:
    """softmax(q k^T / sqrt(Dh)) v, `chunk` query rows at a time, as plain matmuls in q's dtype.

    q [B, H, S_q, Dh], k/v [B, H, S_k, Dh], key_mask [B, 1, 1, S_k] bool (True = attend) or None -> [B, H, S_q, Dh].
    Scores and probabilities are rounded to q's dtype, as any bf16 matmul rounds its output (SDPA keeps them in
    fp32: ~6 dB more PSNR on a single peaked attention; the medium benchmark's velocity is at 62.3 dB either way).
    """
    # The heads arrive as transposed views ([B, S, H, Dh] in memory); batched matmuls over them copy each chunk's
    # operands, which made this path 1.5x slower than on contiguous ones (8 x 64 heads, 1,152 tokens): one copy each.
    q = q.contiguous() * q.shape[-1] ** -0.5                                  # [B, H, S_q, Dh] contiguous
    keys_t = k.contiguous().transpose(-1, -2)                                 # [B, H, Dh, S_k]
    v = v.contiguous()
    bias = None
    if key_mask is not None:
        bias = torch.zeros(key_mask.shape, dtype=q.dtype, device=q.device).masked_fill(~key_mask, float("-inf"))
    blocks = []
    for start in range(0, q.shape[2], chunk):
        scores = torch.matmul(q[:, :, start:start + chunk], keys_t)           # [B, H, chunk, S_k]
        if bias is not None:
            scores = scores + bias
        blocks.append(torch.matmul(torch.softmax(scores, dim=-1), v))        # [B, H, chunk, Dh]
    return torch.cat(blocks, dim=2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    """Scaled dot-product attention, [B, H, S, Dh] in and out; the kernel that is fastest for the device and dtype."""
    if use_cpu_bf16_attention(q, k):
        return blocked_attention(q, k, v, key_mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)


class JointAttention(nn.Module):
    """q/k/v per stream (`to_*` image, `add_*` text), RMSNorm per head, RoPE, one SDPA over [txt, img]."""

    def __init__(self, dim: int, heads: int, head_dim: int, eps: float = 1e-6):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.to_q, self.to_k, self.to_v = Linear(dim, inner), Linear(dim, inner), Linear(dim, inner)
        self.add_q_proj, self.add_k_proj = Linear(dim, inner), Linear(dim, inner)
        self.add_v_proj = Linear(dim, inner)
        self.norm_q, self.norm_k = RMSNorm(head_dim, eps), RMSNorm(head_dim, eps)
        self.norm_added_q, self.norm_added_k = RMSNorm(head_dim, eps), RMSNorm(head_dim, eps)
        self.to_out = nn.ModuleList([Linear(inner, dim), nn.Identity()])  # index 1: the checkpoint's dropout slot
        self.to_add_out = Linear(inner, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, self.head_dim))  # [B, S, D] -> [B, S, H, Dh]

    def forward(self, img: torch.Tensor, txt: torch.Tensor, img_rot: Rotation, txt_rot: Rotation,
                key_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """img [B, S_img, D], txt [B, S_txt, D] -> (img_out [B, S_img, D], txt_out [B, S_txt, D])."""
        img_q = img_rot.rotate(self.norm_q(self._heads(self.to_q(img))))  # [B, S_img, H, Dh]
        img_k = img_rot.rotate(self.norm_k(self._heads(self.to_k(img))))
        img_v = self._heads(self.to_v(img))
        txt_q = txt_rot.rotate(self.norm_added_q(self._heads(self.add_q_proj(txt))))  # [B, S_txt, H, Dh]
        txt_k = txt_rot.rotate(self.norm_added_k(self._heads(self.add_k_proj(txt))))
        txt_v = self._heads(self.add_v_proj(txt))

        q, k, v = (torch.cat(pair, dim=1).transpose(1, 2) for pair in ((txt_q, img_q), (txt_k, img_k), (txt_v, img_v)))
        out = attend(q, k, v, key_mask)  # [B, H, S_txt+S_img, Dh]
        out = out.transpose(1, 2).flatten(2).to(img.dtype)  # [B, S_txt+S_img, H*Dh]

        text_len = txt.shape[1]
        return self.to_out[0](out[:, text_len:]), self.to_add_out(out[:, :text_len])
