"""Stage 3 of the gridless imager (``gridless``): the local exact search, on
the centimetre lattice of peaks a single carrier and widely spaced BSs make.

The exact MUSIC fraction ||U^H h(p)||^2 / ||h(p)||^2 (U: signal subspace of
the multistatic matrix, h(p): the per-BS channels of Eq. 11 stacked) is 1 on
a target and has peaks every few centimetres around it. Over a small region
each BS's array beam barely changes while its phase 2 pi d_b(p) / lambda
turns fast, so the fraction is evaluated with the beams frozen at a tile's
centre and the per-BS phases exact: one N_b x N_b quadratic form per point
(``window_map``). The local maxima with the highest parabola-interpolated
heights are polished by Gauss-Newton on the exact fraction with the analytic
derivatives of ``steering``.

A detection whose fraction stays short of 1 by more than the frame's noise
allows (two UAVs a few metres apart shared one coarse peak, or a neighbour
pulled it off) is searched again over a wider window tiled so that the
frozen beams stay accurate (``widen``).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

GN_STEP_CAP_M = 0.01          # below a quarter of the lattice spacing (lambda / 2 ~ 6 cm)


class LocalSearch:
    """Mixin of ``GridlessImager``: needs ``model``, ``dims``, ``fold``,
    ``fine_offsets``, ``window_m``, ``fine_step_m`` and ``n_starts``."""

    def window_map(self, Us: np.ndarray, P: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """(K, N_w) exact MUSIC fraction ||U^H h(p)||^2 / ||h(p)||^2 at P[k] + offsets,
        each BS's beam frozen at P[k] and its phase exact: one N_b x N_b
        quadratic form per point."""
        nb, na = self.model.n_bs, self.model.n_a
        h0 = self.model.station_channels(P)                                # (F, N_b, N_a, K)
        c = np.linalg.norm(h0, axis=2)                                     # (F, N_b, K)
        pts = (P[:, None, :] + offsets[None]).reshape(-1, self.dims)
        dph = self.model.centre_phases(pts).reshape(len(Us), nb, len(P), -1) - \
            self.model.centre_phases(P)[..., None]
        score = np.zeros((len(P), len(offsets)))
        for f in range(len(Us)):
            Ub = Us[f].reshape(nb, na, -1).conj()
            E = np.einsum("bnk,bnm->mkb", Ub, h0[f] / c[f][:, None, :])        # (K, k, N_b)
            Q = np.einsum("mkb,mkc->mbc", E.conj(), E)
            w = (c[f].T[:, :, None] * np.exp(-1j * dph[f]).transpose(1, 0, 2)).astype(np.complex64)
            Qw = np.einsum("mbc,mcp->mbp", Q.astype(np.complex64), w)
            score += (w.conj() * Qw).real.sum(1) / (c[f] ** 2).sum(0)[:, None]
        return score / len(Us)

    def music(self, Us: np.ndarray, P: np.ndarray, grad: bool = False):
        """Exact MUSIC fraction at points P (N,) (mean over subcarriers); with ``grad``
        also the Gauss-Newton step that shrinks ||(I - U U^H) h(p)|| / ||h(p)||."""
        n = self.model.n_bs * self.model.n_a
        if not grad:
            h = self.model.station_channels(P).reshape(len(Us), n, -1)
        else:
            h, dh = self.model.station_channels(P, grad=True)
            h, dh = h.reshape(len(Us), n, -1), dh.reshape(self.dims, len(Us), n, -1)
        nrm = np.linalg.norm(h, axis=1)                                      # (F, N)
        proj = np.einsum("fnk,fnp->fkp", Us.conj(), h)
        frac = ((np.abs(proj) ** 2).sum(1) / nrm ** 2).mean(0)
        if not grad:
            return frac
        e = (h - np.einsum("fnk,fkp->fnp", Us, proj)) / nrm[:, None]        # (F, n, N)
        J = np.stack([dh[i] - np.einsum("fnk,fkp->fnp", Us, np.einsum("fnk,fnp->fkp", Us.conj(),
                                                                           dh[i])) for i in range(self.dims)], -1)
        J = J / nrm[:, None, :, None]                                        # (F, n, N, dims)
        Jr = np.concatenate([J.real, J.imag], 1).transpose(2, 0, 1, 3).reshape(len(P), -1, self.dims)
        er = np.concatenate([e.real, e.imag], 1).transpose(2, 0, 1).reshape(len(P), -1)
        JtJ = np.einsum("pri,prj->pij", Jr, Jr) + 1e-12 * np.eye(self.dims)
        step = -np.linalg.solve(JtJ, np.einsum("pri,pr->pi", Jr, er)[..., None])[..., 0]
        return frac, step

    def fine(self, Us: np.ndarray, P: np.ndarray) -> np.ndarray:
        """Per row of P: the ``n_starts`` best local maxima of ``window_map`` in the
        window, each polished (``polish``), the best one kept. Mode C has no
        cross-BS phase: P is returned as it is."""
        if not self.fold.cross or len(P) == 0:
            return P
        best, _ = self._best_peaks(Us, P, self.fine_offsets, self.n_starts)
        return best

    def widen(self, Us: np.ndarray, p: np.ndarray, half: float = 2.5, tile: float = 0.5,
              step: float = 0.02) -> tuple:
        """(point, fraction): the best peak within ``half`` metres of p, found as
        ``fine`` finds it, on ``tile``-metre tiles each with its own frozen beams
        (over a tile the beams' phase error stays below ~0.1 rad)."""
        centres = p + cube(half - tile / 2, tile, self.dims)
        offsets = cube(tile / 2 - step / 2, step, self.dims)
        pts, frac = self._best_peaks(Us, centres, offsets, 2)
        i = int(np.argmax(frac))
        return pts[i], float(frac[i])

    def _best_peaks(self, Us, P, offsets, n_starts: int, iters: int = 3):
        """Per row of P, the best of the n_starts top local maxima of ``window_map``
        over P + offsets after polishing: (points (K, dims), fractions (K,))."""
        score = self.window_map(Us, P, offsets)
        side = int(round(len(offsets) ** (1 / self.dims)))
        grid = score.reshape((len(P),) + (side,) * self.dims)
        peaks = grid == ndimage.maximum_filter(grid, size=(1,) + (3,) * self.dims)
        masked = np.where(peaks.reshape(len(P), -1), _peak_heights(grid).reshape(len(P), -1), -np.inf)
        best = np.argsort(-masked, axis=1)[:, :n_starts]
        S = self.polish(Us, (P[:, None, :] + offsets[best]).reshape(-1, self.dims), iters)
        frac = self.music(Us, S).reshape(len(P), -1)
        pick = frac.argmax(1)
        return S.reshape(len(P), -1, self.dims)[np.arange(len(P)), pick], frac.max(1)

    def polish(self, Us: np.ndarray, S: np.ndarray, iters: int) -> np.ndarray:
        """Gauss-Newton on the exact MUSIC fraction from each row of S, steps capped
        below the lattice spacing, a step kept only where it raises the fraction."""
        S = S.copy()
        for _ in range(iters):
            frac, step = self.music(Us, S, grad=True)
            norm = np.linalg.norm(step, axis=1, keepdims=True)
            cand = S + step * np.minimum(1.0, GN_STEP_CAP_M / np.maximum(norm, 1e-15))
            better = self.music(Us, cand) > frac
            S[better] = cand[better]
        return S


def cube(half: float, step: float, dims: int) -> np.ndarray:
    """Offsets of a square (cube) grid of half-width ``half`` and ``step``."""
    a = np.arange(-half, half + 1e-9, step)
    return np.stack(np.meshgrid(*([a] * dims), indexing="ij"), -1).reshape(-1, dims)


def _peak_heights(grid: np.ndarray) -> np.ndarray:
    """Each sample of ``grid`` (K, side, ...) raised to the height of the parabola
    through it and its two neighbours along each axis (the rises summed; edges
    left as sampled). A lattice peak is about a centimetre wide, as wide as the
    window's step, so sampled heights rank peaks by where the samples fell:
    a target's own peak sampled on its flank can rank below neighbouring lattice
    peaks sampled near their tops. The parabola's rise (f+ - f-)^2 / (8 (2 f0 -
    f+ - f-)) undoes most of that; it is capped at |f+ - f-| where the three
    samples are nearly collinear (a flank, not a peak)."""
    out = grid.copy()
    for ax in range(1, grid.ndim):
        f0 = grid
        fm, fp = np.roll(grid, 1, axis=ax), np.roll(grid, -1, axis=ax)
        curv = 2 * f0 - fm - fp
        rise = np.where(curv > 0, (fp - fm) ** 2 / (8 * np.maximum(curv, 1e-30)), 0.0)
        edge = np.zeros(grid.shape[ax], bool)
        edge[[0, -1]] = True
        shape = [1] * grid.ndim
        shape[ax] = -1
        out = out + np.where(edge.reshape(shape), 0.0, np.minimum(rise, np.abs(fp - fm)))
    return out


def step_scale(B: np.ndarray, dB: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """(K, 1) factors that cap each target's Gauss-Newton step at the change of its
    steering vector that a GN_STEP_CAP_M step along its stiffest direction makes:
    ||db_k delta_k|| <= GN_STEP_CAP_M sqrt(lambda_max(Re db_k^H db_k)). Where the
    BSs surround the ROI every direction is about as stiff and this is the metric
    cap (a quarter of the lattice spacing); where they do not (four BSs at the
    corners of a long street see a UAV's height through nearly equal ranges)
    a target lies on a ridge of near-constant phase and may move along it in
    steps the metric cap would make dozens of."""
    J = dB.transpose(2, 1, 0)                                        # (K, N_1, dims)
    G = np.einsum("kni,knj->kij", J.conj(), J).real
    stiff = np.sqrt(np.maximum(np.linalg.eigvalsh(G)[:, -1], 0.0))
    change = np.sqrt(np.maximum(np.einsum("ki,kij,kj->k", delta, G, delta), 0.0))
    return np.minimum(1.0, GN_STEP_CAP_M * stiff / np.maximum(change, 1e-300))[:, None]


def distinct(P: np.ndarray, score: np.ndarray, k: int, min_dist: float) -> np.ndarray:
    """The k best-scoring rows of P, skipping any within ``min_dist`` of one kept."""
    keep: list = []
    for i in np.argsort(-score):
        if all(np.linalg.norm(P[i] - P[j]) >= min_dist for j in keep):
            keep.append(i)
        if len(keep) == k:
            break
    return P[keep]
