"""Background-subspace nulling: a training-free UAV detector for BS-CPE
pairs (beyond the paper, beside its learned detector and the z-score
floor of :mod:`.classical`).

Why it works. The BSs and CPEs are static, so a pair's background is a
fixed set of P_b paths. Eq. 27 gives every path a fresh random phase in
every scene, which makes the background *look* different each time (and
defeats per-cell z-scores: the phases make the background power itself
vary by more than the echo) -- but the CFR stays inside the span of the P_b
fixed path signatures (BS array response x CPE array response x delay
response), whatever the phases. Projecting that span out leaves receiver
noise plus whatever is new: the UAV's echo. The span is estimated from
UAV-free scenes alone (the same "no UAV here" data the z-score detector
uses), its dimension by where the sample eigenvalues leave the noise's
Marchenko-Pastur bulk -- the model-order idea of MUSIC-type subspace
methods (Schmidt, IEEE TAP 1986), here applied to the clutter rather than
the target.

Statistic. The residual's delay taps are turned into BS beams (2-D DFT
over the 8 x 8 UPA), power summed over the CPE antennas, and divided by
the noise power of one such cell: under "no UAV", each cell is a
chi-square with 2 n_t degrees of freedom over 2 n_t (mean 1). A pair
scores its largest cell; a scene its largest pair.

Notation: ``t`` [P, D] a scene's first ``n_taps`` delay taps per pair,
flattened ``(n_r, n_t, n_taps)`` (D = 64 * 4 * 64); ``U_i`` [D, r_i] the
orthonormal background basis of pair i; ``noise_var`` [P] the receiver
noise variance of one delay tap (the CFR's noise variance over the number
of subcarriers: an unnormalised-sum IDFT divided by K); ``z`` [P] the
pair statistics.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sense_nodes.core.fwa.classical import UPA_SHAPE

# Eigenvalues count as background only this far above the noise bulk's
# edge: a margin against the edge's finite-sample spread (not in any
# paper; the detection figures are measured with it).
EDGE_MARGIN = 1.5


def noise_edge(noise_var: float, dim: int, scenes: int) -> float:
    """Largest eigenvalue of the Gram matrix ``M^H M`` of ``scenes`` pure
    noise vectors of ``dim`` entries (Marchenko-Pastur upper edge)."""
    return float(noise_var * dim * (1 + np.sqrt(scenes / dim)) ** 2)


def fit_basis(M: np.ndarray, noise_var: float, margin: float = EDGE_MARGIN) -> np.ndarray:
    """Orthonormal basis [D, r] of the background span of one pair from
    ``M`` [N, D] UAV-free taps, through the N x N Gram matrix (N << D)."""
    N, D = M.shape
    G = (M.conj() @ M.T).astype(np.complex128)   # [N, N], G_ab = <m_a, m_b>
    w, V = np.linalg.eigh(G)
    w, V = w[::-1], V[:, ::-1]
    r = int(np.sum(w > margin * noise_edge(noise_var, D, N)))
    if r == 0:
        return np.zeros((D, 0), np.complex64)
    U = (M.T @ V[:, :r]) / np.sqrt(w[:r])   # left singular vectors of M^T
    return U.astype(np.complex64)


@dataclass
class BackgroundSubspace:
    """Per-pair background bases and the tap noise variances."""

    bases: list                  # P arrays [D, r_i] complex64
    noise_var: np.ndarray        # [P]
    scenes: int = 0              # UAV-free scenes the bases were fitted on
    margin: float = EDGE_MARGIN

    @classmethod
    def fit(cls, taps: np.ndarray, noise_var: np.ndarray, margin: float = EDGE_MARGIN) -> "BackgroundSubspace":
        """taps: [N, P, D] complex of N UAV-free scenes."""
        taps = np.asarray(taps)
        if taps.ndim != 3 or taps.shape[0] < 2:
            raise ValueError(f"need taps [N >= 2, P, D] of UAV-free scenes (got shape {taps.shape})")
        nv = np.asarray(noise_var, np.float64)
        bases = [fit_basis(taps[:, i], nv[i], margin) for i in range(taps.shape[1])]
        return cls(bases, nv, taps.shape[0], margin)

    @property
    def ranks(self) -> np.ndarray:
        return np.array([b.shape[1] for b in self.bases])

    def residual(self, t: np.ndarray) -> np.ndarray:
        """[P, D] taps -> the part orthogonal to each pair's background."""
        t = np.asarray(t, np.complex64)
        out = np.empty_like(t)
        for i, U in enumerate(self.bases):
            out[i] = t[i] - U @ (U.conj().T @ t[i])
        return out


def beam_cells(resid: np.ndarray, n_t: int, n_taps: int, upa=UPA_SHAPE) -> np.ndarray:
    """[P, D] residual taps -> [P, beams, n_taps] power summed over the CPE
    antennas (the unnormalised 2-D DFT over the BS array)."""
    P = resid.shape[0]
    r = resid.reshape((P,) + tuple(upa) + (n_t, n_taps))
    beams = np.fft.fft2(r, axes=(1, 2))
    return (np.abs(beams) ** 2).sum(3).reshape(P, upa[0] * upa[1], n_taps)


def noise_cells(resid: np.ndarray, noise_var: np.ndarray, n_t: int, n_taps: int, upa=UPA_SHAPE) -> np.ndarray:
    """:func:`beam_cells` in units of one cell's noise power (n_r * n_t *
    noise_var: the DFT sums n_r entries, the power n_t antennas)."""
    cells = beam_cells(resid, n_t, n_taps, upa)
    cells /= (upa[0] * upa[1] * n_t * np.asarray(noise_var, np.float64))[:, None, None]
    return cells


@dataclass
class PairStatistics:
    """Per pair: the noise-normalised peak ``z``, its BS beam and delay tap."""

    z: np.ndarray      # [P] float
    beam: np.ndarray   # [P] int
    tap: np.ndarray    # [P] int


def pair_statistics(resid: np.ndarray, noise_var: np.ndarray, n_t: int, n_taps: int,
                    upa=UPA_SHAPE) -> PairStatistics:
    """The largest cell of each pair's residual beam x delay map
    (:func:`noise_cells`)."""
    cells = noise_cells(resid, noise_var, n_t, n_taps, upa)
    flat = cells.reshape(len(cells), -1)
    k = flat.argmax(1)
    return PairStatistics(flat[np.arange(len(flat)), k], k // n_taps, k % n_taps)


@dataclass
class SubspaceDetector:
    """Background nulling and the scene statistic: the largest pair
    statistic over the pairs present (a UAV lights up a few pairs
    strongly; summing the others would add their noise). ``threshold`` on
    the scene statistic, chosen on validation scenes."""

    subspace: BackgroundSubspace
    n_t: int
    n_taps: int
    threshold: float = np.inf
    upa: tuple = field(default=UPA_SHAPE)

    def pair_stats(self, t: np.ndarray) -> PairStatistics:
        return pair_statistics(self.subspace.residual(t), self.subspace.noise_var, self.n_t, self.n_taps,
                               self.upa)

    @staticmethod
    def scene_score(z: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
        """z [S, P] -> [S]: the largest over the pairs in ``present``."""
        z = np.asarray(z, np.float64)
        if present is not None:
            z = np.where(present, z, -np.inf)
        return z.max(-1)
