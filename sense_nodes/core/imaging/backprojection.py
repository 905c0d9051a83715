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
