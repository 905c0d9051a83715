"""The cascaded BS -> scatterer -> BS channel (Eq. 7, 10-11)."""
from __future__ import annotations

import numpy as np

from sense_nodes.core.imaging.geometry import ImagingConfig


def kappa(cfg: ImagingConfig) -> float:
    """The constant lambda0 sqrt(G_s) / sqrt(4 pi) in front of Eq. 7 and Eq. 10."""
    return cfg.wavelength0 * np.sqrt(cfg.gain) / np.sqrt(4.0 * np.pi)


def point_channel(antennas: np.ndarray, points: np.ndarray, wavelength: float) -> np.ndarray:
    """(N_a, N_p) complex128: h_{n,v} = exp(-j 2 pi d / lambda) / (sqrt(4 pi) d) (Eq. 11).

    Distances and phases are computed in float64: d / lambda is ~1000 cycles,
    which float32 would resolve only to a few milliradians."""
    d = np.linalg.norm(antennas[:, None, :] - points[None, :, :], axis=-1)
    phase = np.mod(d / wavelength, 1.0) * (2.0 * np.pi)
    return np.exp(-1j * phase) / (np.sqrt(4.0 * np.pi) * d)


def cascaded_channel(cfg: ImagingConfig, tx: np.ndarray, rx: np.ndarray, points: np.ndarray,
                     sigma: np.ndarray, wavelength: float) -> np.ndarray:
    """(N_t, N_r) channel H_{nb1,nb2,nf} of point scatterers, Eq. 10 evaluated term by
    term: h^s_{nt,nr} = kappa * sum_v h_{nt,v} sigma_v h_{nr,v}.

    Eq. 7 has exp(-j 2 pi (d1 + d2) / lambda), i.e. no conjugate on either leg;
    Eq. 10's compact form h^H diag(sigma) h is read the same way."""
    ht = point_channel(tx, points, wavelength)
    hr = point_channel(rx, points, wavelength)
    return kappa(cfg) * (ht * np.asarray(sigma)[None, :]) @ hr.T
