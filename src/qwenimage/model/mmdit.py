"""The Qwen-Image MMDiT: dual-stream blocks over text and image tokens with MSRoPE.

Shapes: B batch, S_txt text tokens, S_img image tokens (target then condition images, packed 2x2 latent
patches), D = heads * head_dim. Time convention: t in [0, 1], t = 1 is noise; the model returns the
velocity (noise - x0) for the image tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from torch import nn

from qwenimage.model.attention import JointAttention, build_key_mask
from qwenimage.model.config import MMDiTConfig
from qwenimage.model.layers import FeedForward, Modulation, OutputNorm, RMSNorm, TimestepEmbedding, split_modulation
from qwenimage.model.linear import Linear
from qwenimage.model.rope import MSRoPE, Rotation, SampleShapes, image_token_count
from qwenimage.weights.pretrained import PretrainedModel

FP16_MAX = 65504.0


@dataclass
class BlockContext:
    """What every block needs besides the two streams; built once per forward."""

    temb: torch.Tensor  # [B, D]
    img_rot: Rotation
    txt_rot: Rotation
    key_mask: torch.Tensor | None  # [B, 1, 1, S_txt + S_img] bool, None when all tokens are valid
    temb_cond: torch.Tensor | None = None  # [B, D] zero_cond_t: embedding of t = 0 for condition tokens
    cond_tokens: torch.Tensor | None = None  # [B, S_img, 1] bool, True on condition-image tokens


class MMDiTBlock(nn.Module):
    """h += gate1 * Attn(mod1(LN h)); h += gate2 * MLP(mod2(LN h)), for the image and the text stream."""

    def __init__(self, dim: int, heads: int, head_dim: int, eps: float = 1e-6):
        super().__init__()
        self.img_mod = nn.Sequential(nn.SiLU(), Linear(dim, 6 * dim))
        self.img_norm1 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.img_norm2 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.img_mlp = FeedForward(dim)
        self.txt_mod = nn.Sequential(nn.SiLU(), Linear(dim, 6 * dim))
        self.txt_norm1 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.txt_norm2 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.txt_mlp = FeedForward(dim)
        self.attn = JointAttention(dim, heads, head_dim, eps)

    def image_modulation(self, ctx: BlockContext) -> tuple[Modulation, Modulation]:
        params = self.img_mod(ctx.temb)  # [B, 6D]
        if ctx.cond_tokens is not None:
            params_cond = self.img_mod(ctx.temb_cond)  # [B, 6D]
            params = torch.where(ctx.cond_tokens, params_cond[:, None], params[:, None])  # [B, S_img, 6D]
        return split_modulation(params)

    def forward(self, img: torch.Tensor, txt: torch.Tensor, ctx: BlockContext) -> tuple[torch.Tensor, torch.Tensor]:
        img_mod1, img_mod2 = self.image_modulation(ctx)
        txt_mod1, txt_mod2 = split_modulation(self.txt_mod(ctx.temb))

        img_attn, txt_attn = self.attn(img_mod1.apply(self.img_norm1(img)), txt_mod1.apply(self.txt_norm1(txt)),
                                       ctx.img_rot, ctx.txt_rot, ctx.key_mask)
        img = img + img_mod1.gate * img_attn  # [B, S_img, D]
        txt = txt + txt_mod1.gate * txt_attn  # [B, S_txt, D]
        img = img + img_mod2.gate * self.img_mlp(img_mod2.apply(self.img_norm2(img)))
        txt = txt + txt_mod2.gate * self.txt_mlp(txt_mod2.apply(self.txt_norm2(txt)))
        if img.dtype == torch.float16:
            img, txt = img.clip(-FP16_MAX, FP16_MAX), txt.clip(-FP16_MAX, FP16_MAX)
        return img, txt


class QwenImageMMDiT(PretrainedModel):
    config_class = MMDiTConfig
    diffusers_class_name = "QwenImageTransformer2DModel"

    def __init__(self, config: MMDiTConfig):
        super().__init__()
        self.config = config
        dim = config.inner_dim
        self.img_in = Linear(config.in_channels, dim)
        self.txt_norm = RMSNorm(config.joint_attention_dim, eps=1e-6)
        self.txt_in = Linear(config.joint_attention_dim, dim)
        self.time_text_embed = TimestepEmbedding(dim, config.use_additional_t_cond)
        self.transformer_blocks = nn.ModuleList(
            MMDiTBlock(dim, config.num_attention_heads, config.attention_head_dim) for _ in range(config.num_layers))
        self.norm_out = OutputNorm(dim)
        self.proj_out = Linear(dim, config.output_channels)
        self.rope = MSRoPE(config.axes_dims_rope, layered=config.use_layer3d_rope)
        self.activation_checkpointing = False
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier linears with zero biases; modulation and output layers zeroed so every block starts as identity."""
        if next(self.parameters()).is_meta:
            return
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for linear in self.time_text_embed.timestep_embedder.children():
            nn.init.normal_(linear.weight, std=0.02)
        for block in self.transformer_blocks:
            for mod in (block.img_mod[1], block.txt_mod[1]):
                nn.init.zeros_(mod.weight)
                nn.init.zeros_(mod.bias)
        for linear in (self.norm_out.linear, self.proj_out):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)

    def set_activation_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block in the backward pass instead of storing its activations (training)."""
        self.activation_checkpointing = enabled

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor, timestep: torch.Tensor,
                img_shapes: list[SampleShapes] | SampleShapes, encoder_hidden_states_mask: torch.Tensor | None = None,
                additional_t_cond: torch.Tensor | None = None,
                controlnet_block_samples: list[torch.Tensor] | None = None) -> torch.Tensor:
        """hidden_states [B, S_img, C_in], encoder_hidden_states [B, S_txt, D_txt], timestep [B] or scalar
        -> velocity [B, S_img, C_out]. img_shapes: per sample, its images' (frames, rows, cols) in tokens;
        see normalize_img_shapes. Samples with fewer image tokens than S_img are right-padded (masked)."""
        batch, image_len, _ = hidden_states.shape
        text_len = encoder_hidden_states.shape[1]
        per_sample = normalize_img_shapes(img_shapes, batch, image_len)
        img = self.img_in(hidden_states)  # [B, S_img, D]
        txt = self.txt_in(self.txt_norm(encoder_hidden_states))  # [B, S_txt, D]
        ctx = self.block_context(img, timestep, per_sample, text_len, encoder_hidden_states_mask, additional_t_cond)

        for index, block in enumerate(self.transformer_blocks):
            if self.activation_checkpointing and torch.is_grad_enabled():
                img, txt = torch.utils.checkpoint.checkpoint(block, img, txt, ctx, use_reentrant=False)
            else:
                img, txt = block(img, txt, ctx)
            if controlnet_block_samples:
                interval = math.ceil(len(self.transformer_blocks) / len(controlnet_block_samples))
                img = img + controlnet_block_samples[index // interval]

        return self.proj_out(self.norm_out(img, ctx.temb))  # [B, S_img, C_out]

    def block_context(self, img: torch.Tensor, timestep: torch.Tensor, img_shapes: list[SampleShapes],
                      text_len: int, text_mask: torch.Tensor | None,
                      additional_t_cond: torch.Tensor | None) -> BlockContext:
        batch, image_len, _ = img.shape
        t = timestep.to(img.dtype).reshape(-1).expand(batch)  # rounded to the model dtype first, like the original
        temb = self.time_text_embed(t, img.dtype, additional_t_cond)  # [B, D]
        img_rot, txt_rot = self.rope(img_shapes, text_len, image_len, img.device)
        counts = torch.tensor([image_token_count(s) for s in img_shapes], device=img.device)
        token_index = torch.arange(image_len, device=img.device)
        image_valid = token_index[None, :] < counts[:, None]  # [B, S_img]
        if text_mask is not None and text_mask.shape != (batch, text_len):
            raise ValueError(f"encoder_hidden_states_mask has shape {list(text_mask.shape)}, "
                             f"expected [batch, text_len] = {[batch, text_len]}")
        key_mask = build_key_mask(text_mask, image_valid, text_len, image_len, batch, img.device)
        ctx = BlockContext(temb=temb, img_rot=img_rot, txt_rot=txt_rot, key_mask=key_mask)
        if self.config.zero_cond_t:
            target = torch.tensor([s[0][0] * s[0][1] * s[0][2] for s in img_shapes], device=img.device)
            ctx.cond_tokens = (token_index[None, :] >= target[:, None])[..., None]  # [B, S_img, 1]
            ctx.temb_cond = self.time_text_embed(torch.zeros_like(t), img.dtype, additional_t_cond)
        return ctx


def normalize_img_shapes(img_shapes: list[SampleShapes] | SampleShapes, batch: int,
                         image_len: int) -> list[SampleShapes]:
    """Per-sample lists of (F, h, w) token shapes, checked against the S_img tokens of the batch.

    As in diffusers, a flat list of (F, h, w) gives one image per sample, and a list of lists gives each
    sample its images (target first); a list of length 1 is shared by the whole batch.
    """
    if not img_shapes:
        raise ValueError("img_shapes is empty: give each sample's image shapes as (frames, rows, cols)")
    one_image_each = all(isinstance(x, (tuple, list)) and len(x) == 3 and all(isinstance(v, int) for v in x)
                         for x in img_shapes)
    per_sample = [[tuple(x)] for x in img_shapes] if one_image_each else [[tuple(i) for i in s] for s in img_shapes]
    if len(per_sample) == 1:
        per_sample = per_sample * batch
    if len(per_sample) != batch:
        raise ValueError(f"img_shapes has {len(per_sample)} samples but the batch has {batch}")
    for b, shapes in enumerate(per_sample):
        count = image_token_count(shapes)
        if count > image_len or count == 0:
            raise ValueError(f"sample {b}: img_shapes {shapes} make {count} tokens, "
                             f"but hidden_states has {image_len} image tokens per sample")
    return per_sample
