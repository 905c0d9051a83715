"""IMM-UKF over constant-velocity and constant-turn-rate-and-velocity models
(BSense paper, Section 3.4.1), for many tracks at once.

Notation (code name: paper symbol / meaning)::

    x        state [p_x, p_y, p_z, psi, theta, v, omega]: position (m),
             azimuth psi (heading in the horizontal plane, rad), elevation
             theta (climb angle, rad), speed v (m/s), turn rate omega (rad/s)
    P        state covariance
    z        measurement [x, y, z, Doppler]
    R        measurement covariance (:func:`measurement_covs`)
    Q_CV, Q_CTRV   process noise of the two models
    mu       model probabilities [CV, CTRV]
    omega_mix  mixing weights mu_{i|j} of the IMM (``BatchIMM.omega``)
    TRANSITION  Markov matrix of model switching
    origin   the antenna o, from which the Doppler is the range rate

* CV: straight flight at constant speed; the turn rate is not used and is
  reset to 0 (its variance then comes from Q only).
* CTRV: constant turn rate in the horizontal plane, constant vertical
  velocity (v sin theta), as in the paper.
* Measurement: z = [x, y, z, Doppler], the Doppler predicted as the range
  rate (p - o) . v / ||p - o||.

One implementation: :class:`BatchIMM` keeps the states of every track and
model in arrays (T tracks, M = 2 models), so a frame costs a few dozen numpy
calls whatever the number of tracks (per-track filter objects cost about a
millisecond each); :class:`IMM` is one track, a batch of one. The equations
are filterpy's UKF (Merwe scaled sigma points) under filterpy's IMM order of
operations (mixing weights from the last update, model probabilities changed
only by an update), made angle-safe: circular means of psi and theta in every
mean and mixture, wrapped residuals and a wrapped posterior. Plain filterpy
averages a heading of +179 deg and -179 deg into 0 deg. The test suite keeps
filterpy's UKF and IMM (with the angle-safe functions plugged in) as the
reference this module must match.

Noise values (Q, R, Markov matrix) are not in the paper: ours, stated below.
"""
from __future__ import annotations

import math

import numpy as np

from sense_nodes.bs_sensor import ANTENNA_POS, FRAME_S

DIM_X, DIM_Z = 7, 4
ANGLES = (3, 4)           # psi, theta
ORIGIN = np.array(ANTENNA_POS)

# --- noise and model-switching values (paper gives none: ours) -------------
Q_CV = np.diag([0.5, 0.5, 0.5, 0.03, 0.02, 0.5, 0.01]) ** 2
Q_CTRV = np.diag([0.5, 0.5, 0.5, 0.03, 0.02, 0.5, 0.08]) ** 2
QS = np.stack([Q_CV, Q_CTRV])
TRANSITION = np.array([[0.93, 0.07], [0.07, 0.93]])
SIGMA_DOPPLER = 0.3            # m/s
SIGMA_RANGE = 1.0              # m
SIGMA_ANGLE = 0.006            # rad (about a twentieth of the 6 deg beam)
ALPHA, BETA, KAPPA = 0.5, 2.0, 0.0          # Merwe scaled sigma points (our choice)


def _weights(n=DIM_X, alpha=ALPHA, beta=BETA, kappa=KAPPA):
    """lambda and the mean / covariance weights of Merwe's sigma points."""
    lam = alpha ** 2 * (n + kappa) - n
    c = 0.5 / (n + lam)
    Wm = np.full(2 * n + 1, c)
    Wc = Wm.copy()
    Wm[0] = lam / (n + lam)
    Wc[0] = lam / (n + lam) + (1 - alpha ** 2 + beta)
    return lam, Wm, Wc


LAM, WM, WC = _weights()


def wrap(a):
    """Angle(s) to [-pi, pi)."""
    return (a + np.pi) % (2.0 * np.pi) - np.pi


def residual_x(a, b):
    """State difference(s) with the angles wrapped (any leading shape)."""
    y = np.asarray(a, dtype=np.float64) - b
    y[..., 3] = wrap(y[..., 3])
    y[..., 4] = wrap(y[..., 4])
    return y


def circular_mean(X, w):
    """Weighted mean over the k axis of X (..., k, 7), weights w (..., k) or
    (k,), with circular means for the angle columns."""
    m = (X * w[..., None]).sum(-2)
    for k in ANGLES:
        m[..., k] = np.arctan2((np.sin(X[..., k]) * w).sum(-1), (np.cos(X[..., k]) * w).sum(-1))
    return m


def velocity_of(x):
    """Cartesian velocity (..., 3) of state(s) x."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        psi, th, v = float(x[3]), float(x[4]), float(x[5])
        ct = math.cos(th)
        return np.array([v * ct * math.cos(psi), v * ct * math.sin(psi), v * math.sin(th)])
    psi, th, v = x[..., 3], x[..., 4], x[..., 5]
    ct = np.cos(th)
    return np.stack([v * ct * np.cos(psi), v * ct * np.sin(psi), v * np.sin(th)], -1)


def velocity_cov(x, P) -> np.ndarray:
    """(..., 3, 3) covariance of the Cartesian velocity of state(s) x with
    covariance(s) P, by the Jacobian of v(psi, theta, v) at the state."""
    x = np.asarray(x, dtype=np.float64)
    psi, th, v = x[..., 3], x[..., 4], x[..., 5]
    cp, sp, ct, st = np.cos(psi), np.sin(psi), np.cos(th), np.sin(th)
    J = np.stack([np.stack([-v * ct * sp, -v * st * cp, ct * cp], -1),
                  np.stack([v * ct * cp, -v * st * sp, ct * sp], -1),
                  np.stack([np.zeros_like(v), v * ct, st], -1)], -2)
    return J @ np.asarray(P)[..., 3:6, 3:6] @ np.swapaxes(J, -1, -2)


def fx_cv(x, dt):
    """Constant-velocity transition (works on (n,) or (k, n) sigma points)."""
    x = np.array(x, dtype=np.float64)
    x[..., :3] += velocity_of(x) * dt
    x[..., 6] = 0.0
    return x


def fx_ctrv(x, dt):
    """Constant turn rate and velocity in the horizontal plane, constant
    vertical speed (Section 3.4.1)."""
    x = np.array(x, dtype=np.float64)
    psi, th, v, w = x[..., 3], x[..., 4], x[..., 5], x[..., 6]
    vh, vz = v * np.cos(th), v * np.sin(th)
    small = np.abs(w) < 1e-4
    ws = np.where(small, 1.0, w)
    psi2 = psi + w * dt
    dx = np.where(small, vh * np.cos(psi) * dt, vh / ws * (np.sin(psi2) - np.sin(psi)))
    dy = np.where(small, vh * np.sin(psi) * dt, vh / ws * (np.cos(psi) - np.cos(psi2)))
    x[..., 0] += dx
    x[..., 1] += dy
    x[..., 2] += vz * dt
    x[..., 3] = wrap(psi2)
    return x


MODELS = (fx_cv, fx_ctrv)


def hx(x, origin=ORIGIN):
    """Measurement of state(s): position and Doppler (range rate) from the antenna."""
    x = np.asarray(x, dtype=np.float64)
    d = x[..., :3] - origin
    r = np.maximum(np.linalg.norm(d, axis=-1), 1e-6)
    dop = (d * velocity_of(x)).sum(-1) / r
    return np.concatenate([x[..., :3], dop[..., None]], -1)


def sigma_points(x, P):
    """(..., 15, 7) Merwe sigma points of x (..., 7), P (..., 7, 7), angles
    wrapped (rows of the factor as filterpy's MerweScaledSigmaPoints)."""
    A = (LAM + DIM_X) * P
    try:
        U = np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(0.5 * (A + np.swapaxes(A, -1, -2)))
        U = V * np.sqrt(np.maximum(w, 1e-9))[..., None, :]
    U = np.swapaxes(U, -1, -2)
    S = np.concatenate([x[..., None, :], x[..., None, :] + U, x[..., None, :] - U], -2)
    S[..., 3] = wrap(S[..., 3])
    S[..., 4] = wrap(S[..., 4])
    return S


def mix(xs, Ps, w):
    """Angle-safe Gaussian mixture moment match over axis -3 of xs (..., k, 7),
    Ps (..., k, 7, 7), weights w (..., k): mean with circular psi and theta,
    covariance sum w_i (P_i + y_i y_i^T) with wrapped y_i."""
    x = circular_mean(xs, w)
    y = residual_x(xs, x[..., None, :])
    P = (Ps * w[..., None, None]).sum(-3) + np.einsum("...k,...ki,...kj->...ij", w, y, y)
    return x, P


def measurement_covs(pos, origin=ORIGIN) -> np.ndarray:
    """(K, 4, 4) R of detections at K positions: range error along the line
    of sight and angle error times range across it, Doppler variance last
    (our model)."""
    d = np.asarray(pos, dtype=np.float64).reshape(-1, 3) - origin
    r = np.maximum(np.sqrt((d * d).sum(1)), 1.0)
    u = d / r[:, None]
    cross = (SIGMA_ANGLE * r) ** 2 + 1.0
    R = np.zeros((d.shape[0], 4, 4))
    R[:, :3, :3] = (SIGMA_RANGE ** 2 - cross)[:, None, None] * u[:, :, None] * u[:, None, :]
    R[:, [0, 1, 2], [0, 1, 2]] += cross[:, None]
    R[:, 3, 3] = SIGMA_DOPPLER ** 2
    return R


def measurement_cov(pos, origin=ORIGIN) -> np.ndarray:
    """R (4, 4) of one detection at ``pos`` (see :func:`measurement_covs`)."""
    d = np.asarray(pos, dtype=np.float64) - origin
    r = max(math.sqrt(float(d @ d)), 1.0)
    u = d / r
    cross = (SIGMA_ANGLE * r) ** 2 + 1.0
    R = np.zeros((4, 4))
    R[:3, :3] = (SIGMA_RANGE ** 2 - cross) * np.outer(u, u)
    R[0, 0] += cross
    R[1, 1] += cross
    R[2, 2] += cross
    R[3, 3] = SIGMA_DOPPLER ** 2
    return R


def state_from(pos, vel) -> np.ndarray:
    """Shared state from a position and a Cartesian velocity (turn rate 0)."""
    vel = np.asarray(vel, dtype=np.float64)
    vh = float(np.hypot(vel[0], vel[1]))
    return np.array([pos[0], pos[1], pos[2], np.arctan2(vel[1], vel[0]), np.arctan2(vel[2], max(vh, 1e-9)),
                     float(np.linalg.norm(vel)), 0.0])


class BatchIMM:
    """IMM-UKF states of many tracks, each row a track known by its ``key``:
    ``x`` (T, 2, 7), ``P`` (T, 2, 7, 7), ``mu`` (T, 2), ``omega`` (T, 2, 2)
    mixing weights, and the combined estimate ``xc`` (T, 7), ``Pc`` (T, 7, 7).
    Rows are found by key (:meth:`rows`), so callers never track positions."""

    FIELDS = ("x", "P", "mu", "omega", "sig", "xc", "Pc")

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
        self._row: dict[int, int] = {}

    def __len__(self) -> int:
        return self.x.shape[0]

    def __contains__(self, key) -> bool:
        return key in self._row

    def rows(self, keys) -> np.ndarray:
        """The rows of these keys (in their order)."""
        row = self._row
        return np.fromiter((row[k] for k in keys), np.int64, len(keys))

    def add(self, keys, X0: np.ndarray, P0: np.ndarray) -> None:
        """Start K tracks ``keys`` from X0 (K, 7), P0 (K, 7, 7), both models
        alike, mu = 0.5 / 0.5; one copy of the bank for all of them."""
        X0 = np.asarray(X0, float).reshape(-1, DIM_X)
        P0 = np.asarray(P0, float).reshape(-1, DIM_X, DIM_X)
        start, k = len(self), X0.shape[0]
        keys = [int(key) for key in keys]
        mu = np.full((k, 2), 0.5)
        x = np.repeat(X0[:, None], 2, 1)
        P = np.repeat(P0[:, None], 2, 1)
        self.x = np.concatenate([self.x, x])
        self.P = np.concatenate([self.P, P])
        self.mu = np.concatenate([self.mu, mu])
        self.omega = np.concatenate([self.omega, self._omega(mu)])
        self.sig = np.concatenate([self.sig, sigma_points(x, P)])
        self.xc = np.concatenate([self.xc, X0])
        self.Pc = np.concatenate([self.Pc, P0])
        self._row.update(zip(keys, range(start, start + k)))

    def keep(self, keys) -> None:
        """Keep only the tracks ``keys`` (in this order); forget the others."""
        keys = [int(k) for k in keys]
        rows = self.rows(keys)
        for name in self.FIELDS:
            setattr(self, name, getattr(self, name)[rows])
        self._row = dict(zip(keys, range(len(keys))))

    @staticmethod
    def _omega(mu):
        cbar = mu @ TRANSITION
        return TRANSITION[None] * mu[:, :, None] / cbar[:, None, :]

    def _combine(self, rows=slice(None)):
        self.xc[rows], self.Pc[rows] = mix(self.x[rows], self.P[rows], self.mu[rows])

    def predict(self) -> None:
        """Mixing (omega from the last update), both models' UKF predictions, combined estimate."""
        T = len(self)
        if T == 0:
            return
        w = np.swapaxes(self.omega, 1, 2)                          # (T, j, i): weights for model j
        x0, P0 = mix(self.x[:, None], self.P[:, None], w)          # (T, 2, 7), (T, 2, 7, 7)
        S = sigma_points(x0, P0)                                   # (T, 2, 15, 7)
        F = np.empty_like(S)
        for m, fx in enumerate(MODELS):
            F[:, m] = fx(S[:, m].reshape(-1, DIM_X), self.dt).reshape(T, -1, DIM_X)
        x = circular_mean(F, WM)
        y = residual_x(F, x[..., None, :])
        P = np.einsum("k,...ki,...kj->...ij", WC, y, y) + QS
        self.x, self.P = x, P
        self.sig = sigma_points(x, P)
        self._combine()

    def update(self, keys, z: np.ndarray, R: np.ndarray) -> np.ndarray:
        """UKF updates of tracks ``keys`` with measurements z (K, 4), R (K, 4, 4);
        mode probabilities. Returns the tracks' rows."""
        rows = self.rows(keys)
        if rows.size == 0:
            return rows
        sig = self.sig[rows]                                       # (K, 2, 15, 7)
        H = hx(sig, self.origin)                                   # (K, 2, 15, 4)
        zp = np.einsum("k,...kj->...j", WM, H)                     # (K, 2, 4)
        dz = H - zp[..., None, :]
        S = np.einsum("k,...ki,...kj->...ij", WC, dz, dz) + R[:, None]
        dx = residual_x(sig, self.x[rows][..., None, :])
        Pxz = np.einsum("k,...ki,...kj->...ij", WC, dx, dz)
        SI = np.linalg.inv(S)
        K = Pxz @ SI
        yv = z[:, None, :] - zp                                    # (K, 2, 4)
        x = self.x[rows] + np.einsum("...ij,...j->...i", K, yv)
        x[..., 3], x[..., 4] = wrap(x[..., 3]), wrap(x[..., 4])
        P = self.P[rows] - K @ S @ np.swapaxes(K, -1, -2)
        P = 0.5 * (P + np.swapaxes(P, -1, -2))
        _, logdet = np.linalg.slogdet(S)
        ll = -0.5 * (np.einsum("...i,...ij,...j->...", yv, SI, yv) + logdet + DIM_Z * np.log(2 * np.pi))
        lik = np.maximum(np.exp(ll), np.finfo(float).tiny)         # as filterpy's likelihood floor
        cbar = self.mu[rows] @ TRANSITION
        mu = cbar * lik
        mu /= mu.sum(1, keepdims=True)
        self.x[rows], self.P[rows], self.mu[rows] = x, P, mu
        self.omega[rows] = self._omega(mu)
        self._combine(rows)
        return rows


class IMM:
    """One track's IMM-UKF: a :class:`BatchIMM` of one row. ``predict()``,
    ``update(z, R=None)`` (R from :func:`measurement_cov` at z's position when
    not given); ``x``, ``P``, ``mu`` the combined estimate."""

    def __init__(self, x0, P0, dt: float = FRAME_S, origin=ANTENNA_POS):
        self.bank = BatchIMM(dt, origin)
        self.bank.add([0], x0, P0)

    x = property(lambda self: self.bank.xc[0])
    P = property(lambda self: self.bank.Pc[0])
    mu = property(lambda self: self.bank.mu[0])

    def predict(self) -> None:
        self.bank.predict()

    def update(self, z, R=None) -> None:
        z = np.asarray(z, dtype=np.float64).reshape(1, DIM_Z)
        R = measurement_cov(z[0, :3], self.bank.origin) if R is None else np.asarray(R, dtype=np.float64)
        self.bank.update([0], z, R.reshape(1, DIM_Z, DIM_Z))
