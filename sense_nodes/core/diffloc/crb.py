"""Cramer-Rao bound on the UE position from the traced paths.

The dataset stores per link the Fisher information on (x, y) per unit noise
variance (``crb_fim``: every traced path's delay over the K subcarriers and
all antenna pairs, and the line-of-sight direction over the BS aperture; see
the generator). With the per-entry noise variance of a sample's SNR,
``sigma^2 = mean|H|^2 / 10^(SNR/10)``, the Fisher information of a set of
links is ``J = sum_b F_b / sigma^2`` and the bound on the RMS position error
is ``sqrt(trace(J^-1))``. Paths are treated as resolved and the map as known,
so the bound is optimistic: no method can beat it, and a method far above it
has room left in the data.
"""
from __future__ import annotations

import numpy as np

SINGULAR_COND = 1e12


def crb_m(fim_links: np.ndarray, noise_var: float, links=None) -> float:
    """Position CRB (m) of one sample from its links' information
    ``fim_links`` [B, 2, 2] (optionally only ``links``); inf if singular."""
    f = np.asarray(fim_links, np.float64)
    if links is not None:
        f = f[np.asarray(links)]
    J = f.sum(0) / noise_var
    if not np.all(np.isfinite(J)) or not np.any(J) or np.linalg.cond(J) > SINGULAR_COND:
        return float("inf")
    return float(np.sqrt(np.trace(np.linalg.inv(J))))


def crb_samples_m(fim: np.ndarray, power: np.ndarray, snr_db: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """CRB (m) of each sample [S] over its valid links at its SNR."""
    var = np.asarray(power, np.float64) / 10 ** (np.asarray(snr_db, np.float64) / 10)
    return np.array([crb_m(fim[i], var[i], np.flatnonzero(valid[i])) if valid[i].any() and var[i] > 0
                     else float("inf") for i in range(len(fim))])
