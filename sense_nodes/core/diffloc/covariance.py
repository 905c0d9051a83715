"""Covariance of a fused estimate from the spread of the sampler's outputs
(beyond the paper): the same fingerprints are sampled from ``draws``
different initial noises; the outputs' sample covariance stands for the
posterior's, and their mean is the estimate (the MMSE estimate of Eq. 6).
A floor keeps the covariance positive definite when all draws agree.

``coverage95`` checks calibration: the share of true positions inside the
95 % ellipse (squared Mahalanobis distance below chi2_2(0.95) = 5.991).
"""
from __future__ import annotations

import numpy as np

CHI2_2DOF_95 = 5.991464547107979
FLOOR_M2 = 1e-6  # (1 mm)^2


def spread(draws_xy: np.ndarray, floor_m2: float = FLOOR_M2) -> tuple[np.ndarray, np.ndarray]:
    """``draws_xy`` [K, N, 2] (m) -> (mean [N, 2], covariance [N, 2, 2])."""
    d = np.asarray(draws_xy, np.float64)
    mean = d.mean(0)
    if d.shape[0] > 1:
        c = d - mean
        cov = np.einsum("kni,knj->nij", c, c) / (d.shape[0] - 1)
    else:
        cov = np.zeros((d.shape[1], 2, 2))
    return mean, cov + floor_m2 * np.eye(2)


def coverage95(err_xy: np.ndarray, cov: np.ndarray) -> float:
    """Percent of errors [N, 2] inside their 95 % ellipse."""
    e = np.asarray(err_xy, np.float64)
    m = np.einsum("ni,nij,nj->n", e, np.linalg.inv(cov), e)
    return float(100.0 * np.mean(m <= CHI2_2DOF_95)) if len(e) else float("nan")


def cov3(cov2: np.ndarray, z_var_m2: float = 0.0) -> np.ndarray:
    """[2, 2] -> row-major 3x3 (9,) for ``PositionEstimate.covariance``
    (the height is not estimated: ``z_var_m2``)."""
    out = np.zeros((3, 3))
    out[:2, :2] = cov2
    out[2, 2] = z_var_m2
    return out.ravel()
