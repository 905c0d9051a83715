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


MAGNITUDES = ("linear", "db")
DB_FLOOR = -300.0


def fingerprint(H: np.ndarray, taps: int, magnitude: str = "linear") -> np.ndarray:
    """Eq. 4: magnitude and principal-argument phase of the truncated CIR,
    vectorised and concatenated: [..., 2 * N_r * N_t * taps] float32.

    ``magnitude="db"`` (beyond the paper) takes the magnitude in dB: path
    gains span several decades across the area, and in linear units the
    standardised fingerprint is dominated by the strongest links."""
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {MAGNITUDES} (got {magnitude!r})")
    g = truncated_cir(H, taps)
    lead = g.shape[:-3]
    mag = np.abs(g).reshape(*lead, -1)
    if magnitude == "db":
        mag = np.maximum(20 * np.log10(np.maximum(mag, 10 ** (DB_FLOOR / 20))), DB_FLOOR)
    ph = np.angle(g).reshape(*lead, -1)
    return np.concatenate([mag, ph], axis=-1).astype(np.float32)


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
    # dtype of the projection: reading the [D, P] basis is memory-bound, and
    # bfloat16 halves it (the basis is stored as float16 anyway)
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
        return ((np.asarray(X, np.float32) - self.mean) / self.std).astype(np.float32)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        Z = self.standardise(X)
        if self.basis is not None:
            # torch (bounded by torch's thread count, unlike numpy's BLAS), with the
            # basis stored transposed: one row per component is read contiguously
            wt = getattr(self, "_wt", None)
            if wt is None or wt.dtype != self.compute_dtype:
                wt = self._wt = torch.from_numpy(np.ascontiguousarray(self.basis.T)).to(self.compute_dtype)
            Z = torch.nn.functional.linear(torch.from_numpy(Z).to(wt.dtype), wt).float().numpy() / self.scale
        return Z.astype(np.float32)

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
