"""A clutter map of the static scene, projected out of each CSI frame.

Sec. II (after Eq. 6) removes the background scattered by static buildings by
measuring it "in a calibration process" and eliminating it from the received
signals; Table VI (Sec. V-C5) measures what a residual of that background
does to the imager. The residual here is fitted blindly from frames a
deployment has already measured, with no truth and no empty scene: the UAVs
move between frames and the buildings do not, so the average of many frames'
CSI of one BS link tends to that link's static component (the echoes, of
random phase from frame to frame, average out as 1 / sqrt(frames)).

Each frame then has the map's direction projected out of every link block,
rather than the map subtracted: a residual whose level changes from frame to
frame (a calibration that drifts, or a residual set relative to each frame's
echo power as in the ray-traced dataset) leaves the same direction. A point
target's block loses only its share along one direction of
N_f N0^4 (3750 for the canyon), so the echoes are nearly untouched.
"""
from __future__ import annotations

import numpy as np


class ClutterMap:
    """Per-block unit directions of the static scene: ``fit`` on measured frames,
    ``project`` a frame (y in A's row order, blocks of ``block_rows`` rows: one
    BS link with all its subcarriers and antenna pairs)."""

    def __init__(self, directions: np.ndarray, frames: int):
        self.directions = np.asarray(directions, np.complex128)    # (n_blocks, block_rows)
        self.frames = int(frames)

    @classmethod
    def fit(cls, batches, block_rows: int) -> "ClutterMap":
        """The map of frames given as an iterable of (n, N_1) arrays: each block's
        mean over all frames, normalised to unit norm (a zero block stays zero)."""
        total, count = None, 0
        for ys in batches:
            ys = np.asarray(ys, np.complex128)
            s = ys.sum(axis=0)
            total = s if total is None else total + s
            count += len(ys)
        if not count:
            raise ValueError("a clutter map needs at least one frame")
        if len(total) % block_rows:
            raise ValueError(f"{len(total)} rows are not whole blocks of {block_rows}")
        mean = total.reshape(-1, block_rows) / count
        norm = np.linalg.norm(mean, axis=1, keepdims=True)
        return cls(np.where(norm > 0, mean / np.where(norm > 0, norm, 1.0), 0.0), count)

    def project(self, y: np.ndarray) -> np.ndarray:
        """y (N_1,) or (n, N_1) with each block's map direction projected out."""
        y = np.asarray(y)
        u = self.directions
        Y = y.reshape(y.shape[:-1] + u.shape).astype(np.complex128)
        coef = np.einsum("bk,...bk->...b", u.conj(), Y)
        return (Y - coef[..., None] * u).reshape(y.shape).astype(y.dtype)
