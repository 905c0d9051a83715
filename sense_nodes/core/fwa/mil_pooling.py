"""Gated attention MIL pooling (Section III-C, Eq. 11-12; Ilse et al.).

Notation (paper -> code), for one scene (bag) of P pairs (instances):

- ``h^(m,n)`` in R^{N_e}   -> ``h`` [B, P, n_embed]
- ``V_a``, ``U_a``, ``w_a`` -> ``self.V``, ``self.U``, ``self.w`` (Dense layers)
- ``s_{m,n}``              -> ``s`` [B, P] attention logits
- ``a_{m,n}``              -> ``a`` [B, P], softmax over the *pairs*
- ``z = sum a h``          -> ``z`` [B, n_embed]

Scenes with fewer pairs (a BS missing, random pair sampling) are padded to
P; ``mask`` [B, P] (True = a real pair) sets the padded logits to -inf
before the softmax, so padding gets exactly zero weight and the weights of
the real pairs sum to one.
"""
from __future__ import annotations

import torch
from torch import nn


class GatedAttentionPool(nn.Module):
    def __init__(self, n_embed: int, n_hidden: int = 32):
        super().__init__()
        self.V = nn.Linear(n_embed, n_hidden)
        self.U = nn.Linear(n_embed, n_hidden)
        self.w = nn.Linear(n_hidden, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None):
        """h [B, P, n_embed], mask [B, P] bool -> (z [B, n_embed], a [B, P])."""
        s = self.w(torch.tanh(self.V(h)) * torch.sigmoid(self.U(h))).squeeze(-1)
        if mask is not None:
            if not bool(mask.any(-1).all()):
                raise ValueError("every scene needs at least one pair")
            s = s.masked_fill(~mask, float("-inf"))
        a = torch.softmax(s, dim=-1)
        return torch.einsum("bp,bpe->be", a, h), a
