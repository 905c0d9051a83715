"""Cooperative localization at the fusion centre (Section IV-C) and the
two baselines of Section V-C.

C-ULocNet (Eq. 21-26), notation (paper -> code), L selected pairs:

- ``P^`` [L, 3] coarse estimates, ``V`` [L, N_v] features -> ``p``, ``v`` [B, L, .]
- ``e_l = N (m - 1) + n`` pair indices                      -> ``e`` [B, L] (0-based)
- ``S = Norm(Dense([P^, V]))`` (Eq. 22)                     -> ``self.proj``
- ``X = S + Embed(e)`` (Eq. 23)                             -> ``self.embed``
- 4 encoder layers, 8 heads, FFN, residual, LayerNorm (Eq. 24-25)
- ``p^ = Dense(ReLU(Dense(AvgPool(X_e))))`` (Eq. 26)         -> ``self.head``

The number of selected pairs L varies from scene to scene: batches are
padded and ``mask`` [B, L] (True = a real pair) is the key padding mask
of the attention and the weight of the average pool, so padded tokens
change nothing.

Baselines: :func:`hard_fusion` averages the coarse estimates; soft fusion
is the same Transformer fed with the (pooled) preprocessed CSI of the
selected pairs instead of estimates and features (:class:`SoftFusionNet`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sense_nodes.core.fwa.ulocnet import POS_SCALE


class PairTransformer(nn.Module):
    """Token projection + pair-index embedding + encoder + pooled head."""

    def __init__(self, n_in: int, n_pairs: int = 32, d_model: int = 64, n_layers: int = 4,
                 n_heads: int = 8, d_ff: int = 128, dropout: float = 0.1):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(n_in, d_model), nn.LayerNorm(d_model))
        self.embed = nn.Embedding(n_pairs, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, 3))

    def forward(self, tokens, e, mask=None):
        x = self.proj(tokens) + self.embed(e)
        if mask is None:
            mask = torch.ones(e.shape, dtype=torch.bool, device=e.device)
        xe = self.encoder(x, src_key_padding_mask=~mask)
        w = mask.unsqueeze(-1).to(xe.dtype)
        pooled = (xe * w).sum(1) / w.sum(1).clamp_min(1.0)
        return self.head(pooled) * POS_SCALE


class CULocNet(PairTransformer):
    """(p [B, L, 3] m, v [B, L, N_v], e [B, L], mask [B, L]) -> p^ [B, 3] m."""

    def __init__(self, n_feature: int = 64, **kw):
        super().__init__(3 + n_feature, **kw)
        self.n_feature = n_feature

    def forward(self, p, v, e, mask=None):
        return super().forward(torch.cat([p / POS_SCALE, v], -1), e, mask)


class SoftFusionNet(PairTransformer):
    """Soft fusion baseline: the network input of each selected pair
    (average-pooled by the geometry's ``soft_pool``: 8 x 4 x 8 = 256 values
    of P(H), 4 x 4 x 8 = 128 of the bdz map; a choice, to keep the token
    projection small) is a token of the same Transformer."""

    def __init__(self, input: str = "paper", **kw):
        from sense_nodes.core.fwa.udetnet import geometry
        g = geometry(input)
        n_in = int(np.prod([n // k for n, k in zip(g["shape"], g["soft_pool"])]))
        super().__init__(n_in, **kw)
        self.pool = nn.AvgPool3d(g["soft_pool"])

    def forward(self, x, e, mask=None):
        b, l = x.shape[:2]
        t = self.pool(x.reshape(b * l, 1, *x.shape[-3:]).float()).reshape(b, l, -1)
        return super().forward(t, e, mask)


def hard_fusion(p, mask=None):
    """Hard fusion: the mean of the coarse estimates p [B, L, 3] (padded
    ones excluded by ``mask``)."""
    if mask is None:
        return p.mean(1)
    w = mask.unsqueeze(-1).to(p.dtype)
    return (p * w).sum(1) / w.sum(1).clamp_min(1.0)
