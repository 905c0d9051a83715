"""Score networks and the baselines' networks (Sec. IV-A..C, V-B).

All networks share one macro-architecture, as Sec. V-B4 asks for a fair
comparison: a residual MLP trunk with hidden sizes [512, 256, 128], batch
normalisation, dropout; only the input and output layers differ.

- :class:`ScoreMLP`      DiffLoc-MLP: eps_theta(x_t, t, c), SiLU (Fig. 3a).
- :class:`ScoreUNet`     DiffLoc-UNet: 1D encoder-decoder on feature vectors
  with skip connections (Fig. 3b); also the backbone of DiffLoc-CT.
- :class:`Regressor`     supervised MLP baseline (ReLU), c -> position.
- :class:`CNNRegressor`  CNN baseline on the fingerprint as an image
  [2 (magnitude, phase), N_r * N_t, L], then the same trunk.
- :class:`GridClassifier` grid-fusion baseline: logits over grid cells.

Shapes: ``x`` [N, 2] normalised position, ``t`` [N] float time in [0, 1]
(DDPM steps divided by T, or the consistency time of Eq. 20), ``cond`` [N, D].
"""
from __future__ import annotations

import math

import torch
from torch import nn

HIDDEN = (512, 256, 128)  # Sec. IV-A
UNET_WIDTHS = (128, 256, 384)  # encoder widths; the paper's UNet is smaller than its MLP
TIME_DIM = 64


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of a scalar time in [0, 1]
    (scaled by 1000, as DDPM embeds integer steps)."""

    def __init__(self, dim: int = TIME_DIM):
        super().__init__()
        if dim % 2:
            raise ValueError("time embedding dimension must be even")
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / half), persistent=False)

    def forward(self, t: torch.Tensor | float) -> torch.Tensor:
        """[N, dim] for times [N]; [1, dim] for one time shared by every row."""
        if not torch.is_tensor(t):
            t = torch.tensor([float(t)], device=self.freqs.device)
        a = 1000.0 * t.float()[:, None] * self.freqs[None]
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class ResBlock(nn.Module):
    """Linear -> BN -> activation -> dropout, plus a (projected) skip."""

    def __init__(self, d_in: int, d_out: int, act: type[nn.Module], dropout: float):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out), act(), nn.Dropout(dropout))
        self.skip = nn.Identity() if d_in == d_out else nn.Linear(d_in, d_out, bias=False)

    def forward(self, h):
        return self.body(h) + self.skip(h)


class Trunk(nn.Module):
    """The shared residual MLP trunk [512, 256, 128]."""

    def __init__(self, d_in: int, hidden=HIDDEN, act: type[nn.Module] = nn.SiLU, dropout: float = 0.1):
        super().__init__()
        dims = (d_in, *hidden)
        self.blocks = nn.Sequential(*[ResBlock(a, b, act, dropout) for a, b in zip(dims[:-1], dims[1:])])
        self.out_dim = dims[-1]

    def forward(self, h):
        return self.blocks(h)


class ScoreMLP(nn.Module):
    """DiffLoc-MLP: eps_theta([x_t, emb(t), c]) through the residual trunk."""

    def __init__(self, cond_dim: int, x_dim: int = 2, hidden=HIDDEN, dropout: float = 0.1, time_dim: int = TIME_DIM):
        super().__init__()
        self.temb = SinusoidalEmbedding(time_dim)
        self.trunk = Trunk(x_dim + time_dim + cond_dim, hidden, nn.SiLU, dropout)
        self.head = nn.Linear(self.trunk.out_dim, x_dim)

    def forward(self, x, t, cond):
        return self.head(self.trunk(torch.cat([x, self.temb(t).expand(len(x), -1), cond], dim=1)))


class ScoreUNet(nn.Module):
    """DiffLoc-UNet: time embedding and input projection as the MLP, an
    encoder widening through ``widths`` (linear + SiLU, time added at every
    level), a decoder contracting back with skip connections, and a linear
    head to the 2D output."""

    def __init__(self, cond_dim: int, x_dim: int = 2, widths=UNET_WIDTHS, dropout: float = 0.0,
                 time_dim: int = TIME_DIM):
        super().__init__()
        self.temb = nn.Sequential(SinusoidalEmbedding(time_dim), nn.Linear(time_dim, widths[0]), nn.SiLU())
        self.inp = nn.Sequential(nn.Linear(x_dim + cond_dim, widths[0]), nn.SiLU())
        self.enc = nn.ModuleList()
        self.tproj = nn.ModuleList()
        for a, b in zip(widths[:-1], widths[1:]):
            self.enc.append(nn.Sequential(nn.Linear(a, b), nn.LayerNorm(b), nn.SiLU(), nn.Dropout(dropout)))
            self.tproj.append(nn.Linear(widths[0], b))
        self.dec = nn.ModuleList()
        rev = widths[::-1]
        for a, b in zip(rev[:-1], rev[1:]):
            self.dec.append(nn.Sequential(nn.Linear(a + b, b), nn.LayerNorm(b), nn.SiLU()))
        self.head = nn.Linear(widths[0], x_dim)

    def forward(self, x, t, cond):
        te = self.temb(t)
        h = self.inp(torch.cat([x, cond], dim=1)) + te
        skips = [h]
        for enc, tp in zip(self.enc, self.tproj):
            h = enc(h) + tp(te)
            skips.append(h)
        skips.pop()
        for dec in self.dec:
            h = dec(torch.cat([h, skips.pop()], dim=1))
        return self.head(h)


class Regressor(nn.Module):
    """Supervised MLP baseline (Sec. V-B1): the DiffLoc-MLP trunk with ReLU,
    output layer changed to the 2D position."""

    def __init__(self, cond_dim: int, x_dim: int = 2, hidden=HIDDEN, dropout: float = 0.1):
        super().__init__()
        self.trunk = Trunk(cond_dim, hidden, nn.ReLU, dropout)
        self.head = nn.Linear(self.trunk.out_dim, x_dim)

    def forward(self, cond):
        return self.head(self.trunk(cond))


class CNNRegressor(nn.Module):
    """CNN baseline (Sec. V-B2, after [29]): three strided conv layers over
    the fingerprint image [2, ports, taps], pooled to 4 x 4, then the trunk."""

    def __init__(self, ports: int, taps: int, x_dim: int = 2, channels=(8, 16, 32), hidden=HIDDEN,
                 dropout: float = 0.1):
        super().__init__()
        self.ports, self.taps = int(ports), int(taps)
        layers, c_in = [], 2
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        self.conv = nn.Sequential(*layers, nn.AdaptiveAvgPool2d((4, 4)), nn.Flatten())
        self.trunk = Trunk(c_in * 16, hidden, nn.ReLU, dropout)
        self.head = nn.Linear(self.trunk.out_dim, x_dim)

    def forward(self, cond):
        img = cond.view(-1, 2, self.ports, self.taps)
        return self.head(self.trunk(self.conv(img)))


class GridClassifier(nn.Module):
    """Grid-fusion baseline (Sec. V-B3): the trunk with a softmax output over
    ``cells`` grid points (logits returned)."""

    def __init__(self, cond_dim: int, cells: int, hidden=HIDDEN, dropout: float = 0.1):
        super().__init__()
        self.trunk = Trunk(cond_dim, hidden, nn.ReLU, dropout)
        self.head = nn.Linear(self.trunk.out_dim, int(cells))

    def forward(self, cond):
        return self.head(self.trunk(cond))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
