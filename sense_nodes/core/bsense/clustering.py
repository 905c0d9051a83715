"""Point clustering into objects (BSense paper, Section 3.3.1, Eq. 12).

DBSCAN on a distance that weighs position and Doppler. The equation's exact
form and its weights did not survive in our copy of the paper; we read Eq. 12
as the weighted Euclidean distance

    D(i, j) = sqrt( w_p * ||p_i - p_j||^2 + w_v * (v_i - v_j)^2 )

with w_p = 1 and w_v = 4 s^2 (1 m/s of Doppler difference weighs as 2 m), and
the DBSCAN radius eps = 8 m, min_samples = 2 (all our choices). The weighted
distance lets a k-d tree (scipy cKDTree) find neighbours on scaled
coordinates; core points are joined by connected components and border
points take the cluster of a neighbouring core point. Points DBSCAN would
call noise are kept as single-point clusters (the paper: a small UAV may
return one point).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .cubes import xyz_of
from .noise_model import METRICS, metrics_of


@dataclass(frozen=True)
class ClusterConfig:
    """Eq. 12 weights and DBSCAN parameters (our choices, see module doc)."""
    w_pos: float = 1.0
    w_doppler: float = 4.0
    eps: float = 8.0
    min_samples: int = 2


@dataclass
class Objects:
    """Objects of one frame (Section 3.3.1): one row per cluster.

    ``pos`` (M, 3) centroid, ``doppler`` (M,) mean Doppler, ``features``
    (M, 5) mean signal metrics (SNR, SCR, noise, signal power, rx power),
    ``n_points`` (M,), and ``point_cluster`` (N,) the cluster of each input
    point (-1 for points not clustered: removed upstream)."""
    pos: np.ndarray
    doppler: np.ndarray
    features: np.ndarray
    n_points: np.ndarray
    point_cluster: np.ndarray

    def __len__(self) -> int:
        return int(self.pos.shape[0])

    def subset(self, mask: np.ndarray) -> "Objects":
        """The objects where ``mask`` holds (point_cluster renumbered, dropped -> -1)."""
        mask = np.asarray(mask, bool)
        new = np.full(mask.size + 1, -1, np.int64)
        new[:-1][mask] = np.arange(int(mask.sum()))
        return Objects(self.pos[mask], self.doppler[mask], self.features[mask], self.n_points[mask],
                       new[self.point_cluster])

    @staticmethod
    def empty(n_points: int = 0) -> "Objects":
        return Objects(np.zeros((0, 3)), np.zeros(0), np.zeros((0, len(METRICS))), np.zeros(0, np.int64),
                       np.full(n_points, -1, np.int64))


def dbscan_labels(pos: np.ndarray, doppler: np.ndarray, config: ClusterConfig = ClusterConfig()) -> np.ndarray:
    """Cluster label per point, DBSCAN under the Eq. 12 distance, DBSCAN noise
    points as their own clusters; labels are 0..M-1."""
    n = pos.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    X = np.empty((n, 4))
    X[:, :3] = pos * np.sqrt(config.w_pos)
    X[:, 3] = np.asarray(doppler, dtype=np.float64) * np.sqrt(config.w_doppler)
    pairs = cKDTree(X).query_pairs(config.eps, output_type="ndarray")
    deg = np.bincount(pairs.ravel(), minlength=n) + 1           # neighbours incl. itself
    core = deg >= config.min_samples
    i, j = (pairs[:, 0], pairs[:, 1]) if pairs.size else (np.zeros(0, int), np.zeros(0, int))
    cc = core[i] & core[j]
    g = sparse.coo_matrix((np.ones(int(cc.sum())), (i[cc], j[cc])), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    label = np.where(core, comp, -1)
    # border points: the cluster of a core neighbour
    b1 = core[i] & ~core[j]
    b2 = core[j] & ~core[i]
    label[j[b1]] = comp[i[b1]]
    label[i[b2]] = comp[j[b2]]
    # DBSCAN noise: single-point clusters (kept, Section 3.3.1)
    lone = label < 0
    label[lone] = comp.max() + 1 + np.arange(int(lone.sum()))
    _, label = np.unique(label, return_inverse=True)
    return label.ravel().astype(np.int64)


def cluster(points: np.ndarray, keep: np.ndarray | None = None,
            config: ClusterConfig = ClusterConfig()) -> Objects:
    """Objects of a frame (Section 3.3.1) from the structured ``points`` where
    ``keep`` holds (the noise filter's mask; all points if None)."""
    n = points.shape[0]
    idx = np.arange(n) if keep is None else np.flatnonzero(keep)
    if idx.size == 0:
        return Objects.empty(n)
    p = points[idx]
    xyz = xyz_of(p)
    dop = p["doppler"].astype(np.float64)
    lab = dbscan_labels(xyz, dop, config)
    m = int(lab.max()) + 1
    cnt = np.bincount(lab, minlength=m)
    pos = np.stack([np.bincount(lab, xyz[:, k], m) for k in range(3)], 1) / cnt[:, None]
    vd = np.bincount(lab, dop, m) / cnt
    F = metrics_of(p)
    feats = np.stack([np.bincount(lab, F[:, k], m) for k in range(F.shape[1])], 1) / cnt[:, None]
    pc = np.full(n, -1, np.int64)
    pc[idx] = lab
    return Objects(pos, vd, feats, cnt.astype(np.int64), pc)
