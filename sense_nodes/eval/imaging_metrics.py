"""Imaging metrics exactly as Sec. V-A of offgrid_isac_imaging defines them.

Definitions (printed by ``sense eval imaging``):

- MSE (Eq. 23): ||sigma_hat - sigma||^2 / N_v per image, averaged over images;
  images in label units (sigma / 0.1 m, a mean-RCS UAV is ~1).
- SSIM (Eq. 24) with MATLAB's ``ssim`` defaults, as the paper states: local
  statistics under an 11-tap Gaussian window (std 1.5 voxels, replicate
  padding), c1 = (0.01 L)^2, c2 = (0.03 L)^2 with dynamic range L = 1, the
  mean of the SSIM map; 3D images use the 3D window.
- Detected target: the paper counts targets, not voxels ("the proportion
  of correctly identified targets", "falsely detected targets"; M_hat of
  Eq. 25 is "the number of detected targets"). An off-grid UAV lights up a
  small cluster of voxels, so a detected target is a connected group
  (8-neighbours in 2D, 26 in 3D) of voxels >= 0.1 (label units, a mean-RCS
  UAV is 1), located at the value-weighted centroid of its voxel centres.
  A UAV counts as detected when a detected target has a voxel within one
  voxel (3x3, 3x3x3) of the voxel that contains it, each detected target
  standing for at most one UAV (maximum matching). Threshold, tolerance and
  grouping follow the paper authors' published evaluation code.
- DR: detected UAVs / true UAVs, pooled over the test set.
- FAR: detected targets matched to no UAV / all detected targets, pooled
  over the test set ("the proportion of falsely detected targets that do
  not exist").
- Also reported, stricter and not the paper's (keys *_voxel_dr_pct,
  *_voxel_far_pct): every voxel >= 0.5 is a detection, correct only if it
  is exactly a UAV's voxel, FAR = wrong voxels / detected voxels.
- OSPA (Eq. 25): detected target positions against true (off-grid) UAV
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
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from sense_nodes.core.imaging.detection import DETECTION_THRESHOLD, find_targets, label_targets

DEFINITIONS = __doc__.split("Definitions (printed by ``sense eval imaging``):", 1)[1].strip()
OSPA_C3 = 1.0
OSPA_EMPTY = 50.0
VOXEL_THRESHOLD = 0.5


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


def detection_counts(pred: np.ndarray, true: np.ndarray, threshold: float = DETECTION_THRESHOLD):
    """(detected UAVs, true UAVs, false targets, detected targets) for one image of
    its grid shape: targets are connected groups of voxels >= threshold; a UAV
    (non-zero label voxel) is detected by a target with a voxel within one voxel
    of it, each target detecting at most one UAV (maximum bipartite matching)."""
    pred, true = np.asarray(pred, float), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"image sizes differ: {pred.shape} vs {true.shape}")
    labels, n_targets = label_targets(pred, threshold)
    uavs = np.argwhere(true != 0)
    if n_targets == 0 or len(uavs) == 0:
        return 0, len(uavs), n_targets, n_targets
    rows, cols = [], []
    for i, u in enumerate(uavs):
        window = tuple(slice(max(c - 1, 0), c + 2) for c in u)
        for lab in np.unique(labels[window]):
            if lab:
                rows.append(i)
                cols.append(lab - 1)
    graph = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(uavs), n_targets))
    matched = int(np.sum(maximum_bipartite_matching(graph, perm_type="column") >= 0))
    return matched, len(uavs), n_targets - matched, n_targets


def voxel_counts(pred: np.ndarray, true: np.ndarray, threshold: float = VOXEL_THRESHOLD):
    """Strict per-voxel counts (not the paper's): (correct voxels, true UAVs, wrong
    voxels, detected voxels), a voxel >= threshold being correct only on a UAV's voxel."""
    p, t = np.asarray(pred).ravel() >= threshold, np.asarray(true).ravel() != 0
    return int(np.sum(p & t)), int(t.sum()), int(np.sum(p & ~t)), int(p.sum())


def evaluate_images(preds: np.ndarray, labels: np.ndarray, positions: list, centres: np.ndarray,
                    grid_shape: tuple, threshold: float = DETECTION_THRESHOLD) -> dict:
    """All five metrics over a test set: preds and labels (n, N_v), ``positions``
    the true UAV positions per image, ``centres`` (N_v, 3) voxel centres."""
    if len(preds) != len(labels) or len(labels) != len(positions):
        raise ValueError("preds, labels and positions must have one entry per image")
    mses, ssims, ospas = [], [], []
    tot = np.zeros(4, int)
    vox = np.zeros(4, int)
    for p, t, pos in zip(preds, labels, positions):
        p, t = np.asarray(p).reshape(grid_shape), np.asarray(t).reshape(grid_shape)
        mses.append(mse(p, t))
        ssims.append(ssim(p, t))
        found = find_targets(p, centres, threshold)
        ospas.append(ospa(np.array([f.position for f in found]), pos))
        tot += detection_counts(p, t, threshold)
        vox += voxel_counts(p, t)
    return dict(mse=float(np.mean(mses)), ssim=float(np.mean(ssims)), ospa=float(np.mean(ospas)),
                dr_pct=100.0 * tot[0] / max(tot[1], 1), far_pct=100.0 * tot[2] / max(tot[3], 1),
                voxel_dr_pct=100.0 * vox[0] / max(vox[1], 1),
                voxel_far_pct=100.0 * vox[2] / max(vox[3], 1))
