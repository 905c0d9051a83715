"""Training-free detectors: the floor the learned system must beat.

Both look at one noisy CFR per pair and compare it with UAV-free training
scenes of the same pair (the BSs and CPEs are static, so a pair's
background is learned without any UAV label beyond "no UAV here"):

- **beam x delay** (:func:`beam_delay_map`): the BS's 8 x 8 UPA is turned
  into 64 beams by a 2D DFT, the subcarriers into 64 delay taps by an IDFT
  (Blackman window against the leakage of the strong background paths),
  power summed over the CPE antennas, in dB. Each (pair, beam, tap) cell is
  z-scored against the UAV-free scenes; a scene scores the largest z of all
  its cells.
- **delay only** (:func:`delay_profile`): the same without the beams (power
  delay profile over 64 taps): the sanity floor, at chance on this data
  because a UAV echo is some 58 dB below the background at delays that the
  background also fills.

Notation: ``H`` [n_r = 64, n_t = 4, n_c] CFR of one pair; ``B`` [64 beams,
64 taps] dB map; ``mu``, ``sd`` [P, ...] per-pair statistics of the
UAV-free scenes; ``z`` the z-scores.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_TAPS = 64
UPA_SHAPE = (8, 8)  # the BS's 64-element array (data.csi.fwa_pairs)


def beam_delay_map(H: np.ndarray, n_taps: int = N_TAPS, upa=UPA_SHAPE) -> np.ndarray:
    """[..., n_r, n_t, n_c] complex -> [..., beams, n_taps] float32 dB."""
    H = np.asarray(H)
    n_c = H.shape[-1]
    win = np.blackman(n_c + 1)[:-1].astype(np.float32)  # periodic Blackman
    taps = np.fft.ifft(np.fft.ifftshift(H * win, axes=-1), axis=-1)[..., :n_taps]
    return beam_delay_from_taps(taps, upa)


def beam_delay_from_taps(taps: np.ndarray, upa=UPA_SHAPE) -> np.ndarray:
    """The map from Blackman-windowed delay taps [..., n_r, n_t, n_taps]."""
    n_taps = taps.shape[-1]
    shp = taps.shape[:-3] + tuple(upa) + taps.shape[-2:]
    beams = np.fft.fft2(taps.reshape(shp), axes=(-4, -3))
    power = (np.abs(beams) ** 2).sum(-2)  # over CPE antennas
    power = power.reshape(taps.shape[:-3] + (upa[0] * upa[1], n_taps))
    return (10 * np.log10(np.maximum(power, 1e-30))).astype(np.float32)


def delay_profile(B: np.ndarray) -> np.ndarray:
    """[..., beams, taps] dB map -> [..., taps] dB power delay profile."""
    lin = 10 ** (np.asarray(B, np.float64) / 10)
    return (10 * np.log10(np.maximum(lin.sum(-2), 1e-30))).astype(np.float32)


@dataclass
class ZScoreDetector:
    """Per-cell z-score against UAV-free scenes; score = max z over pairs
    and cells. ``mu``, ``sd``: [P, ...] statistics; ``threshold`` on the
    score (chosen on validation data)."""

    mu: np.ndarray
    sd: np.ndarray
    threshold: float = np.inf

    @classmethod
    def fit(cls, background: np.ndarray) -> "ZScoreDetector":
        """background: [S0, P, ...] maps of UAV-free scenes."""
        bg = np.asarray(background, np.float64)
        if bg.shape[0] < 2:
            raise ValueError("need at least 2 UAV-free scenes to fit the background")
        return cls(bg.mean(0), np.maximum(bg.std(0), 1e-3))

    def scores(self, maps: np.ndarray, present=None) -> np.ndarray:
        """maps: [S, P, ...] -> [S] max z over the pairs in ``present`` ([S,
        P] bool; all pairs when None)."""
        z = (np.asarray(maps, np.float64) - self.mu) / self.sd
        z = z.reshape(z.shape[0], z.shape[1], -1).max(-1)
        if present is not None:
            z = np.where(present, z, -np.inf)
        return z.max(1)
