"""Transformer residual blocks: multi-head self-attention and an MLP, each inside a residual.

Where the LayerNorm sits is the block's one design choice (``norm_position``):

* ``"pre"`` (Dosovitskiy et al. 2021, ViT, Eq. 2-3; Xiong et al. 2020, "On Layer
  Normalization in the Transformer Architecture", Fig. 1b): the norm opens each branch
  and the skip carries the raw stream,

      x = x + MSA(LN1(x));   x = x + MLP(LN2(x))

* ``"post"`` (Vaswani et al. 2017, "Attention Is All You Need", §3.1: LayerNorm(x +
  Sublayer(x)); Xiong et al. 2020, Fig. 1a): the norm closes each residual, so every
  block's output is normalised and the skip passes through two norms per block,

      x = LN1(x + MSA(x));   x = LN2(x + MLP(x))

Both have the same parameters with the same names (timm's ``Block``: ``norm1``,
``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``), so a state dict moves
between them. ``skip=False`` is the no-skip twin of either: the same layers without the
two identity additions (pre: x = MLP(LN2(MSA(LN1(x)))); post: x = LN2(MLP(LN1(MSA(x))))).
:class:`PlainTransformerBlock` names it.

Shape contract, for tokens rather than images: ``TransformerBlock(in_channels,
out_channels, stride=1, ...)`` maps ``[B, N, in]`` to ``[B, N, out]``; the residual
additions need ``out_channels == in_channels`` and tokens are never downsampled, so
``stride`` must be 1 (both are checked, so that a block table written for images says
clearly what differs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .drop_path import maybe_drop_path

NORM_POSITIONS = ("pre", "post")
LAYER_NORM_EPS = 1e-6  # timm's and the original ViT's (JAX) LayerNorm epsilon


class Attention(nn.Module):
    """Multi-head self-attention (Vaswani et al. 2017, §3.2.2) on ``[B, N, dim]``:
    one fused ``qkv`` projection, softmax(QKᵀ / sqrt(d_head)) V per head, ``proj``."""

    def __init__(
        self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide the embedding width {dim}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))


class Mlp(nn.Module):
    """fc1, GELU, dropout, fc2, dropout (ViT Eq. 3's MLP; Hendrycks & Gimpel 2016's GELU)."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class TransformerBlock(nn.Module):
    """Self-attention and MLP branches, each in a residual; ``[B, N, C] -> [B, N, C]``.

    Args:
        in_channels, out_channels: the embedding width C (they must be equal).
        stride: must be 1 (tokens are not downsampled); kept for the block contract.
        num_heads: attention heads (C must be a multiple).
        mlp_ratio: the MLP's hidden width is ``int(C * mlp_ratio)``.
        qkv_bias: bias on the query/key/value projection (ViT: yes).
        norm_position: ``"pre"`` or ``"post"`` (see the module doc).
        skip: ``False`` drops both identity additions (the no-skip twin).
        drop_path: stochastic depth on each branch (Huang et al. 2016); no effect without skip.
        attn_drop, proj_drop: dropout on the attention weights / after each projection.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_position: str = "pre",
        skip: bool = True,
        drop_path: float = 0.0,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        eps: float = LAYER_NORM_EPS,
    ) -> None:
        super().__init__()
        if out_channels != in_channels:
            raise ValueError(
                f"a transformer block keeps the token width: out_channels ({out_channels}) "
                f"must equal in_channels ({in_channels})"
            )
        if stride != 1:
            raise ValueError(f"a transformer block does not downsample tokens: stride must be 1, got {stride!r}")
        if norm_position not in NORM_POSITIONS:
            raise ValueError(f"norm_position must be 'pre' or 'post', got {norm_position!r}")
        dim = in_channels
        self.norm_position = norm_position
        self.skip = skip
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, proj_drop)
        self.drop_path1 = maybe_drop_path(drop_path if skip else 0.0)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), proj_drop)
        self.drop_path2 = maybe_drop_path(drop_path if skip else 0.0)

    def _join(self, x: torch.Tensor, branch: torch.Tensor, drop: nn.Module) -> torch.Tensor:
        return x + drop(branch) if self.skip else branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_position == "pre":
            x = self._join(x, self.attn(self.norm1(x)), self.drop_path1)
            return self._join(x, self.mlp(self.norm2(x)), self.drop_path2)
        x = self.norm1(self._join(x, self.attn(x), self.drop_path1))
        return self.norm2(self._join(x, self.mlp(x), self.drop_path2))

    def zero_init_last(self) -> None:
        """Zero each branch's last projection (``attn.proj``, ``mlp.fc2``) where it is added
        to a skip, the transformer form of Goyal et al. 2017: a pre-norm block then starts
        as the identity (a post-norm one as LN2(LN1(x))). Without a skip nothing is zeroed
        (the block would output a constant and pass no gradient)."""
        if self.skip:
            for layer in (self.attn.proj, self.mlp.fc2):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def extra_repr(self) -> str:
        return f"norm_position={self.norm_position!r}, skip={self.skip}"


class PlainTransformerBlock(TransformerBlock):
    """The no-skip twin of :class:`TransformerBlock`: the same layers and names, no additions."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs) -> None:
        super().__init__(in_channels, out_channels, stride, skip=False, **kwargs)
