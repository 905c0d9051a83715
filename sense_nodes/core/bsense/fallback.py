"""Fallback fingerprints for the cubes the paper leaves unmodelled (an
extension of BSense Section 3.2; the paper models only cubes whose noise
passes the Henze-Zirkler test and leaves the rest to the later stages).

Two kinds of cube get no Gaussian fingerprint of their own:

* sparse cubes, with fewer fitting points than a covariance of the five
  metrics needs (``min_points``). Their fingerprint is pooled from the
  cubes around them (``pool_radius`` cubes each way, own cube included):
  Section 3.2.1 argues the fingerprint comes from homogeneous scatterers,
  and neighbouring structures of one kind scatter alike, so the
  neighbourhood's noise stands in for the cube's own. One Gaussian is
  fitted to the pooled, standardised points (Eq. 5-8).
* cubes that fail Henze-Zirkler. Section 3.2.1 attributes the failures to a
  mix of populations (ghost returns beside the clutter); a Gaussian mixture
  of up to ``components`` parts, the number chosen by BIC, is fitted to the
  cube's standardised points by EM.

Both are scored like Eq. 10-11 generalised to a mixture: a point's score is
its negative log-density under the cube's fallback, and it is removed as
noise when the score is below the cube's threshold, the p-th percentile of
the fitting points' scores (for a single Gaussian this is exactly the
Mahalanobis rule of Eq. 10-11, the density being monotone in the distance).

All per-cube parameters live in padded arrays (cubes x components), so the
filter is vectorised over points.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cubes import CubeGrid, lookup

REG = 1e-3                 # ridge on a component's covariance, standardised units (our choice)
EM_ITERS = 40              # EM iterations per candidate component count (our choice)
EM_MAX_POINTS = 1500       # EM on a random subsample of this size (our choice: bounded fit time)
MIN_POINTS_PER_COMPONENT = 25   # a k-part mixture needs 25 k points (our choice; 21 parameters a part)


@dataclass
class Fallback:
    """Per-cube fallback fingerprints: ``keys`` (sorted cube keys), z-score
    statistics ``mu``, ``sd`` (n, 5), mixture weights ``w`` (n, K), means
    ``mean`` (n, K, 5), precisions ``prec`` (n, K, 5, 5), log-determinants of
    the covariances ``logdet`` (n, K) and thresholds ``tau`` (n,)."""
    keys: np.ndarray
    mu: np.ndarray
    sd: np.ndarray
    w: np.ndarray
    mean: np.ndarray
    prec: np.ndarray
    logdet: np.ndarray
    tau: np.ndarray

    ARRAYS = ("keys", "mu", "sd", "w", "mean", "prec", "logdet", "tau")

    @classmethod
    def empty(cls, k: int = 1) -> "Fallback":
        return cls(np.zeros(0, np.int64), np.zeros((0, 5)), np.zeros((0, 5)), np.zeros((0, k)),
                   np.zeros((0, k, 5)), np.zeros((0, k, 5, 5)), np.zeros((0, k)), np.zeros(0))

    def __len__(self) -> int:
        return int(self.keys.size)

    def score(self, F: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Negative log-density (up to a constant) of metric vectors ``F``
        (n, 5) under the fallback of cube ``row`` (n,)."""
        z = (F - self.mu[row]) / self.sd[row]
        return _neg_log_density(z, self.w[row], self.mean[row], self.prec[row], self.logdet[row])

    def remove(self, F: np.ndarray, row: np.ndarray) -> np.ndarray:
        """True where a point looks like its cube's fallback noise."""
        return self.score(F, row) < self.tau[row]

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        return lookup(self.keys, keys)


def _neg_log_density(z, w, mean, prec, logdet) -> np.ndarray:
    """-log sum_k w_k N(z; m_k, S_k) without the 2 pi constant; z (n, 5),
    w (n, K), mean (n, K, 5), prec (n, K, 5, 5), logdet (n, K)."""
    d = z[:, None, :] - mean
    d2 = np.einsum("nki,nkij,nkj->nk", d, prec, d)
    with np.errstate(divide="ignore"):
        lp = np.log(w) - 0.5 * logdet - 0.5 * d2
    top = lp.max(1)
    return -(top + np.log(np.exp(lp - top[:, None]).sum(1)))


def fit_mixture(Z: np.ndarray, k_max: int, rng: np.random.Generator):
    """(w (k,), means (k, 5), precs (k, 5, 5), logdets (k,)) of the Gaussian
    mixture with 1..k_max parts (fewer when points are few) of least BIC,
    fitted by EM from a k-means++ start."""
    X = Z if Z.shape[0] <= EM_MAX_POINTS else Z[rng.choice(Z.shape[0], EM_MAX_POINTS, replace=False)]
    n, p = X.shape
    best, best_bic = None, np.inf
    for k in range(1, max(1, min(k_max, n // MIN_POINTS_PER_COMPONENT)) + 1):
        params, ll = _em(X, k, rng)
        n_par = k * (p + p * (p + 1) / 2) + (k - 1)
        bic = -2.0 * ll + n_par * np.log(n)
        if bic < best_bic:
            best, best_bic = params, bic
    return best


def _em(X: np.ndarray, k: int, rng: np.random.Generator):
    n, p = X.shape
    # k-means++ seeds, then hard assignment as the first responsibilities
    c = [X[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min([((X - ci) ** 2).sum(1) for ci in c], axis=0)
        c.append(X[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0 else X[rng.integers(n)])
    lab = np.argmin([((X - ci) ** 2).sum(1) for ci in c], axis=0)
    R = np.eye(k)[lab]
    ll = -np.inf
    for _ in range(EM_ITERS):
        nk = R.sum(0) + 1e-9
        w = nk / n
        mean = (R.T @ X) / nk[:, None]
        D = X[None, :, :] - mean[:, None, :]                        # (k, n, p)
        cov = np.einsum("kn,kni,knj->kij", R.T, D, D) / nk[:, None, None] + REG * np.eye(p)
        prec = np.linalg.inv(cov)
        logdet = np.linalg.slogdet(cov)[1]
        d2 = np.einsum("kni,kij,knj->nk", D, prec, D)
        lp = np.log(w) - 0.5 * logdet - 0.5 * d2 - 0.5 * p * np.log(2 * np.pi)
        top = lp.max(1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(lp - top).sum(1))
        R = np.exp(lp - lse[:, None])
        new_ll = float(lse.sum())
        if new_ll - ll < 1e-4 * n:
            ll = new_ll
            break
        ll = new_ll
    return (w, mean, prec, logdet), ll


def _standardise(F: np.ndarray):
    mu = F.mean(0)
    sd = np.maximum(F.std(0), 1e-6)
    return mu, sd, (F - mu) / sd


def fit_fallback(grid: CubeGrid, keys: np.ndarray, F: np.ndarray, modelled: np.ndarray,
                 non_gaussian: np.ndarray, min_points: int, percentile: float, pool_radius: int,
                 components: int, pool_min_points: int = 1, seed: int = 0) -> Fallback:
    """Fallback fingerprints from the fitting points' cube ``keys`` (n,) and
    metrics ``F`` (n, 5): a pooled Gaussian for every occupied cube with
    fewer than ``min_points`` points (``pool_radius`` > 0), a mixture of up
    to ``components`` parts for every cube key in ``non_gaussian``
    (``components`` > 0). ``modelled`` are the keys of the cubes with a
    Gaussian of their own (never given a fallback); a sparse cube needs
    ``pool_min_points`` points of its own to be pooled."""
    rng = np.random.default_rng(seed)
    order = np.argsort(keys, kind="stable")
    keys, F = keys[order], F[order]
    ukeys, start, cnt = np.unique(keys, return_index=True, return_counts=True)
    k_pad = max(1, components)
    out: list = []
    if components > 0:
        for key in np.asarray(non_gaussian, np.int64):
            i = int(np.searchsorted(ukeys, key))
            Fi = F[start[i]:start[i] + cnt[i]]
            mu, sd, Z = _standardise(Fi)
            out.append((key, mu, sd, fit_mixture(Z, components, rng), Z))
    if pool_radius > 0:
        sparse = ukeys[(cnt >= pool_min_points) & (cnt < min_points)
                       & (lookup(np.asarray(modelled, np.int64), ukeys) < 0)]
        r = int(pool_radius)
        offs = np.stack(np.meshgrid(*[np.arange(-r, r + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
        for key in sparse:
            ci = grid.unpack(np.array([key]))[0]
            nb = grid.keys_of_indices(ci + offs)
            rows = lookup(ukeys, nb)
            rows = rows[rows >= 0]
            if cnt[rows].sum() < min_points:
                continue
            Fi = np.concatenate([F[start[j]:start[j] + cnt[j]] for j in rows])
            mu, sd, Z = _standardise(Fi)
            out.append((key, mu, sd, fit_mixture(Z, 1, rng), Z))
    if not out:
        return Fallback.empty(k_pad)
    out.sort(key=lambda t: t[0])
    n = len(out)
    fb = Fallback(np.array([t[0] for t in out], np.int64), np.stack([t[1] for t in out]),
                  np.stack([t[2] for t in out]), np.zeros((n, k_pad)), np.zeros((n, k_pad, 5)),
                  np.tile(np.eye(5), (n, k_pad, 1, 1)), np.zeros((n, k_pad)), np.zeros(n))
    for i, (_, _, _, (w, mean, prec, logdet), Z) in enumerate(out):
        k = w.size
        fb.w[i, :k], fb.mean[i, :k], fb.prec[i, :k], fb.logdet[i, :k] = w, mean, prec, logdet
        s = _neg_log_density(Z, np.broadcast_to(fb.w[i], (Z.shape[0], k_pad)),
                             np.broadcast_to(fb.mean[i], (Z.shape[0], k_pad, 5)),
                             np.broadcast_to(fb.prec[i], (Z.shape[0], k_pad, 5, 5)),
                             np.broadcast_to(fb.logdet[i], (Z.shape[0], k_pad)))
        fb.tau[i] = np.percentile(s, percentile)
    return fb
