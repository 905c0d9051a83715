"""Channel frequency responses from traced paths, in numpy.

Sionna RT's ``paths.cfr`` builds a Dr.Jit tensor over paths x subcarriers that
can exceed Dr.Jit's 2^32-entry limit at full size; here the CFR is computed in
numpy from the *baseband* impulse response
``paths.cir(normalize_delays=False, out_type="numpy")`` (``paths.a`` is
passband), chunked over receivers:

    H[rx, rx_ant, tx, tx_ant, k] = sum_p a_p exp(-j 2 pi f_k tau_p)

where ``f_k`` are *centred* baseband subcarrier offsets
(``(k - K//2) * scs``, the convention of ``paths.cfr``), so subcarrier
``K//2`` sits on the carrier. Apply ``numpy.fft.ifftshift`` along the
subcarrier axis before an IFFT to the delay domain. Absolute delays are kept
(``normalize_delays=False``): the time of flight is part of the fingerprint;
every manifest records this choice.
"""
from __future__ import annotations

import numpy as np

NORMALIZE_DELAYS = False


def subcarrier_offsets(num_subcarriers: int, spacing_hz: float) -> np.ndarray:
    """Centred baseband offsets [Hz] of ``num_subcarriers`` subcarriers."""
    k = np.arange(num_subcarriers) - num_subcarriers // 2
    return k * float(spacing_hz)


def delay_phasors(tau: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """``exp(-j 2 pi f_k tau_p)`` [paths, K] complex64, computed in float64."""
    return np.exp(-2j * np.pi * np.asarray(tau, np.float64)[:, None] * freqs_hz).astype(np.complex64)


def receiver_noise(rng: np.random.Generator, shape: tuple, std: np.ndarray) -> np.ndarray:
    """``w ~ CN(0, std[i]^2)`` complex64 of shape ``(len(std),) + shape``,
    i.i.d. per link and entry: one float32 draw of every real and imaginary
    part (interleaved, so that it reads as complex64 without a copy), each
    scaled by ``std[i] / sqrt(2)``. Link after link, it draws the same
    numbers as one call per link of that link's shape."""
    w = rng.standard_normal((len(std),) + tuple(shape) + (2,), dtype=np.float32)
    w *= (np.asarray(std, np.float64) / np.sqrt(2)).astype(np.float32).reshape((-1,) + (1,) * (w.ndim - 1))
    return w.view(np.complex64)[..., 0]


def dirichlet(u: np.ndarray, k: int) -> np.ndarray:
    """(1/k) sum_{m=-k/2}^{k/2-1} exp(2j pi m u), elementwise (closed form):
    a path's delay tap response over ``k`` centred subcarriers."""
    r = np.exp(2j * np.pi * u)
    den = 1.0 - r
    near = np.abs(den) < 1e-9
    num = np.exp(-1j * np.pi * k * u) * (1.0 - np.exp(2j * np.pi * k * u))
    out = np.where(near, np.exp(-1j * np.pi * k * u) * k, num / np.where(near, 1.0, den))
    return out / k


def cir_numpy(paths, reverse_direction: bool = False):
    """``(a, tau)`` of a Sionna ``Paths`` as numpy: ``a`` complex64
    [rx, rx_ant, tx, tx_ant, paths] (baseband, zero for invalid paths),
    ``tau`` float32 [rx, tx, paths] (synthetic arrays) or full shape; invalid
    paths have ``tau = -1``."""
    a, tau = paths.cir(normalize_delays=NORMALIZE_DELAYS, out_type="numpy",
                       reverse_direction=reverse_direction)
    a = np.asarray(a)[..., 0].astype(np.complex64)
    tau = np.asarray(tau, dtype=np.float32)
    if tau.ndim == 3:
        bad = tau < 0
        a = np.where(bad[:, None, :, None, :], 0, a)
    else:
        a = np.where(tau < 0, 0, a)
    return a, tau


def cfr_from_cir(a: np.ndarray, tau: np.ndarray, freqs_hz: np.ndarray,
                 chunk: int = 16, phases: np.ndarray | None = None) -> np.ndarray:
    """CFR [rx, rx_ant, tx, tx_ant, K] complex64 from baseband ``a`` and
    ``tau`` (see :func:`cir_numpy`), chunked over receivers. ``phases``
    ([rx, tx, paths], radians) multiplies path p by ``exp(j phases_p)``
    (the per-path random phase of Eq. 27 of the FWA paper)."""
    a = np.asarray(a)
    tau = np.asarray(tau)
    freqs = np.asarray(freqs_hz, dtype=np.float64)
    n_rx, n_ra, n_tx, n_ta, n_p = a.shape
    out = np.zeros((n_rx, n_ra, n_tx, n_ta, len(freqs)), dtype=np.complex64)
    if n_p == 0:
        return out
    for r0 in range(0, n_rx, chunk):
        r1 = min(n_rx, r0 + chunk)
        t = np.where(tau[r0:r1] < 0, 0.0, tau[r0:r1]).astype(np.float64)
        aa = a[r0:r1].astype(np.complex64)
        if phases is not None:
            rot = np.exp(1j * np.asarray(phases[r0:r1], dtype=np.float64)).astype(np.complex64)
            aa = aa * (rot[:, None, :, None, :] if t.ndim == 3 else rot)
        if t.ndim == 3:  # synthetic arrays: one delay per path and link
            e = np.exp(-2j * np.pi * t[..., None] * freqs).astype(np.complex64)  # [r, t, p, k]
            out[r0:r1] = np.einsum("rAtBp,rtpk->rAtBk", aa, e, optimize=True)
        else:
            e = np.exp(-2j * np.pi * t[..., None] * freqs).astype(np.complex64)
            out[r0:r1] = np.einsum("rAtBp,rAtBpk->rAtBk", aa, e, optimize=True)
    return out


def cfr_from_paths(paths, freqs_hz: np.ndarray, reverse_direction: bool = False,
                   chunk: int = 16) -> np.ndarray:
    a, tau = cir_numpy(paths, reverse_direction)
    return cfr_from_cir(a, tau, freqs_hz, chunk=chunk)


def link_path_stats(a: np.ndarray, tau: np.ndarray, power_floor: float = 0.0):
    """Per link (rx, tx): number of valid paths and RMS delay spread [s]
    (power-weighted over antenna-averaged path powers)."""
    a = np.asarray(a)
    tau = np.asarray(tau, dtype=np.float64)
    p = np.mean(np.abs(a) ** 2, axis=(1, 3))  # [rx, tx, paths]
    if tau.ndim != 3:
        tau = tau[:, 0, :, 0, :]
    valid = (tau >= 0) & (p > power_floor)
    n = valid.sum(-1)
    w = np.where(valid, p, 0.0)
    tot = w.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (w * tau).sum(-1) / tot
        var = (w * tau ** 2).sum(-1) / tot - mean ** 2
    ds = np.sqrt(np.maximum(var, 0.0))
    ds[tot <= 0] = np.nan
    return n, ds
