"""Off-grid steering vectors and their analytic derivatives (Eq. 10-12), factored
per base station, for solvers that move targets off the voxel grid.

Notation (paper -> code):

- h_{n, v, n_f} of Eq. 11, the channel from antenna n to point p on subcarrier
  n_f -> ``station_channels(P)[f, b, n, :]`` (antenna n of BS b);
- a_{n_t, n_r, n_f} of Eq. 12 evaluated at an off-grid point p (a column of A
  that is not on the grid) -> ``b(p)``, rows in A's order (BS pair, subcarrier,
  n_t, n_r), as ``sensing_matrix.steering_vectors``;
- kappa = lambda0 sqrt(G_s) / sqrt(4 pi) (Eq. 10).

Derivatives. With d = ||p - q_n|| the distance to antenna q_n, u = (p - q_n) / d
and k_f = 2 pi / lambda_f, Eq. 11 is h = exp(-j k_f d) / (sqrt(4 pi) d), so

    dh / dp = h * (-j k_f - 1 / d) * u,

and since a row of Eq. 12 is kappa h_t(p) h_r(p),

    d(h_t h_r) / dp = (dh_t / dp) h_r + h_t (dh_r / dp).

``test_imaging_gridless`` checks both against finite differences. In a 2D ROI
the target height is the ROI's, so only d/dx and d/dy are free.
"""
from __future__ import annotations

import numpy as np

from sense_nodes.core.imaging.channel import kappa
from sense_nodes.core.imaging.geometry import (ImagingConfig, antenna_positions, measurement_pairs,
                                               n_measurements, subcarrier_wavelengths)


class SteeringModel:
    """Per-BS channels h_b(p), full steering vectors b(p) and their derivatives
    for one ``ImagingConfig``; ``dims`` = 2 (x, y at the ROI height) or 3."""

    def __init__(self, cfg: ImagingConfig, antennas: np.ndarray | None = None):
        self.cfg = cfg
        self.ants = antenna_positions(cfg) if antennas is None else np.asarray(antennas, float)
        self.lams = subcarrier_wavelengths(cfg)
        self.pairs = measurement_pairs(cfg)
        self.kappa = kappa(cfg)
        self.n_bs, self.n_a = self.ants.shape[0], self.ants.shape[1]
        self.n_f = len(self.lams)
        self.dims = 3 if cfg.is_3d else 2
        self.n1 = n_measurements(cfg)
        self.centres = self.ants.mean(axis=1)                  # (N_b, 3) array centres

    def to_3d(self, P: np.ndarray) -> np.ndarray:
        """(N, dims) solver coordinates -> (N, 3) points (2D: at the ROI height)."""
        P = np.atleast_2d(np.asarray(P, float))
        if self.dims == 3:
            return P
        return np.column_stack([P, np.full(len(P), self.cfg.roi_height_m)])

    def station_channels(self, P: np.ndarray, grad: bool = False):
        """h (N_f, N_b, N_a, N) complex128 of Eq. 11 at points P (N, dims); with
        ``grad`` also dh/dp (dims, N_f, N_b, N_a, N). Distances in float64: d / lambda
        is ~1000 cycles, float32 would leave millimetre phase errors."""
        X = self.to_3d(P)
        diff = X[None, None, :, :] - self.ants[:, :, None, :]            # (N_b, N_a, N, 3)
        d = np.sqrt(np.einsum("bnpk,bnpk->bnp", diff, diff))
        cyc = d[None] / self.lams[:, None, None, None]                   # (N_f, N_b, N_a, N)
        h = np.exp(-2j * np.pi * np.mod(cyc, 1.0)) / (np.sqrt(4 * np.pi) * d[None])
        if not grad:
            return h
        k = 2 * np.pi / self.lams[:, None, None, None]
        fac = h * (-1j * k - 1.0 / d[None]) / d[None]                     # dh/dd / d
        dh = np.stack([fac * diff[None, ..., i] for i in range(self.dims)])
        return h, dh

    def _pairs_product(self, ht, hr):
        """kappa * vec(ht_b1 hr_b2^T) stacked over pairs and subcarriers: (N_1, N)."""
        n = ht.shape[-1]
        out = np.empty((self.n1, n), np.result_type(ht, hr))
        rows = self.n_a * self.n_a
        r = 0
        for b1, b2 in self.pairs:
            for f in range(self.n_f):
                out[r:r + rows] = (ht[f, b1][:, None, :] * hr[f, b2][None, :, :]).reshape(rows, n)
                r += rows
        out *= self.kappa
        return out

    def vectors(self, P: np.ndarray, grad: bool = False):
        """b(p) (N_1, N) complex128 at points P (N, dims), rows in A's order; with
        ``grad`` also db/dp (dims, N_1, N) by the product rule above."""
        if not grad:
            h = self.station_channels(P)
            return self._pairs_product(h, h)
        h, dh = self.station_channels(P, grad=True)
        B = self._pairs_product(h, h)
        dB = np.stack([self._pairs_product(dh[i], h) + self._pairs_product(h, dh[i])
                       for i in range(self.dims)])
        return B, dB

    def centre_phases(self, P: np.ndarray) -> np.ndarray:
        """(N_f, N_b, N) one-way phases 2 pi d_b / lambda_f to each array centre."""
        X = self.to_3d(P)
        d = np.linalg.norm(X[None, :, :] - self.centres[:, None, :], axis=-1)
        return 2 * np.pi * np.mod(d[None] / self.lams[:, None, None], 1.0)
