"""Imaging metrics exactly as Sec. V-A of offgrid_isac_imaging defines them.

Definitions (printed by ``sense eval imaging``):

- MSE (Eq. 23): ||sigma_hat - sigma||^2 / N_v per image, averaged over images;
  images in label units (sigma / 0.1 m, a mean-RCS UAV is ~1).
- SSIM (Eq. 24) with MATLAB's ``ssim`` defaults, as the paper states: local
  statistics under an 11-tap Gaussian window (std 1.5 voxels, replicate
  padding), c1 = (0.01 L)^2, c2 = (0.03 L)^2 with dynamic range L = 1, the
  mean of the SSIM map; 3D images use the 3D window.
- Detection: a voxel whose estimate is >= 0.5 (half a mean-RCS UAV). A
  detection is correct when it is the voxel that contains a UAV.
- DR: correct detections / true UAVs, pooled over the test set.
- FAR: wrong detections / all detections, pooled over the test set ("the
  proportion of falsely detected targets that do not exist").
- OSPA (Eq. 25): detected voxel centres against true (off-grid) UAV
  positions, Euclidean metres, optimal assignment (Hungarian), c3 = 1, no
  distance cut-off, averaged over images. Eq. 25 is undefined-by-intent
  when one set is empty (it would give an all-zero image the score c3 = 1);
  the paper's Tables III-IV give all-zero outputs OSPA = 50, so an image
  with targets but no detection, or detections but no target, scores 50;
  two empty sets score 0.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.optimize import linear_sum_assignment

DEFINITIONS = __doc__.split("Definitions (printed by ``sense eval imaging``):", 1)[1].strip()
OSPA_C3 = 1.0
OSPA_EMPTY = 50.0


def mse(pred: np.ndarray, true: np.ndarray) -> float:
    """Eq. 23 for one image."""
    pred, true = np.asarray(pred, float).ravel(), np.asarray(true, float).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"image sizes differ: {pred.shape} vs {true.shape}")
    return float(np.sum((pred - true) ** 2) / pred.size)


def ssim(pred: np.ndarray, true: np.ndarray, data_range: float = 1.0) -> float:
    """Eq. 24, MATLAB ``ssim`` defaults (Gaussian window std 1.5, radius 5)."""
    x, y = np.asarray(true, float), np.asarray(pred, float)
    if x.shape != y.shape:
        raise ValueError(f"image sizes differ: {x.shape} vs {y.shape}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def f(a):
        return gaussian_filter(a, sigma=1.5, truncate=5 / 1.5, mode="nearest")

    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(s.mean())


def ospa(est: np.ndarray, true: np.ndarray, c3: float = OSPA_C3,
         empty: float = OSPA_EMPTY) -> float:
    """Eq. 25: (min over assignments of the summed distances + c3 |M - M_hat|) / M_max."""
    est, true = np.asarray(est, float).reshape(-1, 3), np.asarray(true, float).reshape(-1, 3)
    m_hat, m = len(est), len(true)
    if m_hat == 0 and m == 0:
        return 0.0
    if m_hat == 0 or m == 0:
        return float(empty)
    d = np.linalg.norm(est[:, None, :] - true[None, :, :], axis=-1)
    rows, cols = linear_sum_assignment(d)        # optimal sub-pattern assignment
    return float((d[rows, cols].sum() + c3 * abs(m - m_hat)) / max(m, m_hat))


def detection_counts(pred: np.ndarray, true: np.ndarray, threshold: float = 0.5):
    """(correct detections, true UAVs, wrong detections, detections) for one image;
    a UAV is a non-zero voxel of the label image."""
    p, t = np.asarray(pred).ravel() >= threshold, np.asarray(true).ravel() != 0
    return int(np.sum(p & t)), int(t.sum()), int(np.sum(p & ~t)), int(p.sum())


def evaluate_images(preds: np.ndarray, labels: np.ndarray, positions: list, centres: np.ndarray,
                    grid_shape: tuple, threshold: float = 0.5) -> dict:
    """All five metrics over a test set: preds and labels (n, N_v), ``positions``
    the true UAV positions per image, ``centres`` (N_v, 3) voxel centres."""
    if len(preds) != len(labels) or len(labels) != len(positions):
        raise ValueError("preds, labels and positions must have one entry per image")
    mses, ssims, ospas = [], [], []
    correct = n_true = wrong = n_det = 0
    for p, t, pos in zip(preds, labels, positions):
        mses.append(mse(p, t))
        ssims.append(ssim(p.reshape(grid_shape), t.reshape(grid_shape)))
        det = np.flatnonzero(np.asarray(p).ravel() >= threshold)
        ospas.append(ospa(centres[det], pos))
        c, nt, w, nd = detection_counts(p, t, threshold)
        correct, n_true, wrong, n_det = correct + c, n_true + nt, wrong + w, n_det + nd
    return dict(mse=float(np.mean(mses)), ssim=float(np.mean(ssims)), ospa=float(np.mean(ospas)),
                dr_pct=100.0 * correct / max(n_true, 1), far_pct=100.0 * wrong / max(n_det, 1))
