"""Grid-based probability fusion baseline (Sec. II-B Eq. 7, Sec. V-B3,
after Gonultas et al. [14]).

The area is covered by a square grid of spacing ``spacing_m`` (the paper
tunes it, 8 m in its scene; ``sense train diffloc --model grid`` picks it on
the validation split). Training targets are soft labels as in [14]: a
position is the bilinear combination of its four surrounding grid points.
Each BS's classifier gives a probability map; the fused map is the
normalised product over the BSs that measured (a sum of log-probabilities),
and the estimate is its mean (Eq. 7); the map's covariance comes with it.
"""
from __future__ import annotations

import numpy as np
import torch


def make_grid(lo: np.ndarray, hi: np.ndarray, spacing_m: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Cell centres [C, 2] covering [lo, hi] (m) and the grid shape (nx, ny)."""
    if not spacing_m > 0:
        raise ValueError(f"grid spacing must be > 0 (got {spacing_m})")
    nx = int(np.ceil((hi[0] - lo[0]) / spacing_m)) + 1
    ny = int(np.ceil((hi[1] - lo[1]) / spacing_m)) + 1
    gx = lo[0] + spacing_m * np.arange(nx)
    gy = lo[1] + spacing_m * np.arange(ny)
    X, Y = np.meshgrid(gx, gy, indexing="ij")
    return np.stack([X.ravel(), Y.ravel()], 1), (nx, ny)


def soft_labels(xy: np.ndarray, lo: np.ndarray, spacing_m: float, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear soft labels [N, C]: weights of the four grid points around
    each position (they sum to one; their mean is the position)."""
    nx, ny = shape
    u = (np.asarray(xy, np.float64)[:, :2] - lo) / spacing_m
    i0 = np.clip(np.floor(u).astype(int), 0, [nx - 2, ny - 2])
    f = np.clip(u - i0, 0.0, 1.0)
    out = np.zeros((len(u), nx * ny), np.float32)
    rows = np.arange(len(u))
    for di in (0, 1):
        for dj in (0, 1):
            w = (f[:, 0] if di else 1 - f[:, 0]) * (f[:, 1] if dj else 1 - f[:, 1])
            out[rows, (i0[:, 0] + di) * ny + (i0[:, 1] + dj)] += w
    return out


def fuse_maps(log_probs: torch.Tensor, mask: torch.Tensor, centres: torch.Tensor):
    """Product of the per-BS maps over ``mask`` and its mean and covariance.
    ``log_probs`` [B, N, C], ``mask`` [B, N] -> (mean [N, 2], cov [N, 2, 2])."""
    lp = (log_probs * mask.to(log_probs.dtype)[..., None]).sum(0)
    p = torch.softmax(lp, dim=-1)
    mean = p @ centres
    d = centres[None] - mean[:, None]
    cov = torch.einsum("nc,nci,ncj->nij", p, d, d)
    return mean, cov
