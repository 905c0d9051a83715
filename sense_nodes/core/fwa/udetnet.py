"""Detection networks of Section III: I-UDetNet (per pair, at a BS) and
C-UDetNet (per scene, at the fusion centre), trained jointly end to end
on scene labels only (Section III-D).

Notation (paper -> code):

- ``H_AD^(m,n)`` [N_r, N_t, N_c', 1]  -> ``x`` [B, P, 64, 4, 64] (preprocess.py)
- ``h^(m,n) = f_I(H_AD; Theta_I)`` (Eq. 4) -> ``IUDetNet(x)`` [.., n_embed]
- ``y^s = f_C(h; Theta_C)`` (Eq. 10)  -> ``CUDetNet(h, mask)`` logit and attention

Inputs: ``input="paper"`` takes P(H) [64, 4, 64]; ``input="bdz"`` the
background-normalised beam x delay map [8, 8, 64] (background.py, why);
``input="nulled"`` the background-nulled map of the same shape (nulled.py).

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
# Layer geometry per input: "paper" = P(H) [64 rx, 4 tx, 64 delays];
# "bdz" = the background-normalised beam x delay map [8, 8 beams, 64 taps]
# (background.py). Same layers and widths, strides fitted to the axes.
GEOMETRY = {
    "paper": dict(shape=(64, 4, 64), stem_k=(4, 3, 4), stem_s=(4, 1, 4), stem_p=(0, 1, 0),
                  d2=(2, 1, 2), d4=(4, 1, 4), soft_pool=(8, 1, 8)),
    "bdz": dict(shape=(8, 8, 64), stem_k=(3, 3, 4), stem_s=(1, 1, 4), stem_p=(1, 1, 0),
                d2=(2, 2, 2), d4=(4, 4, 4), soft_pool=(2, 2, 8)),
}
# "nulled": the background-nulled beam x delay map (nulled.py), same axes as "bdz"
GEOMETRY["nulled"] = GEOMETRY["bdz"]


def geometry(input: str) -> dict:
    if input not in GEOMETRY:
        raise ValueError(f"input {input!r} is not one of {sorted(GEOMETRY)}")
    return GEOMETRY[input]


def stem(width: int, input: str) -> nn.Module:
    g = geometry(input)
    return conv_bn(1, width, g["stem_k"], stride=g["stem_s"], padding=g["stem_p"])


def trunk_shape(input: str, pooled: bool = True) -> tuple[int, int, int]:
    """Spatial shape after the stem (and the final 2x max pool)."""
    g = geometry(input)
    out = tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(g["shape"], g["stem_k"], g["stem_s"], g["stem_p"]))
    return tuple(n // 2 for n in out) if pooled else out


def conv_bn(c_in, c_out, kernel, stride=1, padding=0, dilation=1):
    return nn.Sequential(nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation),
                         nn.BatchNorm3d(c_out), nn.LeakyReLU(0.1))


class ConvTrunk(nn.Module):
    """Strided stem, two dilated Conv3D (dilation 2 and 4 along the angle
    and delay axes: multi-scale context without losing resolution), a 2x
    max pool flattened, and beside it each channel's global max over the
    whole map, and the input's own peak (a skip connection):
    [N, 1, *shape] -> [N, width * (prod(trunk_shape) + 1) + 1].

    The global max is our addition to Fig. 4: an echo is a few cells
    anywhere in the map, and without it the flattened map alone left the
    embeddings constant across pairs (the detector did not even fit 64
    training scenes). At initialisation a random filter blurs a one-cell
    echo into the background's spread, so the conv peaks alone still did
    not learn within our budget; the input's peak hands the embedding the
    classical detector's statistic from the first step, and the layers
    learn what to add to it."""

    def __init__(self, width: int = 8, input: str = "paper", flatten: bool = True):
        super().__init__()
        g = geometry(input)
        self.width = width
        self.flatten = flatten
        self.stem = stem(width, input)
        self.dil2 = conv_bn(width, width, 3, padding=g["d2"], dilation=g["d2"])
        self.dil4 = conv_bn(width, width, 3, padding=g["d4"], dilation=g["d4"])
        self.pool = nn.MaxPool3d(2)
        a, b, c = trunk_shape(input)
        self.out_features = width * ((a * b * c if flatten else 0) + 2) + 2

    def forward(self, x):
        y = self.stem(x)
        y = self.dil4(self.dil2(y))
        peaks = [y.amax(dim=(2, 3, 4)), y.mean(dim=(2, 3, 4)), x.amax(dim=(2, 3, 4)),
                 x.flatten(1).topk(8, dim=1).values.mean(1, keepdim=True)]
        return torch.cat(([self.pool(y).flatten(1)] if self.flatten else []) + peaks, 1)


class IUDetNet(nn.Module):
    """Per-pair encoder: x [..., 64, 4, 64] -> h [..., n_embed] in (0, 1)."""

    def __init__(self, n_embed: int = 32, width: int = 8, n_hidden: int = 64, input: str = "paper",
                 flatten: bool = True):
        super().__init__()
        self.trunk = ConvTrunk(width, input, flatten)
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

    def __init__(self, n_embed: int = 32, width: int = 8, input: str = "paper"):
        super().__init__()
        self.encoder = IUDetNet(n_embed, width, input=input)
        self.head = nn.Linear(n_embed, 1)

    def forward(self, x):
        return self.head(self.encoder(x)).squeeze(-1)
