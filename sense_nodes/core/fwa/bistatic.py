"""Locating the UAV from the delays of its echo in the background-nulled
residuals (:mod:`.subspace`): beyond the paper, beside C-ULocNet.

A pair whose residual carries the echo gives its bistatic range
``rho_i = c tau_i = |b_m - p| + |p - c_n|``: an ellipsoid with the BS and
the CPE as foci. The UAV flies at a known height (Section V-A1:
``p = (x, y, 60)``), so ``p`` is where those ellipses cut that plane:
nonlinear least squares over (x, y) with a soft-L1 loss (a pair whose
peak was noise, not echo, must not drag the fix), started from the best
point of a coarse grid, then refitted on the pairs that agree with it. The delay of each pair comes from a fit of the
single-path delay response (the Dirichlet kernel of the subcarrier grid,
exact for our CFRs) to the residual, noncoherently over the antennas,
whose phases carry the unknown angles.

Notation: ``r`` [n_r, n_t, n_taps] one pair's residual taps; ``u`` a delay
in taps (tau K Delta_f); ``k`` = K the number of subcarriers; ``b`` [M, 3],
``c`` [N, 3] BS and CPE positions.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares
from scipy.constants import c as C  # speed of light, m/s

from sense_nodes.data.csi.cfr import dirichlet

GRID_STEP_M = 2.0
LOSS_SCALE_M = 5.0   # soft-L1 scale: a few metres, the ranging error at moderate SNR
OUTLIER_M = 3 * LOSS_SCALE_M  # a pair this far off the robust fit is not the echo


def refine_delay(r: np.ndarray, tap: int, k: int, step: float = 0.02) -> float:
    """The delay (in taps) within one tap of ``tap`` that best explains the
    residual ``r`` as one path: argmax over u of
    sum_antennas |<d_u, r_ant>|^2 / ||d_u||^2 (d_u the delay response),
    parabolic-interpolated between grid points."""
    n_taps = r.shape[-1]
    u = tap + np.arange(-1.0, 1.0 + step / 2, step)
    d = dirichlet((np.arange(n_taps)[None, :] - u[:, None]) / k, k)      # [U, n_taps]
    proj = r.reshape(-1, n_taps) @ d.conj().T                              # [antennas, U]
    power = (np.abs(proj) ** 2).sum(0) / (np.abs(d) ** 2).sum(1)
    i = int(np.argmax(power))
    if 0 < i < len(u) - 1:
        a, b, c = power[i - 1], power[i], power[i + 1]
        den = a - 2 * b + c
        if den < 0:
            return float(u[i] + 0.5 * step * (a - c) / den)
    return float(u[i])


def bistatic_range(p: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """|b - p| + |p - c| for points p [..., 3] and per-pair foci b, c [L, 3] -> [..., L]."""
    p = np.asarray(p, float)[..., None, :]
    return np.linalg.norm(b - p, axis=-1) + np.linalg.norm(p - c, axis=-1)


def locate(b: np.ndarray, c: np.ndarray, ranges: np.ndarray, height: float,
           lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The point (x, y, height) whose bistatic ranges to the pairs' foci
    ``b``, ``c`` [L, 3] best match ``ranges`` [L] m, searched in the box
    ``lo``..``hi`` (x, y)."""
    b, c, ranges = np.asarray(b, float), np.asarray(c, float), np.asarray(ranges, float)
    xs = np.arange(lo[0], hi[0] + GRID_STEP_M, GRID_STEP_M)
    ys = np.arange(lo[1], hi[1] + GRID_STEP_M, GRID_STEP_M)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    grid = np.stack([gx, gy, np.full_like(gx, height)], -1).reshape(-1, 3)
    res = (bistatic_range(grid, b, c) - ranges) / LOSS_SCALE_M
    cost = (2 * (np.sqrt(1 + res ** 2) - 1)).sum(1)                       # soft-L1, as least_squares
    start = grid[int(np.argmin(cost)), :2]

    def residuals(xy, keep=slice(None)):
        return bistatic_range(np.r_[xy, height], b[keep], c[keep]) - ranges[keep]

    fit = least_squares(residuals, start, loss="soft_l1", f_scale=LOSS_SCALE_M)
    # soft-L1 bounds an outlier's pull but does not remove it: refit on the
    # pairs it agrees with (the classical two-stage robust estimate)
    keep = np.abs(residuals(fit.x)) < OUTLIER_M
    if 2 <= keep.sum() < len(keep):
        fit = least_squares(residuals, fit.x, args=(keep,))
    return np.r_[fit.x, height]


SEARCH_MARGIN_M = 10.0  # the search box: the nodes' extent and this much around it


def delay_to_range(u, k: int, scs_hz: float) -> np.ndarray:
    """Echo delays ``u`` in taps of a K-subcarrier IDFT -> bistatic ranges, m."""
    return C * np.asarray(u, float) / (int(k) * float(scs_hz))


def search_box(b: np.ndarray, c: np.ndarray, margin: float = SEARCH_MARGIN_M):
    """(lo, hi) (x, y) of the BSs and CPEs, widened by ``margin`` m."""
    nodes = np.r_[np.asarray(b, float)[:, :2], np.asarray(c, float)[:, :2]]
    return nodes.min(0) - margin, nodes.max(0) + margin


def locate_strongest(z: np.ndarray, ranges: np.ndarray, pairs: np.ndarray, b: np.ndarray, c: np.ndarray,
                     height: float, lo: np.ndarray, hi: np.ndarray, k_pairs: int):
    """(the pairs used, the fix [3]) from the ``k_pairs`` pairs of largest
    residual peak ``z``: the pairs whose peak is most surely the echo.
    ``pairs`` [L] are pair indices (BS * N + CPE) of ``z`` and ``ranges`` [L]
    m; ``b`` [M, 3], ``c`` [N, 3] the BS and CPE positions."""
    c = np.asarray(c, float)
    pairs = np.asarray(pairs)
    top = np.argsort(-np.asarray(z, float), kind="stable")[:k_pairs]
    p = pairs[top]
    n = len(c)
    return p, locate(np.asarray(b, float)[p // n], c[p % n], np.asarray(ranges, float)[top], height, lo, hi)
