"""The multistatic matrix of one CSI frame and the model order it carries.

Eq. 10 says that the block of y measured by BS pair (b1, b2) on subcarrier
n_f is kappa * sum_m sigma_m h_b1(p_m) h_b2(p_m)^T, and reciprocity gives the
block (b2, b1) as its transpose. Placing every measured block at (b1, b2)
and (b2, b1) of an (N_b N0^2) x (N_b N0^2) matrix per subcarrier gives

    H_f = kappa * sum_m sigma_m h_f(p_m) h_f(p_m)^T + noise,

complex symmetric and of rank M (the UAV count) for sensing modes A and B,
whatever the targets' positions: the off-grid problem does not touch it. Its
singular values above the largest that noise alone produces count the UAVs
(a noise-level model-order rule, as MUSIC's signal subspace; Schmidt, IEEE
TAP 1986), and its leading singular vectors span the steering vectors
h_f(p_m), which the coarse search of ``gridless`` scans.

Mode B measures no monostatic block: the order is counted on each BS's row
of bistatic blocks (also of rank M), and the missing diagonal blocks are
filled by a few rounds of rank-M hard impute (replace the missing entries by
those of the best rank-M approximation). Mode C measures only the diagonal
blocks, so each BS has its own subspace and no cross-BS phase survives.
"""
from __future__ import annotations

import numpy as np

from sense_nodes.core.imaging.geometry import ImagingConfig, measurement_pairs


class MultistaticFold:
    """y (N_1,) -> H (N_f, N, N) with N = N_b N0^2, and the noise edge of H."""

    def __init__(self, cfg: ImagingConfig, noise_var: float, noise_draws: int = 256,
                 edge_margin: float = 1.02, seed: int = 0):
        self.n_a, self.n_b, self.n_f = cfg.n_antennas, cfg.n_bs, cfg.n_subcarriers
        self.n = self.n_b * self.n_a
        pairs = measurement_pairs(cfg)
        self.cross = any(b1 != b2 for b1, b2 in pairs)
        self.missing_diagonal = not any(b1 == b2 for b1, b2 in pairs)
        self.n1 = len(pairs) * self.n_f * self.n_a ** 2
        # flat destination of every element of y, in A's row order (pair, f, n_t, n_r)
        t, r = np.meshgrid(np.arange(self.n_a), np.arange(self.n_a), indexing="ij")
        direct, mirror, src = [], [], []
        k = 0
        for b1, b2 in pairs:
            for f in range(self.n_f):
                rows, cols = b1 * self.n_a + t.ravel(), b2 * self.n_a + r.ravel()
                idx = np.arange(k, k + self.n_a ** 2)
                direct.append(f * self.n * self.n + rows * self.n + cols)
                if b1 != b2:
                    mirror.append(f * self.n * self.n + cols * self.n + rows)
                    src.append(idx)
                k += self.n_a ** 2
        self.direct = np.concatenate(direct)
        self.mirror = np.concatenate(mirror) if mirror else np.zeros(0, int)
        self.mirror_src = np.concatenate(src) if src else np.zeros(0, int)
        self.measured = np.zeros(self.n_f * self.n * self.n, bool)
        self.measured[self.direct] = True
        self.measured[self.mirror] = True
        self.measured = self.measured.reshape(self.n_f, self.n, self.n)
        self.edge = self._noise_edge(noise_var, noise_draws, edge_margin, seed)

    def fold(self, y: np.ndarray) -> np.ndarray:
        """H (N_f, N, N) complex128 from y; unmeasured blocks are zero."""
        y = np.asarray(y, np.complex128)
        if y.shape != (self.n1,):
            raise ValueError(f"y has shape {y.shape}, expected ({self.n1},)")
        H = np.zeros(self.n_f * self.n * self.n, np.complex128)
        H[self.direct] = y
        H[self.mirror] = y[self.mirror_src]
        return H.reshape(self.n_f, self.n, self.n)

    def station_blocks(self, H: np.ndarray) -> np.ndarray:
        """(N_f, N_b, N0^2, N0^2) diagonal (monostatic) blocks, for mode C."""
        a = self.n_a
        return np.stack([[Hf[b * a:(b + 1) * a, b * a:(b + 1) * a] for b in range(self.n_b)]
                         for Hf in H])

    def station_rows(self, H: np.ndarray) -> np.ndarray:
        """(N_f, N_b, N0^2, (N_b - 1) N0^2): each BS's bistatic blocks side by side,
        sum_m sigma_m h_b(p_m) [h_c(p_m)^T]_{c != b}, of rank M without any
        monostatic block (mode B)."""
        a = self.n_a
        return np.stack([[np.delete(Hf[b * a:(b + 1) * a], np.s_[b * a:(b + 1) * a], axis=1)
                          for b in range(self.n_b)] for Hf in H])

    def singular_values(self, H: np.ndarray) -> np.ndarray:
        """Singular values per subcarrier (N_f, N); mode C: per BS block (N_f, N_b,
        N0^2); mode B: per BS block row (``station_rows``)."""
        if not self.cross:
            return np.linalg.svd(self.station_blocks(H), compute_uv=False)
        if self.missing_diagonal:
            return np.linalg.svd(self.station_rows(H), compute_uv=False)
        return np.linalg.svd(H, compute_uv=False)

    def _noise_edge(self, noise_var, draws, margin, seed) -> float:
        """``margin`` x the largest top singular value of H built from pure noise of
        variance ``noise_var`` over ``draws`` seeded draws: a frame of noise alone
        passes it with probability below about 1 / draws."""
        rng = np.random.default_rng(seed)
        std = np.sqrt(noise_var / 2.0)
        top = 0.0
        for _ in range(draws):
            z = rng.normal(0, std, self.n1) + 1j * rng.normal(0, std, self.n1)
            top = max(top, float(self.singular_values(self.fold(z)).max()))
        return margin * top

    def order(self, H: np.ndarray) -> int:
        """Model order: singular values above the noise edge (largest over
        subcarriers; modes B and C: over BSs)."""
        s = self.singular_values(H)
        return int((s > self.edge).sum(axis=-1).max())

    def impute(self, H: np.ndarray, rank: int) -> np.ndarray:
        """Mode B: fill each unmeasured monostatic block from bistatic ones. With
        W_b = [h_b(p_1) .. h_b(p_M)] and D = diag(sigma), H_bc = W_b D W_c^T, so for
        any two other BSs c != d, H_bc pinv_M(H_dc) H_db = W_b D W_b^T = H_bb
        (pinv truncated to rank M against noise); the estimates over all (c, d)
        are averaged. Exact without noise, unlike iterative hard impute, which
        needs hundreds of SVDs to converge on this block pattern."""
        if not self.missing_diagonal or rank < 1 or self.n_b < 3:
            return H
        a, H = self.n_a, H.copy()
        blk = lambda Hf, i, j: Hf[i * a:(i + 1) * a, j * a:(j + 1) * a]      # noqa: E731
        for Hf in H:
            for b in range(self.n_b):
                others = [c for c in range(self.n_b) if c != b]
                fills = [blk(Hf, b, c) @ _pinv(blk(Hf, d, c), rank) @ blk(Hf, d, b)
                         for c in others for d in others if c != d]
                Hf[b * a:(b + 1) * a, b * a:(b + 1) * a] = np.mean(fills, axis=0)
        return H


def _pinv(X: np.ndarray, rank: int) -> np.ndarray:
    """Pseudo-inverse of X truncated to its ``rank`` largest singular values."""
    U, s, Vh = np.linalg.svd(X)
    r = min(rank, int((s > s[0] * 1e-12).sum()))
    return (Vh[:r].conj().T / s[:r]) @ U[:, :r].conj().T
