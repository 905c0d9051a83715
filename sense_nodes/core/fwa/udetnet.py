"""Detection networks of Section III: I-UDetNet (per pair, at a BS) and
C-UDetNet (per scene, at the fusion centre), trained jointly end to end
on scene labels only (Section III-D).

Notation (paper -> code):

- ``H_AD^(m,n)`` [N_r, N_t, N_c', 1]  -> ``x`` [B, P, 64, 4, 64] (preprocess.py)
- ``h^(m,n) = f_I(H_AD; Theta_I)`` (Eq. 4) -> ``IUDetNet(x)`` [.., n_embed]
- ``y^s = f_C(h; Theta_C)`` (Eq. 10)  -> ``CUDetNet(h, mask)`` logit and attention

Sizes. Fig. 4 gives the layer types (Conv3D, BN, MaxPool, dilated Conv3D,
Flatten, Dense; Leaky ReLU and Sigmoid) but not their widths. To train in
minutes on two CPU cores we keep the layer types and reduce the widths:
8 channels, and a first Conv3D whose (4, 3, 4) kernel strides 4 along the
receive-antenna and delay axes (it covers every input bin, so a sparse
echo is not skipped) instead of a full-resolution first layer. N_e = 32.
"""
from __future__ import annotations

import torch
from torch import nn

from sense_nodes.core.fwa.mil_pooling import GatedAttentionPool

INPUT_SHAPE = (64, 4, 64)  # N_r, N_t, N_c'


def conv_bn(c_in, c_out, kernel, stride=1, padding=0, dilation=1):
    return nn.Sequential(nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation),
                         nn.BatchNorm3d(c_out), nn.LeakyReLU(0.1))


class ConvTrunk(nn.Module):
    """Strided stem, two dilated Conv3D (dilation 2 and 4 along antennas
    and delay: multi-scale context without losing resolution) and a max
    pool: [N, 1, 64, 4, 64] -> [N, width * 8 * 2 * 8]."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.width = width
        self.stem = conv_bn(1, width, (4, 3, 4), stride=(4, 1, 4), padding=(0, 1, 0))
        self.dil2 = conv_bn(width, width, 3, padding=(2, 1, 2), dilation=(2, 1, 2))
        self.dil4 = conv_bn(width, width, 3, padding=(4, 1, 4), dilation=(4, 1, 4))
        self.pool = nn.MaxPool3d(2)
        self.out_features = width * 8 * 2 * 8

    def forward(self, x):
        y = self.stem(x)
        y = self.dil4(self.dil2(y))
        return self.pool(y).flatten(1)


class IUDetNet(nn.Module):
    """Per-pair encoder: x [..., 64, 4, 64] -> h [..., n_embed] in (0, 1)."""

    def __init__(self, n_embed: int = 32, width: int = 8, n_hidden: int = 64):
        super().__init__()
        self.trunk = ConvTrunk(width)
        self.dense = nn.Sequential(nn.Linear(self.trunk.out_features, n_hidden), nn.LeakyReLU(0.1),
                                   nn.Linear(n_hidden, n_embed), nn.Sigmoid())

    def forward(self, x):
        lead = x.shape[:-3]
        y = self.trunk(x.reshape(-1, 1, *x.shape[-3:]).float())
        return self.dense(y).reshape(*lead, -1)


class CUDetNet(nn.Module):
    """Fusion-centre detector: gated attention MIL pooling (Eq. 11-12) and
    a light classifier (Dense + ReLU, Dropout, Dense) giving the logit of
    y^s (the Sigmoid is left to the loss / the caller)."""

    def __init__(self, n_embed: int = 32, n_attention: int = 32, n_hidden: int = 32, dropout: float = 0.25):
        super().__init__()
        self.pool = GatedAttentionPool(n_embed, n_attention)
        self.classifier = nn.Sequential(nn.Linear(n_embed, n_hidden), nn.ReLU(), nn.Dropout(dropout),
                                        nn.Linear(n_hidden, 1))

    def forward(self, h, mask=None):
        """h [B, P, n_embed], mask [B, P] -> (logit [B], attention [B, P])."""
        z, a = self.pool(h, mask)
        return self.classifier(z).squeeze(-1), a


class PairSupervisedNet(nn.Module):
    """The "SL with sigma_d" baseline: I-UDetNet with a per-pair logit head
    trained on pair labels y^(m,n); a scene is declared when its largest
    pair probability reaches sigma_d."""

    def __init__(self, n_embed: int = 32, width: int = 8):
        super().__init__()
        self.encoder = IUDetNet(n_embed, width)
        self.head = nn.Linear(n_embed, 1)

    def forward(self, x):
        return self.head(self.encoder(x)).squeeze(-1)
