"""IMM-UKF over constant-velocity and constant-turn-rate-and-velocity models
(BSense paper, Section 3.4.1).

One shared state for both models (filterpy's IMM needs equal dimensions):

    x = [p_x, p_y, p_z, psi, theta, v, omega]

position (m), azimuth (heading in the horizontal plane, rad), elevation
(climb angle, rad), speed (m/s) and turn rate (rad/s), as in the paper.

* CV: straight flight at constant speed; the turn rate is not used and is
  reset to 0 (its variance then comes from Q only).
* CTRV: constant turn rate in the horizontal plane, constant vertical
  velocity (v sin theta), as in the paper.
* Measurement: z = [x, y, z, Doppler], the Doppler predicted as the range
  rate (p - o) . v / ||p - o|| seen from the antenna at ``origin``.

Angles: the filterpy UKFs get angle-safe sigma-point means (circular mean of
psi and theta, ``x_mean_fn``), residuals (``residual_x`` wraps to
[-pi, pi)) and a wrapped state after update. filterpy's ``IMMEstimator``
mixes the model states by a plain weighted sum (and so does its combined
estimate), which averages a heading of +179 deg and -179 deg into 0 deg: we
subclass it (:class:`AngleSafeIMM`) and override ``predict`` and
``_compute_state_estimate`` with circular mixing and wrapped spreads.
The UKF subclass also evaluates fx and hx on all sigma points at once
(vectorised) instead of filterpy's per-point loop; the equations are the same.

Noise values (Q, R, Markov matrix) are not in the paper: ours, stated below.
"""
from __future__ import annotations

import math

import numpy as np
from filterpy.kalman import IMMEstimator, MerweScaledSigmaPoints, UnscentedKalmanFilter

from sense_nodes.bs_sensor import ANTENNA_POS, FRAME_S

DIM_X, DIM_Z = 7, 4
ANGLES = (3, 4)           # psi, theta
ORIGIN = np.array(ANTENNA_POS)


def wrap(a):
    """Angle(s) to [-pi, pi)."""
    return (a + np.pi) % (2.0 * np.pi) - np.pi


def residual_x(a, b):
    """State difference with the angles wrapped (works on (n,) or (k, n))."""
    y = np.asarray(a, dtype=np.float64) - b
    y[..., 3] = wrap(y[..., 3])
    y[..., 4] = wrap(y[..., 4])
    return y


def residual_z(a, b):
    """Measurement residual: positions and Doppler subtract plainly."""
    return np.asarray(a, dtype=np.float64) - b


def state_mean(sigmas, Wm):
    """Weighted mean of states with circular means for psi and theta (x_mean_fn)."""
    sigmas = np.atleast_2d(sigmas)
    x = Wm @ sigmas
    for k in ANGLES:
        x[k] = np.arctan2(Wm @ np.sin(sigmas[:, k]), Wm @ np.cos(sigmas[:, k]))
    return x


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


def hx(x, origin=ORIGIN):
    """Measurement of state(s): position and Doppler (range rate) from the antenna."""
    x = np.asarray(x, dtype=np.float64)
    d = x[..., :3] - origin
    r = np.maximum(np.linalg.norm(d, axis=-1), 1e-6)
    dop = (d * velocity_of(x)).sum(-1) / r
    return np.concatenate([x[..., :3], dop[..., None]], -1)


def _sigmas(points, x, P):
    """Merwe scaled sigma points, all at once, angles wrapped (vectorised
    form of filterpy's MerweScaledSigmaPoints.sigma_points)."""
    n = x.shape[0]
    lam = points.alpha ** 2 * (n + points.kappa) - n
    try:
        U = np.linalg.cholesky((lam + n) * P).T
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(0.5 * (P + P.T))
        U = (V * np.sqrt(np.maximum(w, 1e-9) * (lam + n))).T
    S = np.empty((2 * n + 1, n))
    S[0] = x
    S[1:n + 1] = x + U
    S[n + 1:] = x - U
    S[:, 3] = wrap(S[:, 3])
    S[:, 4] = wrap(S[:, 4])
    return S


def _ut(sigmas, Wm, Wc, noise, mean_fn, residual):
    x = mean_fn(sigmas, Wm) if mean_fn is not None else Wm @ sigmas
    y = residual(sigmas, x)
    P = (y * Wc[:, None]).T @ y + noise
    return x, P


class VectorUKF(UnscentedKalmanFilter):
    """filterpy UKF whose predict and update evaluate fx, hx, the sigma
    points and the unscented transform on all sigma points at once (the
    same equations as filterpy's loops), with the posterior angles wrapped
    and the likelihood computed from the innovation directly."""

    def compute_process_sigmas(self, dt, fx=None, **fx_args):
        fx = self.fx if fx is None else fx
        self.sigmas_f = fx(_sigmas(self.points_fn, self.x, self.P), dt, **fx_args)

    def predict(self, dt=None, UT=None, fx=None, **fx_args):
        dt = self._dt if dt is None else dt
        self.compute_process_sigmas(dt, fx, **fx_args)
        self.x, self.P = _ut(self.sigmas_f, self.Wm, self.Wc, self.Q, self.x_mean, residual_x)
        self.sigmas_f = _sigmas(self.points_fn, self.x, self.P)
        self.x_prior, self.P_prior = self.x.copy(), self.P.copy()

    def update(self, z, R=None, UT=None, hx=None, **hx_args):
        if z is None:
            self.z = np.array([[None] * self._dim_z]).T
            self.x_post, self.P_post = self.x.copy(), self.P.copy()
            return
        hx = self.hx if hx is None else hx
        R = self.R if R is None else R
        self.sigmas_h = np.atleast_2d(hx(self.sigmas_f, **hx_args))
        zp, self.S = _ut(self.sigmas_h, self.Wm, self.Wc, R, None, residual_z)
        self.SI = np.linalg.inv(self.S)
        dx = residual_x(self.sigmas_f, self.x)
        dz = self.sigmas_h - zp
        Pxz = (dx * self.Wc[:, None]).T @ dz
        self.K = Pxz @ self.SI
        self.y = self.residual_z(z, zp)
        self.x = self.x + self.K @ self.y
        self.x[3], self.x[4] = wrap(self.x[3]), wrap(self.x[4])
        self.P = self.P - self.K @ self.S @ self.K.T
        self.P = 0.5 * (self.P + self.P.T)
        self.z = np.array(z, copy=True)
        self.x_post, self.P_post = self.x.copy(), self.P.copy()
        _, logdet = np.linalg.slogdet(self.S)
        self._log_likelihood = float(-0.5 * (self.y @ self.SI @ self.y + logdet + self._dim_z * np.log(2 * np.pi)))
        self._likelihood = max(float(np.exp(self._log_likelihood)), np.finfo(float).tiny)
        self._mahalanobis = None


def mix(xs: np.ndarray, Ps: np.ndarray, w: np.ndarray):
    """Angle-safe Gaussian mixture moment match: mean with circular psi and
    theta, covariance sum w_i (P_i + y_i y_i^T) with wrapped y_i."""
    x = state_mean(xs, w)
    y = residual_x(xs, x)
    P = np.einsum("i,ijk->jk", w, Ps) + (y * w[:, None]).T @ y
    return x, P


class AngleSafeIMM(IMMEstimator):
    """filterpy's IMMEstimator with the mixing of ``predict`` and the combined
    estimate made angle-safe (see module doc)."""

    def predict(self, u=None):
        xs = np.array([f.x for f in self.filters])
        Ps = np.array([f.P for f in self.filters])
        mixed = [mix(xs, Ps, w) for w in self.omega.T]
        for f, (x, P) in zip(self.filters, mixed):
            f.x, f.P = x.copy(), P.copy()
            f.predict()
        self._compute_state_estimate()
        self.x_prior = self.x.copy()
        self.P_prior = self.P.copy()

    def _compute_state_estimate(self):
        xs = np.array([f.x for f in self.filters])
        Ps = np.array([f.P for f in self.filters])
        self.x, self.P = mix(xs, Ps, np.asarray(self.mu, dtype=np.float64))


# --- noise and model-switching values (paper gives none: ours) -------------
Q_CV = np.diag([0.5, 0.5, 0.5, 0.03, 0.02, 0.5, 0.01]) ** 2
Q_CTRV = np.diag([0.5, 0.5, 0.5, 0.03, 0.02, 0.5, 0.08]) ** 2
TRANSITION = np.array([[0.93, 0.07], [0.07, 0.93]])
SIGMA_DOPPLER = 0.3            # m/s
SIGMA_RANGE = 1.0              # m
SIGMA_ANGLE = 0.006            # rad (about a twentieth of the 6 deg beam)


def measurement_cov(pos, origin=ORIGIN) -> np.ndarray:
    """R for a detection at ``pos``: range error along the line of sight and
    angle error times range across it, Doppler variance last (our model)."""
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


def measurement_covs(pos, origin=ORIGIN) -> np.ndarray:
    """(K, 4, 4) :func:`measurement_cov` of K positions at once."""
    d = np.asarray(pos, dtype=np.float64).reshape(-1, 3) - origin
    r = np.maximum(np.sqrt((d * d).sum(1)), 1.0)
    u = d / r[:, None]
    cross = (SIGMA_ANGLE * r) ** 2 + 1.0
    R = np.zeros((d.shape[0], 4, 4))
    R[:, :3, :3] = (SIGMA_RANGE ** 2 - cross)[:, None, None] * u[:, :, None] * u[:, None, :]
    R[:, [0, 1, 2], [0, 1, 2]] += cross[:, None]
    R[:, 3, 3] = SIGMA_DOPPLER ** 2
    return R


def make_imm(x0: np.ndarray, P0: np.ndarray, dt: float = FRAME_S, origin=ORIGIN) -> AngleSafeIMM:
    """The IMM of Section 3.4.1: [CV, CTRV] UKFs from state x0, covariance P0."""
    filters = []
    for fx, Q in ((fx_cv, Q_CV), (fx_ctrv, Q_CTRV)):
        pts = MerweScaledSigmaPoints(DIM_X, alpha=0.5, beta=2.0, kappa=0.0, subtract=residual_x)
        f = VectorUKF(DIM_X, DIM_Z, dt, hx=lambda x, o=origin: hx(x, o), fx=fx, points=pts,
                      x_mean_fn=state_mean, residual_x=residual_x, residual_z=residual_z)
        f.x, f.P, f.Q = np.array(x0, dtype=np.float64), np.array(P0, dtype=np.float64), Q.copy()
        f.R = measurement_cov(x0[:3], origin)
        filters.append(f)
    return AngleSafeIMM(filters, np.array([0.5, 0.5]), TRANSITION.copy())


def state_from(pos, vel) -> np.ndarray:
    """Shared state from a position and a Cartesian velocity (turn rate 0)."""
    vel = np.asarray(vel, dtype=np.float64)
    vh = float(np.hypot(vel[0], vel[1]))
    return np.array([pos[0], pos[1], pos[2], np.arctan2(vel[1], vel[0]), np.arctan2(vel[2], max(vh, 1e-9)),
                     float(np.linalg.norm(vel)), 0.0])
