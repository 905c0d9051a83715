"""The primary model-based step sigma_pri = A^H y (Eq. 20) and the network input
built from it."""
from __future__ import annotations

import numpy as np

from sense_nodes.core.imaging.sensing_matrix import SensingMatrix
from sense_nodes.core.imaging.targets import SIGMA_REF


def back_project(S: SensingMatrix, y: np.ndarray) -> np.ndarray:
    """A^H y (Eq. 20), conjugate transpose, for one (N_1,) or a batch (n, N_1) of
    measurements, scaled by 1 / (||A(:, v)||^2 SIGMA_REF) so that an on-grid UAV of
    mean RCS reads ~1 at its voxel (the scaling is per voxel, so it is still the
    paper's A^H y up to a fixed diagonal). Returns complex64 of shape (..., N_v)."""
    y = np.asarray(y, np.complex64)
    # batch: Y conj(A) = conj(conj(Y) A), without materialising conj(A) (80 MB for
    # the paper's 2D A) on every call
    bp = np.conj(np.conj(y) @ S.A) if y.ndim == 2 else S.AH @ y
    return (bp / (S.col_norm2 * SIGMA_REF)).astype(np.complex64)


def bp_features(bp: np.ndarray, grid_shape: tuple) -> np.ndarray:
    """Network input (n, 3, *grid) float32: |A^H y|, Re and Im. The paper feeds
    sigma_pri to the CNN without saying how a complex image enters it; magnitude
    plus the two quadratures keeps all of it."""
    bp = np.atleast_2d(bp)
    feats = np.stack([np.abs(bp), bp.real, bp.imag], axis=1).astype(np.float32)
    return feats.reshape((len(bp), 3) + tuple(grid_shape))


class FactoredBackProjector:
    """``back_project`` without A, from the per-BS channels it factors into.

    Each row block of A (BS pair b1 -> b2, subcarrier f) is
    kappa * h_t(v) h_r(v) for every antenna pair (t, r) (Eq. 12), so with
    G_b = [h_n(v)] (N0^2 x N_v) per BS and subcarrier and Y[t, r] the block of y:

        (A^H y)_v = kappa * sum_t conj(G_b1[t, v]) * (Y conj(G_b2))[t, v].

    The same arithmetic as A^H y, but it reads N_b N_f small matrices (1.3 MB
    for the paper's 2D ROI, cache-resident) instead of streaming A (76 MB)
    from memory every frame. Agrees with ``back_project`` to float32 rounding."""

    def __init__(self, cfg):
        from sense_nodes.core.imaging.channel import kappa, point_channel
        from sense_nodes.core.imaging.geometry import (antenna_positions, measurement_pairs,
                                                       subcarrier_wavelengths, voxel_centres)
        ants, pts = antenna_positions(cfg), voxel_centres(cfg)
        lams = subcarrier_wavelengths(cfg)
        self.n_a, self.n_v = cfg.n_antennas, len(pts)
        G = [[point_channel(ants[b], pts, lam) for lam in lams] for b in range(cfg.n_bs)]
        self.Gc = [[np.conj(g).astype(np.complex64) for g in row] for row in G]
        # row blocks in A's order (sensing_matrix._blocks): pair, then subcarrier
        self.blocks = [(b1, b2, f) for b1, b2 in measurement_pairs(cfg) for f in range(len(lams))]
        k = kappa(cfg)
        norm2 = np.zeros(self.n_v)
        for b1, b2, f in self.blocks:
            norm2 += (np.abs(G[b1][f]) ** 2).sum(0) * (np.abs(G[b2][f]) ** 2).sum(0)
        self.col_norm2 = (k * k * norm2).astype(np.float32)
        self.scale = (k / (k * k * norm2 * SIGMA_REF)).astype(np.float32)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, np.complex64)
        single = y.ndim == 1
        y = np.atleast_2d(y)
        n_rows = self.n_a * self.n_a
        if y.shape[1] != n_rows * len(self.blocks):
            raise ValueError(f"y has {y.shape[1]} measurements, expected {n_rows * len(self.blocks)}")
        out = np.zeros((len(y), self.n_v), np.complex64)
        blocks = y.reshape(len(y), len(self.blocks), self.n_a, self.n_a)                # [n, k, t, r]
        for i in range(len(y)):
            for k, (b1, b2, f) in enumerate(self.blocks):
                Z = blocks[i, k] @ self.Gc[b2][f]                                       # [t, v]
                Z *= self.Gc[b1][f]
                out[i] += Z.sum(axis=0)
        out *= self.scale
        return out[0] if single else out
