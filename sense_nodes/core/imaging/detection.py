"""Targets in a voxel image (Sec. V-A: "detected targets", M_hat of Eq. 25).

A UAV is a point target, but an off-grid UAV lights up a small cluster of
voxels around the one that contains it. A detected target is therefore a
connected group of voxels at or above the threshold (8-connected in 2D,
26-connected in 3D), not a single voxel; its position is the value-weighted
centroid of its voxel centres. This is how the paper's authors count targets
in their published evaluation, with a threshold of 0.1 in label units (a
mean-RCS UAV is 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

DETECTION_THRESHOLD = 0.1


@dataclass
class Target:
    voxels: np.ndarray       # flat indices of the voxels of this target
    position: np.ndarray     # value-weighted centroid of their centres, metres
    peak: float              # largest value in the group (label units)
    peak_voxel: int          # flat index of that voxel


def label_targets(image: np.ndarray, threshold: float = DETECTION_THRESHOLD):
    """(labels array of ``image.shape``, count): connected groups of voxels >= threshold."""
    image = np.asarray(image)
    mask = image >= threshold
    structure = np.ones((3,) * image.ndim, bool)
    return ndimage.label(mask, structure=structure)


def find_targets(image: np.ndarray, centres: np.ndarray,
                 threshold: float = DETECTION_THRESHOLD) -> list:
    """Detected targets of one image shaped like its grid; ``centres`` (N_v, 3) are
    the voxel centres in flat (C) order."""
    image = np.asarray(image, float)
    labels, n = label_targets(image, threshold)
    if n == 0:
        return []
    flat_lab, flat_img = labels.reshape(-1), image.reshape(-1)
    order = np.argsort(flat_lab, kind="stable")
    bounds = np.searchsorted(flat_lab[order], np.arange(1, n + 2))
    out = []
    for k in range(n):
        vox = order[bounds[k]:bounds[k + 1]]
        w = flat_img[vox]
        peak = int(vox[np.argmax(w)])
        out.append(Target(voxels=vox, position=(w[:, None] * centres[vox]).sum(0) / w.sum(),
                          peak=float(flat_img[peak]), peak_voxel=peak))
    return out
