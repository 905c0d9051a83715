"""3-D space in cubes (BSense paper, Section 3.2.2 and Appendix A).

The sensing space is cut into axis-aligned cubes of edge ``edge_m`` (40 m in
the paper). A cube is named by one int64 key packing its integer indices, so a
whole frame is indexed with a few array operations and looked up in a sorted
key table with ``np.searchsorted`` (no Python loop over points).
"""
from __future__ import annotations

import numpy as np

DEFAULT_EDGE_M = 40.0          # paper, Section 3.2.2 / Appendix A
_BITS = 21                      # 21 bits per axis: +-1M cubes, +-40,000 km at 40 m
_OFF = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1


def xyz_of(points: np.ndarray) -> np.ndarray:
    """(N, 3) float64 positions of a structured point array (fields x, y, z)
    or of an (N, >=3) array."""
    if points.dtype.names is not None:
        return np.stack([points["x"], points["y"], points["z"]], 1).astype(np.float64)
    return np.asarray(points, dtype=np.float64)[:, :3]


class CubeGrid:
    """Cubes of edge ``edge_m`` metres aligned on the origin (Section 3.2.2)."""

    def __init__(self, edge_m: float = DEFAULT_EDGE_M):
        if not edge_m > 0:
            raise ValueError(f"cube edge must be positive, got {edge_m}")
        self.edge_m = float(edge_m)

    def indices(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) int64 cube indices of (N, 3) positions."""
        return np.floor(np.asarray(xyz, dtype=np.float64) / self.edge_m).astype(np.int64)

    def keys(self, xyz: np.ndarray) -> np.ndarray:
        """(N,) int64 cube keys of (N, 3) positions (Eq. 3: the cube a point lies in)."""
        return self.keys_of_indices(self.indices(xyz))

    @staticmethod
    def keys_of_indices(idx: np.ndarray) -> np.ndarray:
        """(N,) int64 cube keys of (N, 3) integer cube indices."""
        i = np.asarray(idx, dtype=np.int64) + _OFF
        i &= _MASK
        return (i[:, 0] << (2 * _BITS)) | (i[:, 1] << _BITS) | i[:, 2]

    @staticmethod
    def unpack(keys: np.ndarray) -> np.ndarray:
        """(N, 3) cube indices of keys (inverse of :meth:`keys`)."""
        k = np.asarray(keys, dtype=np.int64)
        return np.stack([(k >> (2 * _BITS)) & _MASK, (k >> _BITS) & _MASK, k & _MASK], 1) - _OFF

    def centres(self, keys: np.ndarray) -> np.ndarray:
        """(N, 3) centres of the cubes with these keys, metres."""
        return (self.unpack(keys) + 0.5) * self.edge_m


def lookup(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Row of each key in the sorted key ``table``, -1 where absent (vectorised)."""
    if table.size == 0:
        return np.full(keys.shape, -1, dtype=np.int64)
    pos = np.searchsorted(table, keys)
    pos = np.minimum(pos, table.size - 1)
    return np.where(table[pos] == keys, pos, -1).astype(np.int64)
