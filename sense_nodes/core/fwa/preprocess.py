"""CSI preprocessing ``P(H)`` of Section III-B1 (Eq. 5-9).

Notation (paper -> code):

- ``H^(m,n)`` in C^{N_r x N_t x N_c}           -> ``H`` [n_r, n_t, n_c] complex
- ``H~_AD`` after the 3D-IDFT (Eq. 6)          -> ``ad``
- truncation to the first ``N_c'`` delays (Eq. 7) -> ``n_delay`` (64)
- ``H_ADAMP = log10 |H~_AD|`` (Eq. 8)           -> ``amp``
- ``H_AD = Norm(Reshape(H_ADAMP))`` (Eq. 9)     -> the returned [n_r, n_t, N_c'] map in (0, 1)

The CFRs carry centred subcarrier offsets (k - K/2) * spacing, so the
subcarrier axis is ``ifftshift``-ed before the IDFT: delay bin 0 is then
zero delay, and the first ``N_c'`` bins hold the early, energetic paths.
"""
from __future__ import annotations

import numpy as np

N_DELAY = 64  # N_c' of Section V-A4
# log10 of zero is -inf; magnitudes are floored this far below the
# strongest bin of the pair (a choice: the paper gives none).
FLOOR_DB = 200.0


def angle_delay(H: np.ndarray, n_delay: int = N_DELAY) -> np.ndarray:
    """Eq. 6-7: 3D-IDFT over receive antennas, transmit antennas and
    subcarriers, then the first ``n_delay`` delay bins.

    H: [..., n_r, n_t, n_c] complex -> [..., n_r, n_t, n_delay] complex."""
    H = np.asarray(H)
    if H.ndim < 3 or not np.iscomplexobj(H):
        raise ValueError(f"H must be complex [..., n_r, n_t, n_c], got {H.dtype} {H.shape}")
    if H.shape[-1] < n_delay:
        raise ValueError(f"{H.shape[-1]} subcarriers, fewer than the {n_delay} delay bins kept")
    return antenna_idft(delay_taps(H, n_delay))


def delay_taps(H: np.ndarray, n_delay: int = N_DELAY) -> np.ndarray:
    """IDFT over the (centred) subcarriers, first ``n_delay`` taps."""
    return np.fft.ifft(np.fft.ifftshift(H, axes=-1), axis=-1)[..., :n_delay]


def antenna_idft(taps: np.ndarray) -> np.ndarray:
    """IDFT over the receive and transmit antenna axes (-3, -2)."""
    return np.fft.ifftn(taps, axes=(-3, -2))


def log_minmax(ad: np.ndarray) -> np.ndarray:
    """Eq. 8-9: ``log10 |.|`` then per-sample min-max to [0, 1] over the
    last three axes (float32)."""
    mag = np.abs(ad).astype(np.float64)
    top = mag.max(axis=(-3, -2, -1), keepdims=True)
    amp = np.log10(np.maximum(mag, np.maximum(top, 1e-300) * 10 ** (-FLOOR_DB / 20)))
    lo = amp.min(axis=(-3, -2, -1), keepdims=True)
    hi = amp.max(axis=(-3, -2, -1), keepdims=True)
    return ((amp - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)


def preprocess(H: np.ndarray, n_delay: int = N_DELAY) -> np.ndarray:
    """``P(H)`` (Eq. 5): [..., n_r, n_t, n_c] complex CFR -> [..., n_r, n_t,
    n_delay] float32 angle-delay magnitude map in [0, 1]; raises ValueError
    on a non-finite CFR."""
    H = np.asarray(H)
    if not np.isfinite(H).all():
        raise ValueError("CSI holds non-finite values")
    return log_minmax(angle_delay(H, n_delay))


def preprocess_taps(taps: np.ndarray) -> np.ndarray:
    """``P`` from delay taps already truncated ([..., n_r, n_t, N_c'],
    :func:`delay_taps` of the CFR): equal to :func:`preprocess` of that CFR."""
    taps = np.asarray(taps)
    if not np.isfinite(taps).all():
        raise ValueError("CSI holds non-finite values")
    return log_minmax(antenna_idft(taps))
