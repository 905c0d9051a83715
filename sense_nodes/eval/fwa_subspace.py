"""The background-nulling detector and bistatic localiser
(core/fwa/subspace.py, core/fwa/bistatic.py) on an ``fwa`` dataset, on
the same test scenes as the learned system (beyond the paper).

Fitted on UAV-free training scenes only (``calibration`` of them: the
background bases), thresholded on the validation split (MDP + FAP, as every
detector here), and scored on the test split. The number of pairs the
localiser uses (the k strongest residual peaks) is chosen on the
validation split's UAV-present scenes. Each scene's pair statistics and
echo delays are cached under ``$SENSE_CACHE/fwa_subspace``, keyed by the
dataset, the noise settings, the calibration and a hash of the code.

Figures: ``subspace_mdp_pct``, ``subspace_fap_pct`` (with 95 % CIs),
``subspace_auc``, ``subspace_one_bs_missing_mdp_pct`` / ``_fap_pct`` (the
worse BS missing, same threshold), ``subspace_ape_mean_m``,
``subspace_ape95_m``, ``subspace_pairs_k``, ``subspace_rank_mean`` (the
background dimension found per pair), ``subspace_scene_ms`` (median per
scene: taps to statistics and delays, one thread).
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
K_CHOICES = (2, 3, 4, 6, 8, 12)


def _code_hash() -> str:
    from sense_nodes.data.paths import source_hash
    core = Path(__file__).parents[1] / "core" / "fwa"
    csi = Path(__file__).parents[1] / "data" / "csi"
    files = [core / "subspace.py", core / "bistatic.py", core / "classical.py", Path(__file__),
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
    from sense_nodes.core.fwa.bistatic import refine_delay
    from sense_nodes.core.fwa.subspace import pair_statistics
    k = int(ds.manifest["num_subcarriers"])
    z = np.zeros((len(idx), det.subspace.noise_var.size))
    u = np.zeros_like(z)
    ms = np.zeros(len(idx))
    for s, i in enumerate(tqdm(idx, desc="fwa scenes (background nulled)", disable=not progress, unit="scene")):
        t0 = time.perf_counter()
        resid = det.subspace.residual(scene_taps(ds, i, noise, snr_offset_db))
        st = pair_statistics(resid, det.subspace.noise_var, det.n_t, det.n_taps, det.upa)
        r = resid.reshape(len(resid), -1, det.n_t, det.n_taps)
        z[s] = st.z
        u[s] = [refine_delay(r[p], int(st.tap[p]), k) for p in range(len(r))]
        ms[s] = 1e3 * (time.perf_counter() - t0)
    return z, u, ms


def _statistics(ds, feat, noise, snr_offset_db, calibration, progress):
    """Cached (z, u, ms, ranks) of every validation and test scene."""
    path = _cache_file(ds, noise, snr_offset_db, calibration)
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    tr = feat.indices("train")
    free = np.sort(tr[feat.present[tr] == 0])[:calibration]
    if len(free) < 2:
        raise ValueError("the background subspace needs at least 2 UAV-free training scenes")
    det = fit_detector(ds, free, noise, snr_offset_db, progress)
    idx = np.sort(np.r_[feat.indices("val"), feat.indices("test")])
    z, u, ms = scene_statistics(ds, det, idx, noise, snr_offset_db, progress)
    out = {"idx": idx, "z": z, "u": u, "ms": ms, "ranks": det.subspace.ranks, "calibration": np.array(len(free))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


def _locate_all(ds, z, u, k_pairs: int) -> np.ndarray:
    """Positions [S, 3] from the ``k_pairs`` strongest pairs of each scene."""
    from sense_nodes.core.fwa.bistatic import C, locate
    a = ds.arrays
    bs, cpe = np.asarray(a["bs_pos"], float), np.asarray(a["cpe_pos"], float)
    n_cpe = len(cpe)
    scs, k = float(ds.scs_hz), int(ds.manifest["num_subcarriers"])
    height = float(ds.manifest["geometry"]["uav_height_m"])
    nodes = np.r_[bs[:, :2], cpe[:, :2]]
    lo, hi = nodes.min(0) - 10.0, nodes.max(0) + 10.0
    out = np.zeros((len(z), 3))
    for s in range(len(z)):
        top = np.argsort(-z[s])[:k_pairs]
        rng = C * u[s, top] / (k * scs)
        out[s] = locate(bs[top // n_cpe], cpe[top % n_cpe], rng, height, lo, hi)
    return out


def subspace_figures(ds, feat, noise: bool = True, snr_offset_db: float = 0.0,
                     calibration: int = CALIBRATION_SCENES, progress: bool = True) -> dict:
    from sense_nodes.core.fwa.metrics import ape_figures, detection_figures, pick_threshold
    from sense_nodes.core.fwa.subspace import SubspaceDetector
    from sense_nodes.eval.fwa_eval import auc
    st = _statistics(ds, feat, noise, snr_offset_db, calibration, progress)
    pos = {int(i): j for j, i in enumerate(st["idx"])}
    va, te = feat.indices("val"), feat.indices("test")
    zv, zt = st["z"][[pos[i] for i in va]], st["z"][[pos[i] for i in te]]
    uv, ut = st["u"][[pos[i] for i in va]], st["u"][[pos[i] for i in te]]
    yv, yt = feat.present[va] == 1, feat.present[te] == 1
    thr = pick_threshold(SubspaceDetector.scene_score(zv), yv)
    score = SubspaceDetector.scene_score(zt)
    d = detection_figures(score >= thr, yt)
    fig = {f"subspace_{k}": d[k] for k in ("mdp_pct", "mdp_ci_low_pct", "mdp_ci_high_pct", "fap_pct",
                                           "fap_ci_low_pct", "fap_ci_high_pct")}
    fig.update({"subspace_auc": auc(score, yt), "subspace_threshold": float(thr),
                "subspace_calibration_scenes": int(st["calibration"]),
                "subspace_rank_mean": float(np.mean(st["ranks"])),
                "subspace_scene_ms": float(np.median(st["ms"]))})
    n_pairs = zt.shape[1]
    worst = None
    for bs in range(n_pairs // 16):
        keep = np.ones(n_pairs, bool)
        keep[bs * 16:(bs + 1) * 16] = False
        f = detection_figures(SubspaceDetector.scene_score(zt, keep) >= thr, yt)
        if worst is None or f["mdp_pct"] > worst["mdp_pct"]:
            worst = f
    fig["subspace_one_bs_missing_mdp_pct"], fig["subspace_one_bs_missing_fap_pct"] = worst["mdp_pct"], worst["fap_pct"]
    # localisation: k chosen on the validation split's UAV-present scenes
    truth_v, truth_t = feat.uav_pos[va[yv]], feat.uav_pos[te[yt]]
    errs = {k: np.linalg.norm(_locate_all(ds, zv[yv], uv[yv], k) - truth_v, axis=1).mean() for k in K_CHOICES}
    k_best = min(errs, key=errs.get)
    e = np.linalg.norm(_locate_all(ds, zt[yt], ut[yt], k_best) - truth_t, axis=1)
    fig.update(ape_figures(e, "subspace_"))
    fig["subspace_pairs_k"] = int(k_best)
    fig.update({f"subspace_val_k{k}_ape_mean_m": float(v) for k, v in errs.items()})
    return fig
