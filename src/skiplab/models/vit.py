"""Vision Transformers (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", §3.1,
Eq. 1-4): ViT-Ti/16 with timm's names, and a small CIFAR ViT for the skip question.

The forward pass, in timm's order: the patch embedding (a ``patch x patch`` conv of
stride ``patch``, flattened to ``[B, N, C]``), the class token concatenated in front,
the learnt position embedding added (it covers the class token too), position dropout,
the transformer blocks (:class:`~skiplab.blocks.TransformerBlock`), the final
LayerNorm (eps 1e-6), and the head on the class token (Eq. 4). Parameter names are
timm's ``VisionTransformer`` (``patch_embed.proj``, ``cls_token``, ``pos_embed``,
``blocks.N.norm1``, ``blocks.N.attn.qkv``, ``blocks.N.attn.proj``, ``blocks.N.norm2``,
``blocks.N.mlp.fc1``, ``blocks.N.mlp.fc2``, ``norm``, ``head``), so timm's state dict
loads with ``strict=True``: 5,717,416 parameters for ``vit_tiny_patch16_224``.
Initialisation is timm's default: truncated normal (std 0.02) for every linear layer
and the position embedding, N(0, 1e-6) for the class token, PyTorch's default for
the patch conv. ``weight_init="xavier"`` then redraws every linear layer Xavier-uniform with
zero biases: the initialisation Xiong et al. 2020 ("On Layer Normalization in the
Transformer Architecture", §3.2) assume in Theorem 1.

Where the contract of :class:`~skiplab.models.base.Classifier` reads differently:

* the position embedding fixes the input size: inputs must be ``img_size`` square
  (``min_input_size`` is ``img_size``), and ``check_input`` says so;
* ``feature_info`` lists every block (``blocks.0`` ...), whose outputs are tokens
  ``[B, 1 + N, C]`` (class token first), with ``num_chs`` = C and ``reduction`` =
  the patch size, as timm; ``features_only=True`` returns those token maps;
* ``forward_head`` pools by taking the class token, not by averaging;
* ``norm_position="post"`` (Vaswani's post-LN) keeps the final ``norm``, so the
  variants share names and counts; ``skip=False`` is the no-skip twin;
* drop-path rates follow skiplab's linear rule (the last block gets the rate), not
  timm's ``linspace(0, rate, depth)``; ``zero_init_residual`` (default ``False``, as
  timm) zeroes each branch's last projection.
"""

from __future__ import annotations

import torch
from torch import nn

from ..blocks import TransformerBlock, drop_path_rates
from .base import Classifier
from .registry import register_model


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` patches, linearly embedded (ViT Eq. 1's E as a conv):
    ``[B, C_in, H, W] -> [B, (H/p)(W/p), embed_dim]``."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        if patch_size < 1 or img_size % patch_size:
            raise ValueError(f"patch_size={patch_size} must divide img_size={img_size}")
        self.img_size, self.patch_size = img_size, patch_size
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(Classifier):
    """Patch embedding, class token, position embedding, transformer blocks, norm, head.

    Args:
        img_size, patch_size: the square input side and the patch side (which divides it).
        num_classes, in_chans: classifier outputs (0: none) and input channels.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias: the transformer's width, blocks,
            heads, MLP expansion and query/key/value bias.
        norm_position: ``"pre"`` (ViT) or ``"post"`` (Vaswani 2017) blocks.
        skip: ``False`` builds the no-skip twin (no residual additions).
        drop_rate: dropout before the head; pos_drop_rate, attn_drop_rate, proj_drop_rate:
            on the embedded tokens, the attention weights and after each projection.
        drop_path_rate: stochastic depth of the last block, decayed linearly (Huang 2016);
            a no-skip net rejects it.
        zero_init_residual: zero each branch's last projection (a pre-norm block then
            starts as the identity).
        weight_init: ``"timm"`` (timm's default, above) or ``"xavier"`` (timm's, then every
            linear layer Xavier-uniform with zero biases: Xiong et al. 2020 §3.2).
    """

    first_conv = "patch_embed.proj"
    classifier_name = "head"

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        num_classes: int = 1000,
        in_chans: int = 3,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_position: str = "pre",
        skip: bool = True,
        drop_rate: float = 0.0,
        pos_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = False,
        weight_init: str = "timm",
    ) -> None:
        super().__init__()
        if weight_init not in ("timm", "xavier"):
            raise ValueError(f"weight_init must be 'timm' or 'xavier', got {weight_init!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive number of blocks, got {depth!r}")
        if drop_path_rate > 0 and not skip:
            raise ValueError(f"drop_path_rate={drop_path_rate} needs skips to drop: the no-skip net has none")
        self.in_chans = in_chans
        self.img_size, self.patch_size = img_size, patch_size
        self.default_image_size = img_size
        self.num_features = self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(pos_drop_rate)
        rates = drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.Sequential(
            *[
                TransformerBlock(
                    embed_dim,
                    embed_dim,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    norm_position=norm_position,
                    skip=skip,
                    drop_path=rates[i],
                    attn_drop=attn_drop_rate,
                    proj_drop=proj_drop_rate,
                )
                for i in range(depth)
            ]
        )
        self.feature_info = [dict(num_chs=embed_dim, reduction=patch_size, module=f"blocks.{i}") for i in range(depth)]
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head_drop = nn.Dropout(drop_rate)
        self.reset_classifier(num_classes)
        self.init_weights(zero_init_residual and skip, weight_init)

    def init_weights(self, zero_init_residual: bool = False, weight_init: str = "timm") -> None:
        """timm's default ViT init (see the module doc) -- with ``weight_init="xavier"``, the
        linear layers then redrawn Xavier-uniform with zero biases -- then optionally zero the
        branches."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if weight_init == "xavier":
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        if zero_init_residual:
            for block in self.blocks:
                block.zero_init_last()

    @property
    def min_input_size(self) -> int:
        """The one input side the position embedding fits."""
        return self.img_size

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        if not isinstance(x, torch.fx.Proxy) and tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(
                f"{type(self).__name__} was built for {self.img_size}x{self.img_size} inputs (its "
                f"position embedding fixes the size), got {x.shape[-2]}x{x.shape[-1]}; create the "
                f"model with img_size={x.shape[-1]} for square inputs of that side"
            )

    @property
    def stages(self) -> list[nn.Module]:
        """The transformer blocks, in order (the units gradient checkpointing wraps)."""
        return list(self.blocks)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` images to the normalised tokens ``[B, 1 + N, embed_dim]``."""
        self.check_input(x)
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pos_drop(x + self.pos_embed)
        for block in self.blocks:
            x = self.run_stage(block, x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The class token (ViT Eq. 4), dropout and the linear head; ``pre_logits=True``
        returns the class token ``[B, embed_dim]``."""
        x = self.head_drop(x[:, 0])
        return x if pre_logits else self.head(x)


@register_model
def vit_tiny_patch16_224(**kwargs) -> VisionTransformer:
    """ViT-Ti/16 at 224x224 (Touvron et al. 2021's DeiT-Ti width; timm's names): 5,717,416 parameters."""
    return VisionTransformer(**{**dict(img_size=224, patch_size=16, embed_dim=192, depth=12, num_heads=3), **kwargs})


@register_model
def cifar_vit(depth: int = 6, num_classes: int = 10, **kwargs) -> VisionTransformer:
    """A small ViT for 32x32 inputs that trains on a CPU: 4x4 patches (64 tokens + the
    class token), width 128, 4 heads, MLP ratio 4, ``depth`` pre-norm blocks (6 by default:
    1,205,898 parameters for 10 classes); ``norm_position`` and ``skip`` choose the variant."""
    options = dict(img_size=32, patch_size=4, embed_dim=128, num_heads=4, mlp_ratio=4.0)
    return VisionTransformer(**{**options, **kwargs}, depth=depth, num_classes=num_classes)


@register_model
def cifar_vit_noskip(**kwargs) -> VisionTransformer:
    """The no-skip twin of :func:`cifar_vit`: the same parameters, no residual additions."""
    return cifar_vit(skip=False, **kwargs)
