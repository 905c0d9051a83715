"""Attention-guided pair selection (Section IV-A, Eq. 15-16):

    S_loc = { (m, n) in S_top-k : a_{m,n} >= sigma_att }

The attention weights sum to one per scene, so a fixed ``sigma_att``
keeps fewer pairs when more pairs are present: the threshold interacts
with the bag size (Table II is reported per bag size for that reason).
The rule returns at least the single best pair (0 < L, Eq. 15).
"""
from __future__ import annotations

import numpy as np


def select_pairs(attention, k: int = 10, sigma_att: float = 0.1, pair_index=None) -> np.ndarray:
    """attention [P] of the pairs present; pair_index [P] their indices in
    the M x N table (default 0..P-1) -> selected pair indices, sorted by
    decreasing attention."""
    a = np.asarray(attention, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError("no pairs to select from")
    if not np.isfinite(a).all():
        raise ValueError("attention holds non-finite values")
    if k < 1:
        raise ValueError(f"k must be >= 1 (got {k})")
    idx = np.arange(a.size) if pair_index is None else np.asarray(pair_index).reshape(-1)
    order = np.argsort(-a, kind="stable")[:k]
    keep = order[a[order] >= sigma_att]
    if keep.size == 0:
        keep = order[:1]
    return idx[keep]
