"""The per-scene statistics of the background-nulling FWA detector
(core/fwa/subspace.py) and their cache: the background bases fitted on
UAV-free training scenes, then every validation and test scene's pair
statistics and echo delays. Cached under ``$SENSE_CACHE/fwa_subspace``,
keyed by the dataset, the noise settings, the calibration and a hash of the
code that computes them (this module and the core it calls), so changes
to the figures or plots around them reuse the cache.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

N_TAPS = 64
# The background of a pair has up to 128 traced paths (the generator's cap),
# so its span needs well over 128 scenes; 300 is the default of
# `sense eval fwa --subspace-calibration` (fewer scenes leave some paths
# outside the fitted span, and their leakage outshines the echo).
CALIBRATION_SCENES = 300


def _code_hash() -> str:
    from sense_nodes.data.paths import source_hash
    core = Path(__file__).parents[1] / "core" / "fwa"
    csi = Path(__file__).parents[1] / "data" / "csi"
    files = [core / "subspace.py", core / "bistatic.py", core / "classical.py", core / "calibration.py",
             Path(__file__),
             csi / "fwa_pairs.py", csi / "cfr.py"]
    return source_hash(files, [f.name for f in files])


def _cache_file(ds, noise: bool, snr_offset_db: float, calibration: int) -> Path:
    from sense_nodes.data.paths import cache_dir
    m = ds.manifest
    key = json.dumps(dict(path=str(Path(ds.path).resolve()), seed=m["seed"], n=m["num_samples"],
                          code=m["code_version"], noise=bool(noise), snr=float(snr_offset_db),
                          cal=int(calibration), v=_code_hash()), sort_keys=True)
    return cache_dir("fwa_subspace") / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".npz")


def scene_taps(ds, index: int, noise: bool, snr_offset_db: float) -> np.ndarray:
    """[P, D] the first N_TAPS delay taps of each pair, flattened."""
    from sense_nodes.data.csi.fwa_pairs import sample_taps
    taps, _ = sample_taps(ds, int(index), N_TAPS, noise=noise, snr_offset_db=snr_offset_db)
    return taps.reshape(taps.shape[0], -1)


def tap_noise_var(ds, noise: bool, snr_offset_db: float) -> np.ndarray:
    """Receiver noise variance of one delay tap per pair (CFR variance / K);
    a floor for noiseless data so that the model-order rule still works."""
    from sense_nodes.data.csi.fwa_pairs import noise_std
    k = int(ds.manifest["num_subcarriers"])
    nv = noise_std(ds, snr_offset_db) ** 2 / k
    return nv if noise else nv * 1e-6


def fit_detector(ds, train_free: np.ndarray, noise: bool, snr_offset_db: float, progress: bool):
    from tqdm import tqdm
    from sense_nodes.core.fwa.subspace import BackgroundSubspace, SubspaceDetector
    taps = np.stack([scene_taps(ds, i, noise, snr_offset_db)
                     for i in tqdm(train_free, desc="fwa background scenes", disable=not progress, unit="scene")])
    sub = BackgroundSubspace.fit(taps, tap_noise_var(ds, noise, snr_offset_db))
    n_t = ds.arrays["bg_a"].shape[2]
    return SubspaceDetector(sub, n_t, N_TAPS)


def scene_statistics(ds, det, idx, noise: bool, snr_offset_db: float, progress: bool):
    """(z [S, P], delay in taps [S, P], ms per scene [S]) of scenes ``idx``."""
    from tqdm import tqdm
    from sense_nodes.core.fwa.calibration import residual_echoes
    k = int(ds.manifest["num_subcarriers"])
    z = np.zeros((len(idx), det.subspace.noise_var.size))
    u = np.zeros_like(z)
    ms = np.zeros(len(idx))
    for s, i in enumerate(tqdm(idx, desc="fwa scenes (background nulled)", disable=not progress, unit="scene")):
        t0 = time.perf_counter()
        z[s], u[s] = residual_echoes(det.subspace, scene_taps(ds, i, noise, snr_offset_db), det.n_t, det.n_taps, k)
        ms[s] = 1e3 * (time.perf_counter() - t0)
    return z, u, ms


def fit_on_training(ds, feat, noise: bool, snr_offset_db: float, calibration: int, progress: bool):
    """(the detector, the number of scenes) fitted on the first
    ``calibration`` UAV-free training scenes."""
    tr = feat.indices("train")
    free = np.sort(tr[feat.present[tr] == 0])[:calibration]
    if len(free) < 2:
        raise ValueError("the background subspace needs at least 2 UAV-free training scenes")
    return fit_detector(ds, free, noise, snr_offset_db, progress), len(free)


def statistics(ds, feat, noise, snr_offset_db, calibration, progress):
    """Cached (z, u, ms, ranks) of every validation and test scene."""
    path = _cache_file(ds, noise, snr_offset_db, calibration)
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    det, n_free = fit_on_training(ds, feat, noise, snr_offset_db, calibration, progress)
    idx = np.sort(np.r_[feat.indices("val"), feat.indices("test")])
    z, u, ms = scene_statistics(ds, det, idx, noise, snr_offset_db, progress)
    out = {"idx": idx, "z": z, "u": u, "ms": ms, "ranks": det.subspace.ranks, "calibration": np.array(n_free)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out
