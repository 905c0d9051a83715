"""Channel fingerprints (Sec. II-A, Eq. 2-4) and their normalisation.

Per antenna pair (n_r, n_t) the CFR over K subcarriers is taken to the delay
domain with the unitary IFFT (Eq. 2), truncated to the first L taps (Eq. 3),
and the fingerprint concatenates the magnitudes and wrapped phases of the
truncated CIR tensor (Eq. 4): ``c = [vec|G|, vec arg G]`` of length
``2 * N_r * N_t * L``.

Choice of L. The paper keeps 150 taps of a 4096-point IFFT at 30 kHz, a
delay span of 150 / (4096 * 30 kHz) = 1.22 us. Our datasets keep K = 128
subcarriers 720 kHz apart, one tap every 1 / (K * 720 kHz) = 10.85 ns, so
:func:`taps_for_span` gives L = 112 taps for the same 1.22 us span.

Shapes: ``H`` [..., N_r, N_t, K] complex (centred subcarriers, as the
datasets store them; ``ifftshift`` puts subcarrier 0 first), fingerprint
[..., 2 * N_r * N_t * L] float32.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

PAPER_DELAY_SPAN_S = 150 / (4096 * 30e3)  # 1.22 us (Table III)
INT8_BLOCK = 64  # inner-dimension block of torch's weight-only int8 kernel (a multiple of its 32)


def taps_for_span(num_subcarriers: int, scs_hz: float, span_s: float = PAPER_DELAY_SPAN_S) -> int:
    """L such that L taps of a K-point IFFT at spacing ``scs_hz`` span
    ``span_s`` (tap spacing 1 / (K * scs)); at most K."""
    if num_subcarriers < 1 or not scs_hz > 0:
        raise ValueError(f"need num_subcarriers >= 1 and scs_hz > 0 (got {num_subcarriers}, {scs_hz})")
    return int(min(num_subcarriers, max(1, round(span_s * num_subcarriers * scs_hz))))


def truncated_cir(H: np.ndarray, taps: int) -> np.ndarray:
    """Eq. 2-3: unitary IFFT of each antenna pair's CFR, first ``taps`` taps.
    ``H`` [..., N_r, N_t, K] (centred subcarriers) -> [..., N_r, N_t, taps]."""
    H = np.asarray(H)
    g = np.fft.ifft(np.fft.ifftshift(H, axes=-1), axis=-1, norm="ortho")
    return g[..., :taps]


MAGNITUDES = ("linear", "db", "beam_db")  # fingerprint kinds; see fingerprint()
DB_FLOOR = -300.0
BEAM_DYNAMIC_DB = 60.0  # a choice: below the link's strongest cell by more lies IFFT leakage or noise


def bs_elements_side(n_r: int) -> int:
    """Side n of the BS's square cross-polarised array (N_r = 2 n^2 ports)."""
    n = int(round((n_r / 2) ** 0.5))
    if 2 * n * n != n_r:
        raise ValueError(f"beam_db fingerprints need a square cross-polarised BS array (2 n^2 ports), got {n_r}")
    return n


def beam_delay_db(g: np.ndarray) -> np.ndarray:
    """Beam x delay power map in dB of a truncated CIR ``g`` [..., N_r, N_t, L]
    -> [..., n^2 * L]: a 2D DFT over the BS's n x n elements (ports ordered
    polarisation-major, as Sionna RT orders a cross-polarised array), power
    averaged over both polarisations and the UE's ports, floored
    :data:`BEAM_DYNAMIC_DB` below the link's strongest cell."""
    n_r, n_t, L = g.shape[-3:]
    n = bs_elements_side(n_r)
    lead = g.shape[:-3]
    b = np.fft.fft2(g.reshape(*lead, 2, n, n, n_t, L), axes=(-4, -3), norm="ortho")
    p = np.mean(np.abs(b) ** 2, axis=(-5, -2)).reshape(*lead, n * n * L)
    db = 10 * np.log10(np.maximum(p, 10 ** (DB_FLOOR / 10)))
    return np.maximum(db, db.max(-1, keepdims=True) - BEAM_DYNAMIC_DB)


def fingerprint_dim(kind: str, n_r: int, n_t: int, taps: int) -> int:
    """Length of a fingerprint of ``kind`` for an N_r x N_t link."""
    if kind == "beam_db":
        return bs_elements_side(n_r) ** 2 * taps
    return 2 * n_r * n_t * taps


def fingerprint(H: np.ndarray, taps: int, magnitude: str = "linear") -> np.ndarray:
    """Eq. 4: magnitude and principal-argument phase of the truncated CIR,
    vectorised and concatenated: [..., 2 * N_r * N_t * taps] float32.

    ``magnitude="db"`` (beyond the paper) takes the magnitude in dB: path
    gains span several decades across the area, and in linear units the
    standardised fingerprint is dominated by the strongest links.

    ``magnitude="beam_db"`` (beyond the paper) replaces Eq. 4 by the beam x
    delay power map in dB (:func:`beam_delay_db`): no phase. The wrapped
    phase of each antenna pair changes by 2 pi over a few centimetres, so it
    is noise to the networks, while the map keeps what the phases carry
    about position, the directions of arrival, in the beam axis. Its length
    is n^2 L instead of 2 N_r N_t L."""
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {MAGNITUDES} (got {magnitude!r})")
    g = truncated_cir(H, taps)
    if magnitude == "beam_db":
        return beam_delay_db(g).astype(np.float32)
    lead = g.shape[:-3]
    g = g.reshape(*lead, -1)
    n = g.shape[-1]
    # written in place into one float32 array (no concatenation, no casts):
    # on a single request these copies cost as much as the transform
    out = np.empty(lead + (2 * n,), np.float32)
    mag, ph = out[..., :n], out[..., n:]
    np.abs(g, out=mag)
    if magnitude == "db":
        np.maximum(mag, 10 ** (DB_FLOOR / 20), out=mag)
        np.log10(mag, out=mag)
        np.multiply(mag, 20, out=mag)
        np.maximum(mag, DB_FLOOR, out=mag)
    np.arctan2(g.imag, g.real, out=ph)  # np.angle, in place
    return out


@dataclass
class FeatureNorm:
    """Per-feature standardisation, then (optionally) a projection on the
    leading principal components of the training fingerprints.

    The paper feeds the whole standardised fingerprint (38,400 values) to the
    networks. On one CPU thread that first layer dominates training time and
    the model file, so by default the networks see the ``components`` leading
    principal components of the standardised fingerprints (fitted on the
    training split only); ``components = 0`` keeps the full vector (the
    CNN baseline always sees the full vector as an image)."""
    mean: np.ndarray          # [D]
    std: np.ndarray           # [D]
    basis: np.ndarray | None  # [D, P] or None
    scale: np.ndarray | None = None  # [P] std of each component (whitening)
    # dtype of the projection: reading the [D, P] basis is memory-bound;
    # bfloat16 halves it (the basis is stored as float16 anyway) and
    # int8 weights quarter it (see _int8_projection)
    compute_dtype: torch.dtype = torch.float32

    @classmethod
    def fit(cls, X: np.ndarray, components: int = 128, seed: int = 0) -> "FeatureNorm":
        X = np.asarray(X, np.float32)
        if X.ndim != 2 or len(X) < 2:
            raise ValueError(f"need at least 2 training fingerprints [N, D] (got shape {X.shape})")
        mean = X.mean(0)
        std = X.std(0)
        std = np.where(std > 1e-12 * max(float(std.max()), 1e-30), std, 1.0).astype(np.float32)
        basis = None
        if components:
            Z = torch.from_numpy((X - mean) / std)
            q = int(min(components, min(Z.shape) - 1))
            torch.manual_seed(seed)
            _u, _s, v = torch.svd_lowrank(Z, q=q, niter=4)
            basis = v.numpy().astype(np.float16).astype(np.float32)  # stored as float16
            comp = Z.numpy() @ basis
            scale = np.maximum(comp.std(0), 1e-6).astype(np.float32)
            return cls(mean.astype(np.float32), std, basis, scale)
        return cls(mean.astype(np.float32), std, None, None)

    @property
    def out_dim(self) -> int:
        return int(self.basis.shape[1] if self.basis is not None else self.mean.shape[0])

    def standardise(self, X: np.ndarray) -> np.ndarray:
        Z = np.subtract(np.asarray(X, np.float32), self.mean, dtype=np.float32)
        return np.divide(Z, self.std, out=Z)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        Z = self.standardise(X)
        if self.basis is not None:
            Zt = torch.from_numpy(Z)
            if self.compute_dtype == torch.int8:
                Z = self._int8_projection()(Zt).numpy() / self.scale
            else:
                Z = torch.nn.functional.linear(Zt.to(self.compute_dtype), self._weight()).float().numpy() / self.scale
        return Z.astype(np.float32, copy=False)

    def _weight(self) -> torch.Tensor:
        """The basis transposed, one row per component read contiguously, in
        the compute dtype; made once. Torch, not numpy: bounded by torch's
        thread count, unlike numpy's BLAS."""
        wt = getattr(self, "_wt", None)
        if wt is None or wt.dtype != self.compute_dtype:
            wt = self._wt = torch.from_numpy(np.ascontiguousarray(self.basis.T)).to(self.compute_dtype)
        return wt

    def _int8_projection(self):
        """The projection with int8 weights, one scale per component, on
        bfloat16 inputs: a quarter of the float32 bytes to read. Weight-only,
        because the standardised paper fingerprint has outliers (beyond 40
        standard deviations where a strong path sits) that would coarsen any
        per-vector input quantisation. torch's weight-only int8 kernel is the
        one its own CPU inference recipes use; made once."""
        q = getattr(self, "_q8", None)
        if q is None:
            w = torch.from_numpy(np.ascontiguousarray(self.basis.T, np.float32))
            scale = w.abs().amax(1).clamp_min(1e-12) / 127
            # the kernel reads the inner dimension in blocks of INT8_BLOCK and
            # does not check it: zero columns pad it (and the inputs) to a whole block
            pad = -w.shape[1] % INT8_BLOCK
            wq = torch.nn.functional.pad(torch.round(w / scale[:, None]), (0, pad)).to(torch.int8).contiguous()
            sb = scale.to(torch.bfloat16)

            def q(z: torch.Tensor) -> torch.Tensor:
                z = torch.nn.functional.pad(z.to(torch.bfloat16), (0, pad)) if pad else z.to(torch.bfloat16)
                return torch._weight_int8pack_mm(z.contiguous(), wq, sb).float()
            self._q8 = q
        return q

    def to_dict(self) -> dict:
        d = {"mean": torch.from_numpy(self.mean), "std": torch.from_numpy(self.std)}
        if self.basis is not None:
            d["basis"] = torch.from_numpy(self.basis).to(torch.float16)
            d["scale"] = torch.from_numpy(self.scale)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureNorm":
        basis = d.get("basis")
        return cls(d["mean"].float().numpy(), d["std"].float().numpy(),
                   None if basis is None else basis.float().numpy(),
                   None if basis is None else d["scale"].float().numpy())


@dataclass
class PositionNorm:
    """Maps metric (x, y) to the sampler's range: ``(p - centre) / half``
    puts the training area inside [-1, 1] with a margin, so the samplers'
    clamp of x0 to [-1, 1] never cuts a real position."""
    centre: np.ndarray  # [2]
    half: float

    MARGIN = 1.1

    @classmethod
    def fit(cls, xy: np.ndarray) -> "PositionNorm":
        xy = np.asarray(xy, np.float64)[:, :2]
        lo, hi = xy.min(0), xy.max(0)
        return cls(((lo + hi) / 2).astype(np.float64), float(cls.MARGIN * max((hi - lo).max() / 2, 1.0)))

    def to_unit(self, xy: np.ndarray) -> np.ndarray:
        return ((np.asarray(xy, np.float64)[..., :2] - self.centre) / self.half).astype(np.float32)

    def to_metric(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(u, np.float64) * self.half + self.centre

    def to_dict(self) -> dict:
        return {"centre": [float(v) for v in self.centre], "half": float(self.half)}

    @classmethod
    def from_dict(cls, d: dict) -> "PositionNorm":
        return cls(np.asarray(d["centre"], np.float64), float(d["half"]))
