"""From a ray-traced uplink SRS dataset (``sense data generate --kind
diffloc``) to the arrays the models train and are judged on: per-BS
fingerprints (Eq. 4), power-delay profiles (k-NN), positions, link masks,
splits. Channel noise (Sec. VI-B4) is added here on request, at each
sample's drawn SNR or at one fixed SNR, seeded.

Shapes (S samples, B BSs, D = 2 N_r N_t L): ``fp`` [S, B, D] float32,
``pdp`` [S, B, L] float32 dB, ``xy`` [S, 2] m, ``valid`` [S, B] bool.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sense_nodes.core.diffloc.fingerprint import fingerprint, fingerprint_dim, taps_for_span, truncated_cir
from sense_nodes.core.diffloc.knn import pdp_db

CHUNK = 128


@dataclass
class PositioningData:
    fp: np.ndarray
    pdp: np.ndarray
    xy: np.ndarray
    valid: np.ndarray
    snr_db: np.ndarray
    power: np.ndarray     # [S] mean |H|^2 of the clean CSI (the AWGN reference)
    crb_fim: np.ndarray | None  # [S, B, 2, 2] position Fisher information per unit noise variance
    variant: np.ndarray
    user_id: np.ndarray
    splits: dict          # scheme -> [S] int8 (0/1/2 train/val/test)
    bs_pos: np.ndarray    # [B, 3]
    taps: int
    ports: int            # N_r * N_t
    noise: str            # "clean", "drawn" or "<snr> dB"
    magnitude: str = "linear"  # fingerprint magnitude: linear (Eq. 4) or db

    @property
    def num_bs(self) -> int:
        return self.fp.shape[1]

    def indices(self, split: str, scheme: str = "random") -> np.ndarray:
        return np.flatnonzero(self.splits[scheme] == ("train", "val", "test").index(split))


def add_awgn(H: np.ndarray, snr_db: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """AWGN on every entry of each sample's links, power relative to the
    sample's mean channel power (the dataset's model). ``H`` [n, ...],
    ``snr_db`` [n]."""
    axes = tuple(range(1, H.ndim))
    p = np.mean(np.abs(H) ** 2, axis=axes, keepdims=True)
    var = p / 10 ** (np.asarray(snr_db, np.float64).reshape(-1, *([1] * (H.ndim - 1))) / 10)
    n = rng.standard_normal(H.shape) + 1j * rng.standard_normal(H.shape)
    return (H + np.sqrt(var / 2) * n).astype(np.complex64)


def load_positioning(ds, noise: str | float | None = None, seed: int = 0, progress: bool = False,
                     magnitude: str = "linear") -> PositioningData:
    """Fingerprints of every sample of a loaded ``diffloc`` dataset.

    ``noise``: None (clean CSI), ``"drawn"`` (AWGN at each sample's drawn
    SNR) or a number (AWGN at that SNR in dB for every sample)."""
    from tqdm import tqdm
    if ds.kind != "diffloc":
        raise ValueError(f"{ds.path}: a {ds.kind} dataset, DiffLoc needs a diffloc dataset")
    a = ds.arrays
    H = a["H"]
    S, B, Nr, Nt, K = H.shape
    taps = taps_for_span(K, ds.scs_hz)
    rng = np.random.default_rng([int(ds.manifest.get("seed", 0)), int(seed), 11])
    fp = np.zeros((S, B, fingerprint_dim(magnitude, Nr, Nt, taps)), np.float32)
    pdp = np.zeros((S, B, taps), np.float32)
    snr = np.asarray(a["snr_db"], np.float64)
    power = np.zeros(S)
    for c0 in tqdm(range(0, S, CHUNK), desc="fingerprints", disable=not progress, unit="chunk"):
        h = np.asarray(H[c0:c0 + CHUNK])
        power[c0:c0 + CHUNK] = np.mean(np.abs(h) ** 2, axis=(1, 2, 3, 4))
        if noise == "drawn":
            h = add_awgn(h, snr[c0:c0 + CHUNK], rng)
        elif noise is not None:
            h = add_awgn(h, np.full(len(h), float(noise)), rng)
        fp[c0:c0 + CHUNK] = fingerprint(h, taps, magnitude)
        pdp[c0:c0 + CHUNK] = pdp_db(truncated_cir(h, taps))
    splits = {name: np.asarray(a[desc["array"]]) for name, desc in ds.manifest["split"]["schemes"].items()}
    label = "clean" if noise is None else ("drawn" if noise == "drawn" else f"{float(noise):g} dB")
    return PositioningData(fp=fp, pdp=pdp, xy=np.asarray(a["ue_pos"], np.float64)[:, :2],
                           valid=np.asarray(a["link_valid"], bool), snr_db=snr.astype(np.float32),
                           power=power, crb_fim=np.asarray(a["crb_fim"]) if "crb_fim" in a else None,
                           variant=np.asarray(a["variant"]), user_id=np.asarray(a["user_id"]),
                           splits=splits, bs_pos=np.asarray(a["bs_pos"], np.float64), taps=taps,
                           ports=Nr * Nt, noise=label, magnitude=magnitude)


def bundle_fingerprints(links: dict, taps: int, num_bs: int, ports: int,
                        magnitude: str = "linear", dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fingerprints of one measurement from ``{bs_index: H [N_r, N_t, K]}``
    -> (fp [B, D], mask [B]); a station absent from ``links``, or whose CFR
    is all zero (no path: no usable link), is masked. ``dim``: the model's
    fingerprint length D (default that of Eq. 4, 2 N_r N_t L)."""
    D = 2 * ports * taps if dim is None else int(dim)
    fp = np.zeros((num_bs, D), np.float32)
    mask = np.zeros(num_bs, bool)
    by_shape: dict = {}  # stations of one array shape share one vectorised transform
    for b, h in links.items():
        if not 0 <= b < num_bs:
            raise ValueError(f"station index {b} outside the model's {num_bs} stations")
        h = np.asarray(h)
        by_shape.setdefault(h.shape, []).append((b, h))
    for group in by_shape.values():
        f = fingerprint(np.stack([h for _, h in group]), taps, magnitude)
        for (b, h), fb in zip(group, f):
            if fb.shape[0] != D:
                raise ValueError(f"station {b}: fingerprint of {fb.shape[0]} values, the model expects {D}")
            # a non-finite CFR value spreads over its antenna pair's whole
            # delay profile, so the fingerprint (smaller) is checked instead
            if not np.isfinite(fb).all():
                raise ValueError(f"station {b}: non-finite CSI")
            fp[b], mask[b] = fb, bool(np.any(h))
    return fp, mask
