"""Henze-Zirkler test of multivariate normality (BSense paper, Section 3.2.1).

No maintained Python library we may depend on ships this test (pingouin has
one but pulls pandas and statsmodels), so it is written here with numpy and
scipy from Henze and Zirkler (1990): the statistic with the optimal smoothing
parameter and the lognormal approximation of its null distribution (the same
approximation pingouin and R's MVN use).
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def henze_zirkler(X: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the Henze-Zirkler test for the rows of ``X``
    (n samples, p variables). A singular sample covariance (a constant
    metric) gives p-value 0: such a cube is not Gaussian."""
    X = np.asarray(X, dtype=np.float64)
    n, p = X.shape
    if n < p + 2:
        return float("nan"), 0.0
    Xc = X - X.mean(0)
    S = (Xc.T @ Xc) / n                     # MLE covariance, as in the original test
    try:
        Si = np.linalg.inv(S)
    except np.linalg.LinAlgError:
        return float("inf"), 0.0
    if not np.all(np.isfinite(Si)) or np.linalg.cond(S) > 1e12:
        return float("inf"), 0.0
    G = Xc @ Si @ Xc.T                      # (n, n)
    Di = np.diag(G).copy()
    Dij = Di[:, None] + Di[None, :] - 2.0 * G
    b = (1.0 / np.sqrt(2.0)) * ((2 * p + 1) * n / 4.0) ** (1.0 / (p + 4))
    b2 = b * b
    hz = (np.exp(-b2 / 2.0 * Dij).sum() / n
          - 2.0 * (1.0 + b2) ** (-p / 2.0) * np.exp(-b2 / (2.0 * (1.0 + b2)) * Di).sum()
          + n * (1.0 + 2.0 * b2) ** (-p / 2.0))
    a = 1.0 + 2.0 * b2
    w = (1.0 + b2) * (1.0 + 3.0 * b2)
    mu = 1.0 - a ** (-p / 2.0) * (1.0 + p * b2 / a + p * (p + 2) * b2 ** 2 / (2.0 * a * a))
    si2 = (2.0 * (1.0 + 4.0 * b2) ** (-p / 2.0)
           + 2.0 * a ** (-p) * (1.0 + 2.0 * p * b2 ** 2 / a ** 2 + 3.0 * p * (p + 2) * b2 ** 4 / (4.0 * a ** 4))
           - 4.0 * w ** (-p / 2.0) * (1.0 + 3.0 * p * b2 ** 2 / (2.0 * w) + p * (p + 2) * b2 ** 4 / (2.0 * w * w)))
    pmu = np.log(np.sqrt(mu ** 4 / (si2 + mu ** 2)))
    psi = np.sqrt(np.log((si2 + mu ** 2) / mu ** 2))
    pval = float(stats.lognorm.sf(hz, psi, scale=np.exp(pmu)))
    return float(hz), pval
