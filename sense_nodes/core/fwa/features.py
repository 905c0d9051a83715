"""Per-sample network inputs and classical maps of an ``fwa`` dataset,
computed once from the noisy CFRs and cached as float16 ``.npy`` files.

For every sample and pair the loader builds the CFR (Eq. 27 phases plus
receiver noise at the pair's link SNR, shifted by ``snr_offset_db``) and
this module stores:

- ``x``  [S, P, 64, 4, 64] float16: ``P(H)`` of Section III-B1 (network input);
- ``bd`` [S, P, 64, 64] float16: the classical beam x delay map in dB.

The cache lives under ``$SENSE_CACHE/fwa_features``, keyed by the dataset
(path, seed, size, code version), the noise settings and a hash of the code
that makes the features: a cache made by older code is never reused.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sense_nodes.core.fwa.classical import beam_delay_from_taps, beam_delay_map
from sense_nodes.core.fwa.preprocess import N_DELAY, preprocess, preprocess_taps

_CODE = ("features", "preprocess", "classical")


def code_version() -> str:
    from sense_nodes.data.paths import source_hash
    here = Path(__file__).parent
    files = [here / f"{m}.py" for m in _CODE]
    csi = Path(__file__).parents[2] / "data" / "csi"
    files += [csi / "fwa_pairs.py", csi / "cfr.py"]  # the sampler and its noise and phasor helpers
    return source_hash(files, [f.name for f in files])


@dataclass
class FwaFeatures:
    """Cached features of one dataset (memory-mapped) and its labels."""

    x: np.ndarray            # [S, P, n_r, n_t, N_c'] float16
    bd: np.ndarray           # [S, P, beams, taps] float16
    present: np.ndarray      # [S] int8 scene label y^s
    pair_label: np.ndarray   # [S, P] int8 y^(m,n)
    uav_pos: np.ndarray      # [S, 3] float32 (NaN when absent)
    split: np.ndarray        # [S] int8 0 train / 1 val / 2 test
    bs_pos: np.ndarray       # [M, 3]
    cpe_pos: np.ndarray      # [N, 3]

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == ("train", "val", "test").index(split))


def sample_features(ds, index: int, noise: bool = True, snr_offset_db: float = 0.0):
    """(x [P, 64, 4, 64] float32, bd [P, 64, 64] float32) of one sample,
    from the loader's delay taps (the same numbers as preprocessing its
    CFRs, a tenth of the work; :func:`sample_features_from_cfr` is the
    reference)."""
    from sense_nodes.data.csi.fwa_pairs import sample_taps
    taps, taps_w = sample_taps(ds, int(index), N_DELAY, noise=noise, snr_offset_db=snr_offset_db)
    return preprocess_taps(taps), beam_delay_from_taps(taps_w)


def sample_features_from_cfr(ds, index: int, noise: bool = True, snr_offset_db: float = 0.0):
    """The same from the CFRs a node receives (``ds.sample``)."""
    s = ds.sample(int(index), noise=noise, snr_offset_db=snr_offset_db)
    H = np.stack([link.H for link in s.links])
    return preprocess(H, N_DELAY), beam_delay_map(H)


def cache_path(ds, noise: bool, snr_offset_db: float) -> Path:
    from sense_nodes.data.paths import cache_dir
    m = ds.manifest
    key = json.dumps(dict(path=str(Path(ds.path).resolve()), seed=m["seed"], n=m["num_samples"],
                          code=m["code_version"], noise=bool(noise), snr=float(snr_offset_db),
                          v=code_version()), sort_keys=True)
    return cache_dir("fwa_features") / hashlib.sha1(key.encode()).hexdigest()[:16]


def load_features(ds, noise: bool = True, snr_offset_db: float = 0.0,
                  progress: bool = True) -> FwaFeatures:
    """The cached features of ``ds`` (computed on first use, with a
    progress bar; an interrupted run leaves no cache that loads)."""
    from tqdm import tqdm
    path = cache_path(ds, noise, snr_offset_db)
    if not (path / "done").exists():
        path.mkdir(parents=True, exist_ok=True)
        n = ds.num_samples
        x0, b0 = sample_features(ds, 0, noise, snr_offset_db)
        x = np.lib.format.open_memmap(path / "x.npy", "w+", np.float16, (n,) + x0.shape)
        bd = np.lib.format.open_memmap(path / "bd.npy", "w+", np.float16, (n,) + b0.shape)
        x[0], bd[0] = x0, b0
        for i in tqdm(range(1, n), desc=f"fwa features {Path(ds.path).name}", unit="sample",
                      disable=not progress, initial=1, total=n):
            x[i], bd[i] = sample_features(ds, i, noise, snr_offset_db)
        x.flush()
        bd.flush()
        del x, bd
        (path / "done").write_text(json.dumps({"noise": noise, "snr_offset_db": snr_offset_db}))
    a = ds.arrays
    return FwaFeatures(np.load(path / "x.npy", mmap_mode="r"), np.load(path / "bd.npy", mmap_mode="r"),
                       np.asarray(a["uav_present"]), np.asarray(a["pair_label"]), np.asarray(a["uav_pos"]),
                       np.asarray(a["split_random"]), np.asarray(a["bs_pos"]), np.asarray(a["cpe_pos"]))
