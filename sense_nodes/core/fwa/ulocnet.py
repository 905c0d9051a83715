"""I-ULocNet (Section IV-B, Fig. 6): per selected pair, a coarse UAV
position ``p^(l)`` and a compact CSI feature ``v^(l)`` (Eq. 17).

Notation (paper -> code):

- ``H_AD^(l)``        -> ``x`` [..., 64, 4, 64]
- ``F_in``, ``F_s``, ``M_s``, ``F_out`` (Eq. 18-20) -> ``SpatialAttention``
- ``v^(l)`` in R^{N_v} -> the output of the Dense layer of width ``n_feature``
  (N_v in {32, 64, 128}; 64 by default, the paper's default)
- ``p^(l)``            -> coarse position, m (the network works in units of
  ``POS_SCALE`` m so its targets are O(1))

Widths are reduced like I-UDetNet's (see udetnet.py) to train on the CPU;
``input`` as there ("paper" or "bdz").
"""
from __future__ import annotations

import torch
from torch import nn

from sense_nodes.core.fwa.udetnet import conv_bn, stem, trunk_shape

POS_SCALE = 75.0  # m: the UAV x, y range of the scenario


class SpatialAttention(nn.Module):
    """CBAM spatial attention: F_s = [max_c F, mean_c F] (Eq. 18), M_s =
    sigmoid(Conv3D(F_s)) (Eq. 19), F_out = F_in * M_s (Eq. 20)."""

    def __init__(self, kernel=(7, 3, 7)):
        super().__init__()
        self.conv = nn.Conv3d(2, 1, kernel, padding=tuple(k // 2 for k in kernel))

    def forward(self, f):
        fs = torch.cat([f.amax(1, keepdim=True), f.mean(1, keepdim=True)], 1)
        return f * torch.sigmoid(self.conv(fs))


class IULocNet(nn.Module):
    """x [..., 64, 4, 64] -> (p [..., 3] m, v [..., n_feature])."""

    def __init__(self, n_feature: int = 64, width: int = 8, input: str = "paper"):
        super().__init__()
        self.stem = stem(width, input)
        self.sa1 = SpatialAttention()
        self.conv2 = conv_bn(width, 2 * width, 3, padding=1)
        self.sa2 = SpatialAttention()
        self.pool = nn.MaxPool3d(2)
        a, b, c = trunk_shape(input)
        self.feature = nn.Linear(2 * width * a * b * c, n_feature)
        self.act = nn.LeakyReLU(0.1)
        self.head = nn.Linear(n_feature, 3)
        self.n_feature = n_feature
        self.input = input

    def forward(self, x):
        lead = x.shape[:-3]
        y = self.sa1(self.stem(x.reshape(-1, 1, *x.shape[-3:]).float()))
        y = self.pool(self.sa2(self.conv2(y))).flatten(1)
        v = self.feature(y)
        p = self.head(self.act(v)) * POS_SCALE
        return p.reshape(*lead, 3), v.reshape(*lead, -1)
