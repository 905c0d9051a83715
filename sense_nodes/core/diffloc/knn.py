"""k-NN fingerprinting floor: the training set as a look-up table.

Distances are taken between power-delay profiles in dB (the truncated CIR's
power averaged over antenna pairs, one value per tap), since the wrapped
phase of Eq. 4 is noise-like to a distance metric. Per BS, one profile;
fused, the profiles of all BSs concatenated (a link with no path is the
floor value). ``k`` is picked on the validation split.
"""
from __future__ import annotations

import numpy as np
from sklearn.neighbors import KNeighborsRegressor

FLOOR_DB = -250.0
K_CHOICES = (1, 3, 5, 9)


def pdp_db(cir: np.ndarray) -> np.ndarray:
    """[..., N_r, N_t, L] complex truncated CIR -> [..., L] dB power profile."""
    p = np.mean(np.abs(cir) ** 2, axis=(-3, -2))
    return np.maximum(10 * np.log10(np.maximum(p, 10 ** (FLOOR_DB / 10))), FLOOR_DB).astype(np.float32)


def fit_knn(X_train, y_train, X_val, y_val, k_choices=K_CHOICES) -> KNeighborsRegressor:
    """The k of ``k_choices`` with the lowest mean validation error, refitted."""
    best, best_err = None, np.inf
    for k in k_choices:
        if k > len(X_train):
            continue
        m = KNeighborsRegressor(n_neighbors=k, weights="distance").fit(X_train, y_train)
        err = np.mean(np.linalg.norm(m.predict(X_val) - y_val, axis=1)) if len(X_val) else 0.0
        if err < best_err:
            best, best_err = m, err
    return best
