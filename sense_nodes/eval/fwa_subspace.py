"""The background-nulling detector and bistatic localiser
(core/fwa/subspace.py, core/fwa/bistatic.py) on an ``fwa`` dataset, on
the same test scenes as the learned system (beyond the paper).

Fitted on UAV-free training scenes only (``calibration`` of them: the
background bases), thresholded on the validation split (MDP + FAP, as every
detector here), and scored on the test split. The number of pairs the
localiser uses (the k strongest residual peaks) is chosen on the
validation split's UAV-present scenes. Each scene's pair statistics and
echo delays are cached (eval/fwa_subspace_stats.py).

Figures: ``subspace_mdp_pct``, ``subspace_fap_pct`` (with 95 % CIs),
``subspace_auc``, ``subspace_one_bs_missing_mdp_pct`` / ``_fap_pct`` (the
worse BS missing, its threshold chosen on validation with that BS missing), ``subspace_ape_mean_m``,
``subspace_ape95_m``, ``subspace_pairs_k``, ``subspace_rank_mean`` (the
background dimension found per pair), ``subspace_scene_ms`` (median per
scene: taps to statistics and delays, one thread).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sense_nodes.eval.fwa_subspace_stats import CALIBRATION_SCENES

K_CHOICES = (2, 3, 4, 6, 8, 12)


def _locate_all(ds, z, u, k_pairs: int) -> np.ndarray:
    """Positions [S, 3] from the ``k_pairs`` strongest pairs of each scene."""
    from sense_nodes.core.fwa.bistatic import delay_to_range, locate_strongest, search_box
    a = ds.arrays
    bs, cpe = np.asarray(a["bs_pos"], float), np.asarray(a["cpe_pos"], float)
    height = float(ds.manifest["geometry"]["uav_height_m"])
    lo, hi = search_box(bs, cpe)
    rng = delay_to_range(u, int(ds.manifest["num_subcarriers"]), float(ds.scs_hz))
    pairs = np.arange(np.shape(z)[1])
    out = np.zeros((len(z), 3))
    for s in range(len(z)):
        out[s] = locate_strongest(z[s], rng[s], pairs, bs, cpe, height, lo, hi, k_pairs)[1]
    return out


def plot_fix(ds, z, u, k_pairs: int, truth: np.ndarray, path) -> str:
    """Top view of one scene's fix: the BSs and CPEs, the bistatic-range
    ellipses (on the UAV's plane) of the pairs used, the true and the
    estimated UAV: what the localiser saw, for a person to check."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sense_nodes.core.fwa.bistatic import bistatic_range, delay_to_range, locate_strongest, search_box
    a = ds.arrays
    bs, cpe = np.asarray(a["bs_pos"], float), np.asarray(a["cpe_pos"], float)
    n_cpe = len(cpe)
    height = float(ds.manifest["geometry"]["uav_height_m"])
    ranges = delay_to_range(u, int(ds.manifest["num_subcarriers"]), float(ds.scs_hz))
    top, est = locate_strongest(z, ranges, np.arange(len(z)), bs, cpe, height, *search_box(bs, cpe), k_pairs)
    rng = ranges[top]
    xs = np.linspace(-100, 100, 401)
    gx, gy = np.meshgrid(xs, xs, indexing="ij")
    grid = np.stack([gx, gy, np.full_like(gx, height)], -1)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    for j, p in enumerate(top):
        d = bistatic_range(grid, bs[p // n_cpe][None], cpe[p % n_cpe][None])[..., 0]
        ax.contour(gx, gy, d, levels=[rng[j]], colors=[plt.cm.viridis(j / max(1, k_pairs - 1))], linewidths=1)
    ax.scatter(*cpe[:, :2].T, marker="^", c="0.4", label="CPEs")
    ax.scatter(*bs[:, :2].T, marker="s", s=60, c="k", label="BSs")
    ax.scatter(*truth[:2], marker="x", s=120, c="tab:green", label="true UAV")
    ax.scatter(*est[:2], marker="+", s=160, c="tab:red", label=f"estimate ({np.linalg.norm(est - truth):.2f} m off)")
    ax.set(xlabel="x (m)", ylabel="y (m)", aspect="equal", xlim=(-100, 100), ylim=(-100, 100),
           title=f"Echo ellipses of the {k_pairs} strongest pairs (background nulled)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def missing_bs_masks(n_pairs: int, n_cpe: int) -> list[np.ndarray]:
    """Per BS, the pairs present when that BS is silent [n_pairs] bool."""
    out = []
    for bs in range(n_pairs // n_cpe):
        keep = np.ones(n_pairs, bool)
        keep[bs * n_cpe:(bs + 1) * n_cpe] = False
        out.append(keep)
    return out


def choose_settings(ds, zv, uv, yv, truth_v) -> dict:
    """The deployment's settings, on validation scenes only: the scene
    threshold (MDP + FAP) with every BS answering and with each BS silent
    (the centre knows which BSs answered, so its threshold for that set of
    pairs is chosen on validation scenes with the same pairs missing), and
    the number of pairs the localiser uses (mean APE over the UAV-present
    scenes; ``truth_v`` their positions)."""
    from sense_nodes.core.fwa.metrics import pick_threshold
    from sense_nodes.core.fwa.subspace import SubspaceDetector
    thr = pick_threshold(SubspaceDetector.scene_score(zv), yv)
    masks = missing_bs_masks(zv.shape[1], len(ds.arrays["cpe_pos"]))
    thr_missing = np.array([pick_threshold(SubspaceDetector.scene_score(zv, keep), yv) for keep in masks])
    errs = {k: float(np.linalg.norm(_locate_all(ds, zv[yv], uv[yv], k) - truth_v, axis=1).mean())
            for k in K_CHOICES}
    return {"threshold": float(thr), "threshold_missing": thr_missing, "k_pairs": int(min(errs, key=errs.get)),
            "val_ape_mean_m": errs}


def deployment_calibration(ds, feat, noise: bool = True, snr_offset_db: float = 0.0,
                           calibration: int = CALIBRATION_SCENES, progress: bool = True):
    """What the fwa nodes load under ``detector: subspace``
    (core/fwa/calibration.py): the bases fitted on UAV-free training
    scenes, the thresholds and ``k`` chosen on the validation split."""
    from sense_nodes.core.fwa.calibration import SubspaceCalibration
    from sense_nodes.eval.fwa_subspace_stats import fit_on_training, scene_statistics
    det, n_free = fit_on_training(ds, feat, noise, snr_offset_db, calibration, progress)
    va = np.sort(feat.indices("val"))
    zv, uv, _ = scene_statistics(ds, det, va, noise, snr_offset_db, progress)
    yv = feat.present[va] == 1
    cfg = choose_settings(ds, zv, uv, yv, feat.uav_pos[va[yv]])
    a = ds.arrays
    n_cpe = len(a["cpe_pos"])
    bases = det.subspace.bases
    m = ds.manifest
    info = {"dataset": str(Path(ds.path).resolve()), "seed": m["seed"], "samples": m["num_samples"],
            "noise": bool(noise), "snr_offset_db": float(snr_offset_db), "calibration_scenes": int(n_free),
            "validation_scenes": int(len(va)), "val_ape_mean_m": {str(k): v for k, v in cfg["val_ape_mean_m"].items()}}
    return SubspaceCalibration(
        [bases[b * n_cpe:(b + 1) * n_cpe] for b in range(len(bases) // n_cpe)], det.subspace.noise_var,
        det.n_t, det.n_taps, int(m["num_subcarriers"]), float(ds.scs_hz), np.asarray(a["bs_pos"], float),
        np.asarray(a["cpe_pos"], float), float(m["geometry"]["uav_height_m"]), cfg["threshold"],
        cfg["threshold_missing"], cfg["k_pairs"], info)


def subspace_figures(ds, feat, noise: bool = True, snr_offset_db: float = 0.0,
                     calibration: int = CALIBRATION_SCENES, progress: bool = True,
                     out_dir=None) -> tuple[dict, np.ndarray]:
    """The figures and the test scenes' position errors (m)."""
    from sense_nodes.core.fwa.metrics import ape_figures, detection_figures
    from sense_nodes.core.fwa.subspace import SubspaceDetector
    from sense_nodes.eval.fwa_eval import auc
    from sense_nodes.eval.fwa_subspace_stats import statistics
    st = statistics(ds, feat, noise, snr_offset_db, calibration, progress)
    pos = {int(i): j for j, i in enumerate(st["idx"])}
    va, te = feat.indices("val"), feat.indices("test")
    zv, zt = st["z"][[pos[i] for i in va]], st["z"][[pos[i] for i in te]]
    uv, ut = st["u"][[pos[i] for i in va]], st["u"][[pos[i] for i in te]]
    yv, yt = feat.present[va] == 1, feat.present[te] == 1
    truth_v, truth_t = feat.uav_pos[va[yv]], feat.uav_pos[te[yt]]
    cfg = choose_settings(ds, zv, uv, yv, truth_v)
    thr, k_best, errs = cfg["threshold"], cfg["k_pairs"], cfg["val_ape_mean_m"]
    score = SubspaceDetector.scene_score(zt)
    d = detection_figures(score >= thr, yt)
    fig = {f"subspace_{k}": d[k] for k in ("mdp_pct", "mdp_ci_low_pct", "mdp_ci_high_pct", "fap_pct",
                                           "fap_ci_low_pct", "fap_ci_high_pct")}
    fig.update({"subspace_auc": auc(score, yt), "subspace_threshold": float(thr),
                "subspace_calibration_scenes": int(st["calibration"]),
                "subspace_rank_mean": float(np.mean(st["ranks"])),
                "subspace_scene_ms": float(np.median(st["ms"]))})
    worst = None
    for keep, thr_b in zip(missing_bs_masks(zt.shape[1], len(ds.arrays["cpe_pos"])), cfg["threshold_missing"]):
        f = detection_figures(SubspaceDetector.scene_score(zt, keep) >= thr_b, yt)
        if worst is None or f["mdp_pct"] > worst["mdp_pct"]:
            worst = f
    fig["subspace_one_bs_missing_mdp_pct"], fig["subspace_one_bs_missing_fap_pct"] = worst["mdp_pct"], worst["fap_pct"]
    e = np.linalg.norm(_locate_all(ds, zt[yt], ut[yt], k_best) - truth_t, axis=1)
    fig.update(ape_figures(e, "subspace_"))
    fig["subspace_pairs_k"] = int(k_best)
    fig.update({f"subspace_val_k{k}_ape_mean_m": float(v) for k, v in errs.items()})
    if out_dir is not None and len(e):
        med = int(np.argsort(e)[len(e) // 2])   # a typical scene: the median error
        fig["subspace_png"] = plot_fix(ds, zt[yt][med], ut[yt][med], k_best, truth_t[med],
                                       Path(out_dir) / "fwa_subspace_fix.png")
    return fig, e


def deployment_figures(ds, feat, cal, noise: bool = True, snr_offset_db: float = 0.0, split: str = "test",
                       progress: bool = True) -> dict:
    """The deployed chain on a split: each scene's CFRs (as the CSI source
    publishes them) through every BS's :func:`pair_echoes` with its own
    bases and the centre's :class:`SubspaceCentre` -- what the nodes compute,
    without the middleware. Figures ``deployed_subspace_*``: MDP, FAP,
    APE of the declared UAV scenes, and the median ms per scene (all BSs
    and the centre, one thread)."""
    import time

    from tqdm import tqdm
    from sense_nodes.core.fwa.calibration import SubspaceCentre, pair_echoes
    from sense_nodes.core.fwa.metrics import ape_figures, detection_figures
    from sense_nodes.data.csi.fwa_pairs import sample_links
    idx = np.arange(len(feat.present)) if split == "all" else np.sort(feat.indices(split))
    centre = SubspaceCentre(cal)
    n = cal.n_cpe
    det, err, ms = np.zeros(len(idx), bool), [], []
    for s, i in enumerate(tqdm(idx, desc="fwa deployed subspace chain", disable=not progress, unit="scene")):
        H = {link.link_index: link.H for link in sample_links(ds, int(i), noise=noise,
                                                               snr_offset_db=snr_offset_db).links}
        t0 = time.perf_counter()
        reports = {}
        for b in range(cal.n_bs):
            reports.update(pair_echoes(cal, {k: h for k, h in H.items() if k // n == b}))
        d = centre.detect(reports)
        ms.append(1e3 * (time.perf_counter() - t0))
        det[s] = d.present
        if d.present and feat.present[i] == 1:
            err.append(float(np.linalg.norm(d.position - feat.uav_pos[i])))
    f = detection_figures(det, feat.present[idx] == 1)
    out = {f"deployed_subspace_{k}": f[k] for k in ("mdp_pct", "fap_pct")}
    out.update(ape_figures(err, "deployed_subspace_"))
    out["deployed_subspace_scene_ms"] = float(np.median(ms))
    out["deployed_subspace_scenes"] = int(len(idx))
    return out
