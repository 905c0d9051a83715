"""The sensing matrix A of Eq. 13-14, built blockwise in complex64.

Rows are ordered (BS pair, subcarrier, n_t, n_r); columns are voxels in
``geometry.voxel_centres`` order. The same routine gives the steering vector
b(p) of any point p (off-grid targets, Eq. 17).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from sense_nodes.core.imaging.channel import kappa, point_channel
from sense_nodes.core.imaging.geometry import (ImagingConfig, antenna_positions,
                                               measurement_pairs, n_measurements,
                                               subcarrier_wavelengths, voxel_centres)

DEFAULT_MAX_BYTES = 4 * 1024 ** 3


def _blocks(cfg: ImagingConfig, antennas: np.ndarray | None = None):
    """Yield (row0, tx antennas, rx antennas, wavelength) for each row block of A;
    ``antennas`` (N_b, N0^2, 3): a site's own arrays instead of the config's polygon."""
    ants = antenna_positions(cfg) if antennas is None else np.asarray(antennas, float)
    n_rows = cfg.n_antennas ** 2
    row = 0
    for b1, b2 in measurement_pairs(cfg):
        for lam in subcarrier_wavelengths(cfg):
            yield row, ants[b1], ants[b2], lam
            row += n_rows


def steering_vectors(cfg: ImagingConfig, points: np.ndarray, out: np.ndarray | None = None,
                     chunk: int = 512, antennas: np.ndarray | None = None) -> np.ndarray:
    """(N_1, N_p) complex64 columns a(p) = kappa * vec(h_t(p) h_r(p)^T) (Eq. 12-14).

    Built one (pair, subcarrier) block and ``chunk`` points at a time, so the
    only temporary is N0^4 x chunk complex128."""
    points = np.atleast_2d(np.asarray(points, float))
    n1 = n_measurements(cfg)
    if out is None:
        out = np.empty((n1, len(points)), np.complex64)
    k = kappa(cfg)
    n_rows = cfg.n_antennas ** 2
    for row, tx, rx, lam in _blocks(cfg, antennas):
        for c0 in range(0, len(points), chunk):
            pts = points[c0:c0 + chunk]
            ht = point_channel(tx, pts, lam)
            hr = point_channel(rx, pts, lam)
            block = (ht[:, None, :] * hr[None, :, :]).reshape(n_rows, len(pts))
            out[row:row + n_rows, c0:c0 + len(pts)] = k * block
    return out


@dataclass
class SensingMatrix:
    """A (N_1 x N_v, complex64) with what every solver needs beside it."""

    cfg: ImagingConfig
    A: np.ndarray
    build_s: float
    _AH: np.ndarray | None = None
    _col_norm2: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return int(self.A.nbytes)

    @property
    def AH(self) -> np.ndarray:
        """A^H, contiguous (the conjugate transpose, as Eq. 20 and SP need)."""
        if self._AH is None:
            self._AH = np.ascontiguousarray(self.A.conj().T)
        return self._AH

    @property
    def col_norm2(self) -> np.ndarray:
        """||A(:, n)||_2^2 per voxel (float32)."""
        if self._col_norm2 is None:
            self._col_norm2 = np.einsum("ij,ij->j", self.A.real, self.A.real) + \
                np.einsum("ij,ij->j", self.A.imag, self.A.imag)
        return self._col_norm2


def build_sensing_matrix(cfg: ImagingConfig, max_bytes: int = DEFAULT_MAX_BYTES,
                         chunk: int = 512, antennas: np.ndarray | None = None) -> SensingMatrix:
    """Build A for ``cfg`` (and a site's ``antennas``, see ``steering_vectors``) and
    time it; refuse sizes over ``max_bytes`` (Fig. 4's remark: A passes 1 GB at
    N0 = 8) rather than exhaust memory."""
    n1, nv = n_measurements(cfg), cfg.n_voxels
    need = n1 * nv * 8
    if need > max_bytes:
        raise ValueError(f"sensing matrix {n1} x {nv} needs {need / 2**20:.0f} MiB > "
                         f"max_bytes={max_bytes / 2**20:.0f} MiB: lower n0, n_subcarriers or "
                         f"the voxel count, or raise max_bytes")
    t0 = time.perf_counter()
    A = steering_vectors(cfg, voxel_centres(cfg), out=np.empty((n1, nv), np.complex64), chunk=chunk,
                         antennas=antennas)
    return SensingMatrix(cfg=cfg, A=A, build_s=time.perf_counter() - t0)
