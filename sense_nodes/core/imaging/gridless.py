"""A training-free gridless imager: UAV positions off the voxel grid from one
CSI frame, without the UAV count, beside subspace pursuit (Algorithm 1) and
the learned imager (Sec. IV-B).

It builds on MUSIC (Schmidt, IEEE TAP 1986) and on Newtonized OMP
(Mamandipoor, Ramasamy, Madhow, IEEE TSP 2016): detect on a coarse grid,
refine each detection off the grid by Newton steps, re-estimate all gains by
least squares, and stop adding targets at the noise level. Where it departs:

1. Detection is not by correlation b(p)^H y. With one carrier and BSs 140 m
   apart, |b(p)^H b(p0)| stays near its peak metres away from p0 and forms a
   lattice of peaks centimetres apart, so a 3 m grid samples it at an
   arbitrary phase and Newton steps stop at the nearest lattice peak.
   Detection uses the multistatic matrix instead (``multistatic``): its
   signal subspace and the noise-level model order.
2. The coarse map leaves each BS's phase free: for a point p and unit
   per-BS channels a_b(p), it is the largest eigenvalue of the N_b x N_b
   matrix E^H E with E = [U_b^H a_b(p)]_b (U_b: BS b's rows of the signal
   subspace), the largest fraction of a steering vector with free per-BS
   complex weights that lies in the signal subspace. It does not see the
   centimetre lattice, so a metre grid suffices.
3. A local exact search: the MUSIC fraction with exact per-BS phases in a
   small window, array beams frozen at the window's centre (one N_b x N_b
   quadratic form per point). The exact fraction is 1 on a target and short
   of 1 on any other lattice peak, so a detection that falls short of what
   the frame's noise allows is searched again: with the good detections
   deflated from the subspace (a UAV hidden in a neighbour's beam), in a
   window twice as fine with more starts, and in a wider window.
4. Gauss-Newton on all positions jointly (variable projection: the LS
   gains are eliminated), analytic derivatives of Eq. 10-11 (``steering``),
   steps capped below the lattice spacing in each target's stiffest
   direction (longer along a ridge of near-constant phase, ``step_scale``). Where the residual's multistatic
   matrix still has a singular value above twice the noise edge (a UAV
   missed, typically two UAVs that shared one coarse peak, rather than the
   small misfit a neighbouring lattice peak leaves), a target is detected in
   it and added (``add_rounds`` times at most); then targets are dropped,
   weakest first, until no more than the model order remain and each one's
   removal would raise the residual by more than a chi-square threshold at
   the noise level (the GLRT of one target).

Defaults (grids, window, starts, wider search, add rounds and margin) were chosen on
scenes of a validation seed, not on the evaluation's test seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sense_nodes.core.imaging.detection import DETECTION_THRESHOLD
from sense_nodes.core.imaging.geometry import ImagingConfig, position_to_voxel, roi_bounds
from sense_nodes.core.imaging.local_search import LocalSearch, cube, distinct, step_scale
from sense_nodes.core.imaging.multistatic import MultistaticFold
from sense_nodes.core.imaging.steering import SteeringModel
from sense_nodes.core.imaging.targets import SIGMA_REF

# Defaults per ROI dimension: coarse grid step, local window half-width and
# step (metres).
COARSE_STEP_M = {2: 2.0, 3: 4.0}
WINDOW_M = {2: 0.15, 3: 0.15}
FINE_STEP_M = {2: 0.01, 3: 0.02}
WIDEN_M = {2: 2.5, 3: 0.0}    # wider search's half-width (3D: off, a 5 m cube at 2 cm is 15 M points)
PRUNE_PFA = 1e-3              # false-alarm probability of the per-target test
KNOWN_EPS = 1e-2              # floor of the deflated norm in the re-detection map (a point on a
                              # known target scores ~0 rather than 0 / 0)
MUSIC_FLOOR = 1e-6            # shortfall a detection may keep where the frame's noise allows
                              # none: a polished point on its own peak falls short by ~1e-15, a
                              # neighbouring lattice peak by 1e-4 or more


@dataclass
class GridlessResult:
    positions: np.ndarray     # (K, 3) metres
    gains: np.ndarray         # (K,) complex scattering coefficients sigma
    order: int                # model order of the frame's multistatic matrix


@dataclass
class Detection:
    voxel: int
    position: np.ndarray      # continuous position, metres
    value: float              # |sigma| / SIGMA_REF


class GridlessImager(LocalSearch):
    """``solve(y)`` -> continuous positions and gains; ``image(y)`` -> (voxel
    image in SIGMA_REF units, detections), as ``Imager.image``."""

    def __init__(self, cfg: ImagingConfig, antennas: np.ndarray | None = None,
                 noise_var: float | None = None, max_targets: int = 24, gn_iters: int = 3,
                 add_rounds: int = 2, threshold: float = DETECTION_THRESHOLD,
                 coarse_step_m: float | None = None, window_m: float | None = None,
                 fine_step_m: float | None = None, n_starts: int = 6, add_margin: float = 2.0,
                 widen_m: float | None = None, redetect_rounds: int = 2):
        self.cfg, self.threshold = cfg, threshold
        self.model = SteeringModel(cfg, antennas)
        self.dims = self.model.dims
        self.noise_var = cfg.noise_var if noise_var is None else float(noise_var)
        self.fold = MultistaticFold(cfg, self.noise_var)
        self.max_targets, self.gn_iters, self.add_rounds = max_targets, gn_iters, add_rounds
        self.n_starts, self.add_margin, self.redetect_rounds = n_starts, add_margin, redetect_rounds
        self.widen_m = WIDEN_M[self.dims] if widen_m is None else widen_m
        self.window_m = window_m or WINDOW_M[self.dims]
        self.fine_step_m = fine_step_m or FINE_STEP_M[self.dims]
        self.step = coarse_step_m or COARSE_STEP_M[self.dims]
        bounds = roi_bounds(cfg)[:self.dims]
        self.lo, self.hi = bounds[:, 0], bounds[:, 1]
        axes = [np.arange(lo, hi + 1e-9, self.step) for lo, hi in bounds]
        self.grid_shape = tuple(len(a) for a in axes)
        self.grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, self.dims)
        self.At = self._unit_channels(self.grid).astype(np.complex64)
        self.fine_offsets = cube(self.window_m, self.fine_step_m, self.dims)
        self.deep_offsets = cube(2 * self.window_m, self.fine_step_m / 2, self.dims)
        self.local_offsets = cube(self.step, self.step / 4, self.dims)
        self.step_offsets = cube(1.0, 1.0, self.dims)          # 3 x 3 (x 3) unit steps
        # per-target test: max of Exp(1) over the ROI's resolution cells (half-wavelength)
        cells = np.prod((self.hi - self.lo) / (self.model.lams.min() / 2))
        self.prune_tau = float(np.log(cells) + np.log(1 / PRUNE_PFA))

    # --- steering helpers ----------------------------------------------------
    def _unit_channels(self, P, chunk: int = 8192) -> np.ndarray:
        """(N_f, N_b, N_a, N) per-BS channels normalised to unit norm per BS."""
        out = []
        for c in range(0, len(P), chunk):
            h = self.model.station_channels(P[c:c + chunk])
            out.append(h / np.linalg.norm(h, axis=2, keepdims=True))
        return np.concatenate(out, axis=-1)

    # --- stage 2: coarse map with free per-BS phases ---------------------------
    def relaxed_map(self, Us: np.ndarray, At: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
        """(N,) mean over subcarriers of lambda_max(E^H E), E[k, b] = U_b[:, k]^H a_b(p)
        (float32: a ranking, not a fit). The eigenvalue is LAPACK's (batched
        eigvalsh), not a few power steps: where UAVs share a beam the two top
        eigenvalues can lie within a few per cent of each other, and an
        unconverged one ranks a target's own point below its neighbours'. Mode C: the mean over BSs of
        ||U_b^H a_b||^2, as no cross-BS phase exists."""
        nb, na = self.model.n_bs, self.model.n_a
        out = np.zeros(At.shape[-1], np.float32)
        for f in range(len(Us)):
            Ub = Us[f].reshape(nb, na, -1).conj().astype(At.dtype)
            E = np.matmul(Ub.transpose(0, 2, 1), At[f])                    # (N_b, K, N)
            if not self.fold.cross:
                out += (np.abs(E) ** 2).sum(1).mean(0)
            else:
                E = E.transpose(2, 1, 0)                                      # (N, K, N_b)
                G = np.matmul(E.conj().transpose(0, 2, 1), E)
                if known is not None:
                    G = self._whiten(G, known[f], At[f])
                out += np.linalg.eigvalsh(G)[:, -1]
        return out / len(Us)

    def _whiten(self, G: np.ndarray, Qf: np.ndarray, Atf: np.ndarray) -> np.ndarray:
        """G (N, N_b, N_b) -> L^-1 G L^-H with L L^H = M + KNOWN_EPS I, M = A^H (I - Q Q^H) A
        (A: the point's per-BS unit channels as columns, Q: an orthonormal basis
        of the known targets' channels). Its top eigenvalue is the relaxed map
        of a subspace deflated by the known targets (``_deflate``) normalised by
        the part of the steering vector the deflation leaves: 1 on a missed
        target (rather than its share outside the known targets' span, which a
        weak UAV beside a strong one can lose), near 0 on a known one."""
        nb, na = self.model.n_bs, self.model.n_a
        F = np.matmul(Qf.reshape(nb, na, -1).conj().astype(Atf.dtype).transpose(0, 2, 1), Atf)
        F = F.transpose(2, 1, 0)                                             # (N, n_known, N_b)
        M = np.eye(nb, dtype=G.dtype) * (1.0 + KNOWN_EPS) - np.matmul(F.conj().transpose(0, 2, 1), F)
        Li = np.linalg.inv(np.linalg.cholesky(M))
        return Li @ G @ Li.conj().transpose(0, 2, 1)

    def coarse(self, Us: np.ndarray, k: int, spare: int = 2, known: np.ndarray | None = None) -> np.ndarray:
        """Coarse detections (k', dims): the k + ``spare`` best local maxima of the
        relaxed map on the coarse grid, each moved to the best point of a grid
        four times finer around it; the k best of them (distinct) are then
        hill-climbed on 3 x 3 grids of steps 1/8, 1/16 and 1/32 of the coarse step."""
        m = self.relaxed_map(Us, self.At, known).reshape(self.grid_shape)
        peak = (m == ndimage.maximum_filter(m, size=3, mode="nearest")).ravel()
        idx = np.flatnonzero(peak)
        P = self.grid[idx[np.argsort(-m.ravel()[idx])][:k + spare]]
        P, vals = self._climb(Us, P, self.local_offsets, known)
        P = distinct(P, vals, k, self.step / 2)
        for scale in (0.125, 0.0625, 0.03125):
            for _ in range(3):                         # hill-climb: stop once no point moves
                Q, _ = self._climb(Us, P, scale * self.step_offsets, known)
                moved = np.any(Q != P)
                P = Q
                if not moved:
                    break
        return P

    def _climb(self, Us, P, offsets, known=None):
        """Each row of P moved to the best relaxed-map point of P + offsets."""
        cand = np.clip((P[:, None, :] + offsets[None]).reshape(-1, self.dims), self.lo, self.hi)
        vals = self.relaxed_map(Us, self._unit_channels(cand).astype(np.complex64), known).reshape(len(P), -1)
        best = vals.argmax(1)
        return cand.reshape(len(P), -1, self.dims)[np.arange(len(P)), best], vals.max(1)

    # --- stage 4: joint Gauss-Newton and least-squares gains ------------------
    def gains(self, B: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Least-squares gains by the normal equations (K x K; B is well conditioned
        for distinct targets; ``_dedupe`` removes a target found twice)."""
        BH = B.conj().T
        return np.linalg.solve(BH @ B + 1e-30 * np.eye(B.shape[1]), BH @ y)

    def refine(self, y: np.ndarray, P: np.ndarray):
        """Variable-projection Gauss-Newton on all positions jointly: (P, g, residual)."""
        B = self.model.vectors(P)
        g = self.gains(B, y)
        cost = np.linalg.norm(y - B @ g) ** 2
        for _ in range(self.gn_iters):
            B, dB = self.model.vectors(P, grad=True)
            g = self.gains(B, y)
            r = y - B @ g
            J = (dB * g[None, None, :]).transpose(1, 2, 0).reshape(len(y), -1)
            BH = B.conj().T
            J = J - B @ np.linalg.solve(BH @ B, BH @ J)
            JtJ = (J.conj().T @ J).real
            delta = np.linalg.solve(JtJ + 1e-12 * np.trace(JtJ) * np.eye(len(JtJ)),
                                    (J.conj().T @ r).real)
            delta = delta.reshape(len(P), self.dims)
            norm = np.linalg.norm(delta, axis=1, keepdims=True)
            delta *= step_scale(B, dB, delta)
            for _ in range(3):                                   # backtracking
                Pn = P + delta
                Bn = self.model.vectors(Pn)
                gn = self.gains(Bn, y)
                cn = np.linalg.norm(y - Bn @ gn) ** 2
                if cn < cost:
                    break
                delta = delta / 2
            else:
                break
            P, cost = Pn, cn
            if norm.max() < 1e-5:
                break
        B = self.model.vectors(P)
        g = self.gains(B, y)
        return P, g, y - B @ g

    def prune(self, y: np.ndarray, P: np.ndarray, most: int | None = None):
        """Drop, one at a time, the target whose removal raises ||r||^2 least while
        that rise is below prune_tau * noise_var (the GLRT of one target) or more
        than ``most`` targets are left."""
        while len(P):
            B = self.model.vectors(P)
            gram = B.conj().T @ B
            g = np.linalg.solve(gram, B.conj().T @ y)
            rise = np.abs(g) ** 2 / np.real(np.diag(np.linalg.inv(gram)))
            worst = int(np.argmin(rise))
            if rise[worst] >= self.prune_tau * self.noise_var and (most is None or len(P) <= most):
                return P, g
            P = np.delete(P, worst, axis=0)
        return P, np.zeros(0, complex)

    # --- the pipeline ---------------------------------------------------------
    def subspace(self, H: np.ndarray, k: int):
        """((N_f, N, k) leading left singular vectors, largest s_{k+1} / s_k over
        subcarriers); mode B: after imputation; mode C: per BS block, stacked."""
        if not self.fold.cross:
            U, s, _ = np.linalg.svd(self.fold.station_blocks(H))            # (F, N_b, N_a, .)
            return U[..., :k].reshape(U.shape[0], -1, k), float(np.max(s[..., k] / s[..., k - 1]))
        U, s, _ = np.linalg.svd(H)
        return U[..., :k], float(np.max(s[..., k] / s[..., k - 1]))

    def detect(self, Us: np.ndarray, k: int, ratio: float) -> np.ndarray:
        """Coarse then fine detections of k targets, one target found twice kept
        once; a detection whose exact MUSIC fraction falls short of 1 by more
        than the frame's noise allows is searched again (``redetect``, ``_deepen``,
        then ``widen`` and ``_deepen`` around its result). Allowance: a target of singular value s is tilted out of the
        subspace by about sqrt(N - K) sigma / s and the noise edge s_{K+1} is about
        2 sqrt(N) sigma, so its shortfall is below (s_{K+1} / s_K)^2 / 4 = ratio^2 / 4;
        never below MUSIC_FLOOR, the shortfall of a polished point itself, nor
        below four times the frame's median shortfall."""
        P = self._dedupe(self.fine(Us, self.coarse(Us, k)))
        if not self.fold.cross or not self.widen_m:
            return P
        frac = self.music(Us, P)
        # a model error (calibration, BS positions) lowers every detection's
        # fraction alike; only one well below the frame's typical one is searched
        allowed = max(ratio ** 2 / 4.0, MUSIC_FLOOR, 4.0 * float(np.median(1.0 - frac)))
        for _ in range(self.redetect_rounds):
            bad = 1.0 - frac > allowed
            if not bad.any() and len(P) >= k:
                break
            P, frac = self.redetect(Us, P, bad, k)
        self._deepen(Us, P, frac, np.flatnonzero(1.0 - frac > allowed))
        short = np.flatnonzero(1.0 - frac > allowed)
        for i in short:
            p, f = self.widen(Us, P[i], self.widen_m)
            if f > frac[i]:
                P[i], frac[i] = p, f
        self._deepen(Us, P, frac, short)
        return self._dedupe(P)

    def _deepen(self, Us: np.ndarray, P: np.ndarray, frac: np.ndarray, idx: np.ndarray) -> None:
        """Rows idx of P (and frac) searched again, in place, in a window twice as
        fine with four times the starts, kept where the fraction rises: a target's
        own peak is about a centimetre wide and can fall between the samples."""
        if len(idx):
            Q, fq = self._best_peaks(Us, P[idx], self.deep_offsets, 4 * self.n_starts)
            up = fq > frac[idx]
            P[idx[up]], frac[idx[up]] = Q[up], fq[up]

    def redetect(self, Us: np.ndarray, P: np.ndarray, bad: np.ndarray, k: int):
        """Detections whose fraction falls short, and targets the coarse map missed
        (fewer than k distinct peaks), searched again with the good detections
        projected out of the subspace (``_deflate``): a neighbour's signal biases
        the free-phase coarse map or hides a UAV in its flank (two UAVs within
        one array beam), and removing it leaves the other's own peak. The new
        points are fine searched on the full subspace; of old and new, the k
        best distinct kept."""
        good = P[~bad]
        Ud, known = self._deflate(Us, good, k - len(good)) if len(good) else (Us, None)
        Q = self.fine(Us, self.coarse(Ud, k - len(good), known=known))
        C = np.vstack([good, Q, P[bad]])
        fc = self.music(Us, C)
        order = np.argsort(1.0 - fc, kind="stable")
        C = self._dedupe(C[order])[:k]
        return C, self.music(Us, C)

    def _dedupe(self, P: np.ndarray, coherence: float = 0.9) -> np.ndarray:
        """P without rows whose steering vector is nearly collinear with an earlier
        row's (|cos| > ``coherence``): one target found twice would make the LS
        gains of both explode."""
        if len(P) < 2:
            return P
        B = self.model.vectors(P)
        B /= np.linalg.norm(B, axis=0)
        C = np.abs(B.conj().T @ B)
        keep: list = []
        for i in range(len(P)):
            if not keep or C[i, keep].max() <= coherence:
                keep.append(i)
        return P[keep]

    def _deflate(self, Us: np.ndarray, P: np.ndarray, k: int) -> tuple:
        """((N_f, N, k) the k leading directions of span(Us) orthogonal to h(p), p in P;
        (N_f, N, len(P)) an orthonormal basis of those h(p))."""
        n = self.model.n_bs * self.model.n_a
        Q = np.linalg.qr(self.model.station_channels(P).reshape(len(Us), n, -1))[0]
        R = Us - Q @ (Q.conj().transpose(0, 2, 1) @ Us)
        return np.linalg.svd(R, full_matrices=False)[0][..., :k], Q

    def solve(self, y: np.ndarray) -> GridlessResult:
        """Targets of one CSI vector y (N_1,) in A's row order (see the module text)."""
        y = np.asarray(y, np.complex128)
        H = self.fold.fold(y)
        k = min(self.fold.order(H), self.max_targets)
        if k and self.fold.missing_diagonal:
            H = self.fold.impute(H, k)
        P = np.zeros((0, self.dims))
        if k:
            Us, ratio = self.subspace(H, k)
            P = self.detect(Us, k, ratio)
        P, g, r = self.refine(y, P) if len(P) else (P, np.zeros(0, complex), y)
        for _ in range(self.add_rounds):
            top = float(self.fold.singular_values(self.fold.fold(r)).max())
            if len(P) >= self.max_targets or top <= self.add_margin * self.fold.edge:
                break
            u = self.subspace(self.fold.fold(r), 1)[0]
            P, g, r = self.refine(y, np.vstack([P, self.fine(u, self.coarse(u, 1))]))
        P, g = self.prune(y, P, k)
        return GridlessResult(positions=self.model.to_3d(P), gains=g, order=k)

    def render(self, res: GridlessResult) -> np.ndarray:
        """Voxel image in SIGMA_REF units: each target's |sigma| / SIGMA_REF in the
        voxel that contains it (the larger one where two share a voxel)."""
        img = np.zeros(self.cfg.n_voxels, np.float32)
        if len(res.gains):
            vox = position_to_voxel(self.cfg, res.positions)
            np.maximum.at(img, vox, (np.abs(res.gains) / SIGMA_REF).astype(np.float32))
        return img.reshape(self.cfg.grid_shape)

    def image(self, y: np.ndarray):
        """(voxels of ``cfg.grid_shape``, detections at continuous positions)."""
        res = self.solve(y)
        vox = position_to_voxel(self.cfg, res.positions) if len(res.gains) else []
        dets = [Detection(int(v), p, float(abs(g) / SIGMA_REF))
                for v, p, g in zip(vox, res.positions, res.gains)
                if abs(g) / SIGMA_REF >= self.threshold]
        return self.render(res), dets
