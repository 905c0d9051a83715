"""filterpy's UKF and IMM with the angle-safe functions of the BSense IMM
plugged in through their public hooks (sigma-point ``subtract``,
``x_mean_fn``, ``residual_x``, ``residual_z``, ``state_add``): the reference
the array IMM-UKF of ``sense_nodes.core.bsense.imm_ukf`` is tested against.
Only the IMM's mixing and combined estimate are overridden (filterpy mixes
angles by a plain weighted sum); no private field of filterpy is written."""
import numpy as np
from filterpy.kalman import IMMEstimator, MerweScaledSigmaPoints, UnscentedKalmanFilter

from sense_nodes.core.bsense.imm_ukf import (ALPHA, ANGLES, BETA, DIM_X, DIM_Z, KAPPA, ORIGIN, Q_CTRV, Q_CV,
                                             TRANSITION, fx_ctrv, fx_cv, hx, measurement_cov, residual_x, wrap)


def state_mean(sigmas, Wm):
    """Weighted mean of states with circular means for psi and theta."""
    sigmas = np.atleast_2d(sigmas)
    x = Wm @ sigmas
    for k in ANGLES:
        x[k] = np.arctan2(Wm @ np.sin(sigmas[:, k]), Wm @ np.cos(sigmas[:, k]))
    return x


def state_add(x, dx):
    y = x + dx
    y[3], y[4] = wrap(y[3]), wrap(y[4])
    return y


def mix_one(xs, Ps, w):
    x = state_mean(xs, w)
    y = residual_x(xs, x)
    return x, np.einsum("i,ijk->jk", w, Ps) + (y * w[:, None]).T @ y


class AngleSafeIMM(IMMEstimator):
    """filterpy's IMMEstimator with circular mixing and combined estimate."""

    def predict(self, u=None):
        xs = np.array([f.x for f in self.filters])
        Ps = np.array([f.P for f in self.filters])
        for f, w in zip(self.filters, self.omega.T):
            f.x, f.P = mix_one(xs, Ps, w)
            f.predict()
        self._compute_state_estimate()
        self.x_prior, self.P_prior = self.x.copy(), self.P.copy()

    def _compute_state_estimate(self):
        self.x, self.P = mix_one(np.array([f.x for f in self.filters]), np.array([f.P for f in self.filters]),
                                 np.asarray(self.mu, dtype=np.float64))


def filterpy_imm(x0, P0, dt, origin=ORIGIN) -> AngleSafeIMM:
    """The IMM of Section 3.4.1 as filterpy objects: [CV, CTRV] UKFs from x0, P0."""
    filters = []
    for fx, Q in ((fx_cv, Q_CV), (fx_ctrv, Q_CTRV)):
        pts = MerweScaledSigmaPoints(DIM_X, alpha=ALPHA, beta=BETA, kappa=KAPPA, subtract=residual_x)
        f = UnscentedKalmanFilter(DIM_X, DIM_Z, dt, hx=lambda x, o=origin: hx(x, o), fx=fx, points=pts,
                                  x_mean_fn=state_mean, residual_x=residual_x,
                                  residual_z=lambda a, b: np.asarray(a, dtype=np.float64) - b, state_add=state_add)
        f.x, f.P, f.Q = np.array(x0, dtype=np.float64), np.array(P0, dtype=np.float64), Q.copy()
        f.R = measurement_cov(x0[:3], origin)
        filters.append(f)
    return AngleSafeIMM(filters, np.array([0.5, 0.5]), TRANSITION.copy())
