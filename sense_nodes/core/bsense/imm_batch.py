"""All tracks' IMM-UKFs at once (BSense paper, Section 3.4.1).

The same filter as :mod:`.imm_ukf` (filterpy UKFs under an angle-safe
filterpy IMM): the same state, CV and CTRV models, Merwe sigma points,
angle-safe means, residuals and mixing, the same Q, R and Markov matrix,
and filterpy's IMM order of operations (mixing weights from the last
update, model probabilities changed only by an update). Only the layout
differs: states of every track and model sit in arrays (T tracks, M = 2
models) so one frame costs a few dozen numpy calls whatever the number of
tracks, where the per-track filterpy objects cost about a millisecond each.
``test_bsense_tracking`` checks it step by step against the filterpy IMM.
"""
from __future__ import annotations

import numpy as np

from sense_nodes.bs_sensor import ANTENNA_POS, FRAME_S

from .imm_ukf import ANGLES, DIM_X, Q_CTRV, Q_CV, TRANSITION, fx_ctrv, fx_cv, hx, wrap

ALPHA, BETA, KAPPA = 0.5, 2.0, 0.0          # as make_imm's MerweScaledSigmaPoints
MODELS = (fx_cv, fx_ctrv)
QS = np.stack([Q_CV, Q_CTRV])


def _weights(n=DIM_X, alpha=ALPHA, beta=BETA, kappa=KAPPA):
    lam = alpha ** 2 * (n + kappa) - n
    c = 0.5 / (n + lam)
    Wm = np.full(2 * n + 1, c)
    Wc = Wm.copy()
    Wm[0] = lam / (n + lam)
    Wc[0] = lam / (n + lam) + (1 - alpha ** 2 + beta)
    return lam, Wm, Wc


LAM, WM, WC = _weights()


def _circ_mean(X, w):
    """Weighted mean over the k axis of X (..., k, 7), weights w (..., k) or
    (k,), with circular means for the angle columns."""
    m = (X * w[..., None]).sum(-2)
    for k in ANGLES:
        m[..., k] = np.arctan2((np.sin(X[..., k]) * w).sum(-1), (np.cos(X[..., k]) * w).sum(-1))
    return m


def _resid(a, b):
    y = a - b
    y[..., 3] = wrap(y[..., 3])
    y[..., 4] = wrap(y[..., 4])
    return y


def _sigmas(x, P):
    """(..., 15, 7) Merwe sigma points of x (..., 7), P (..., 7, 7)."""
    A = (LAM + DIM_X) * P
    try:
        U = np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(0.5 * (A + np.swapaxes(A, -1, -2)))
        U = V * np.sqrt(np.maximum(w, 1e-9))[..., None, :]
    U = np.swapaxes(U, -1, -2)                      # rows = columns of the factor, like filterpy
    S = np.concatenate([x[..., None, :], x[..., None, :] + U, x[..., None, :] - U], -2)
    S[..., 3] = wrap(S[..., 3])
    S[..., 4] = wrap(S[..., 4])
    return S


def mix_batch(xs, Ps, w):
    """Angle-safe moment match over axis -3 of xs (..., k, 7), Ps (..., k, 7, 7), weights w (..., k)."""
    x = _circ_mean(xs, w)
    y = _resid(xs, x[..., None, :])
    P = (Ps * w[..., None, None]).sum(-3) + np.einsum("...k,...ki,...kj->...ij", w, y, y)
    return x, P


class BatchIMM:
    """IMM-UKF states of many tracks: ``x`` (T, 2, 7), ``P`` (T, 2, 7, 7),
    ``mu`` (T, 2), ``omega`` (T, 2, 2) mixing weights, and the combined
    estimate ``xc`` (T, 7), ``Pc`` (T, 7, 7)."""

    def __init__(self, dt: float = FRAME_S, origin=ANTENNA_POS):
        self.dt = float(dt)
        self.origin = np.asarray(origin, dtype=np.float64)
        self.x = np.zeros((0, 2, DIM_X))
        self.P = np.zeros((0, 2, DIM_X, DIM_X))
        self.mu = np.zeros((0, 2))
        self.omega = np.zeros((0, 2, 2))
        self.sig = np.zeros((0, 2, 2 * DIM_X + 1, DIM_X))
        self.xc = np.zeros((0, DIM_X))
        self.Pc = np.zeros((0, DIM_X, DIM_X))

    def __len__(self) -> int:
        return self.x.shape[0]

    def add(self, x0: np.ndarray, P0: np.ndarray) -> int:
        """Append a track from x0, P0 (both models alike, mu = 0.5 / 0.5); returns its row."""
        return int(self.add_many(np.asarray(x0, float)[None], np.asarray(P0, float)[None])[0])

    def add_many(self, X0: np.ndarray, P0: np.ndarray) -> np.ndarray:
        """Append K tracks from X0 (K, 7), P0 (K, 7, 7) in one go (one copy of
        the bank per frame, not one per new track); returns their rows."""
        X0 = np.asarray(X0, float).reshape(-1, DIM_X)
        P0 = np.asarray(P0, float).reshape(-1, DIM_X, DIM_X)
        start, k = len(self), X0.shape[0]
        mu = np.full((k, 2), 0.5)
        x = np.repeat(X0[:, None], 2, 1)
        P = np.repeat(P0[:, None], 2, 1)
        self.x = np.concatenate([self.x, x])
        self.P = np.concatenate([self.P, P])
        self.mu = np.concatenate([self.mu, mu])
        self.omega = np.concatenate([self.omega, self._omega(mu)])
        self.sig = np.concatenate([self.sig, _sigmas(x, P)])
        self.xc = np.concatenate([self.xc, X0])
        self.Pc = np.concatenate([self.Pc, P0])
        return np.arange(start, start + k)

    def keep(self, rows: np.ndarray) -> None:
        """Keep only these rows (in this order)."""
        for k in ("x", "P", "mu", "omega", "sig", "xc", "Pc"):
            setattr(self, k, getattr(self, k)[rows])

    @staticmethod
    def _omega(mu):
        cbar = mu @ TRANSITION
        return TRANSITION[None] * mu[:, :, None] / cbar[:, None, :]

    def _combine(self, rows=slice(None)):
        self.xc[rows], self.Pc[rows] = mix_batch(self.x[rows], self.P[rows], self.mu[rows])

    def predict(self) -> None:
        """Mixing (omega from the last update), both models' UKF predictions, combined estimate."""
        T = len(self)
        if T == 0:
            return
        w = np.swapaxes(self.omega, 1, 2)                          # (T, j, i): weights for model j
        x0, P0 = mix_batch(self.x[:, None], self.P[:, None], w)    # (T, 2, 7), (T, 2, 7, 7)
        S = _sigmas(x0, P0)                                        # (T, 2, 15, 7)
        F = np.empty_like(S)
        for m, fx in enumerate(MODELS):
            F[:, m] = fx(S[:, m].reshape(-1, DIM_X), self.dt).reshape(T, -1, DIM_X)
        x = _circ_mean(F, WM)
        y = _resid(F, x[..., None, :])
        P = np.einsum("k,...ki,...kj->...ij", WC, y, y) + QS
        self.x, self.P = x, P
        self.sig = _sigmas(x, P)
        self._combine()

    def update(self, rows: np.ndarray, z: np.ndarray, R: np.ndarray) -> None:
        """UKF updates of tracks ``rows`` with measurements z (K, 4), R (K, 4, 4); mode probabilities."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        sig = self.sig[rows]                                       # (K, 2, 15, 7)
        H = hx(sig, self.origin)                                   # (K, 2, 15, 4)
        zp = np.einsum("k,...kj->...j", WM, H)                     # (K, 2, 4)
        dz = H - zp[..., None, :]
        S = np.einsum("k,...ki,...kj->...ij", WC, dz, dz) + R[:, None]
        dx = _resid(sig, self.x[rows][..., None, :])
        Pxz = np.einsum("k,...ki,...kj->...ij", WC, dx, dz)
        SI = np.linalg.inv(S)
        K = Pxz @ SI
        yv = z[:, None, :] - zp                                    # (K, 2, 4)
        x = self.x[rows] + np.einsum("...ij,...j->...i", K, yv)
        x[..., 3], x[..., 4] = wrap(x[..., 3]), wrap(x[..., 4])
        P = self.P[rows] - K @ S @ np.swapaxes(K, -1, -2)
        P = 0.5 * (P + np.swapaxes(P, -1, -2))
        _, logdet = np.linalg.slogdet(S)
        ll = -0.5 * (np.einsum("...i,...ij,...j->...", yv, SI, yv) + logdet + 4 * np.log(2 * np.pi))
        lik = np.maximum(np.exp(ll), np.finfo(float).tiny)         # as filterpy's likelihood floor
        cbar = self.mu[rows] @ TRANSITION
        mu = cbar * lik
        mu /= mu.sum(1, keepdims=True)
        self.x[rows], self.P[rows], self.mu[rows] = x, P, mu
        self.omega[rows] = self._omega(mu)
        self._combine(rows)
