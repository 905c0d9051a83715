"""The BSense evaluation's figures: the paper's values, the flat figure keys
of the command-line contract, the printed tables and the Figure 14 picture."""
from __future__ import annotations

import time

import numpy as np

from sense_nodes.eval import bsense_metrics as M
from sense_nodes.eval.bsense_cases import uav_truth

# The paper's figures (Sections 3-4).
PAPER = {
    "noise_points_per_frame": 168.05, "noise_after_filter_per_frame": 64.15,
    "noise_removed_pct": 61.8, "uav_points_lost_pct": 1.7,
    "raw_false_objects_per_frame": 61.34, "false_objects_per_frame": 2.58, "object_recall_pct": 87.64,
    "f1_pct": 95.56, "precision_pct": 96.73, "recall_pct": 94.41, "mean_loc_error_m": 4.9,
    "false_per_frame": 0.04, "basic_f1_pct": 3.65, "basic_precision_pct": 1.86,
    "uav_free_fp_rate_pct": 2.0, "multi_uav_f1_pct": 95.01, "multi_uav_precision_pct": 100.0,
    "multi_uav_recall_pct": 90.50, "cross_site_f1_pct": 96.93, "cross_site_precision_pct": 100.0,
    "cross_site_recall_pct": 93.99,
}
STAGE_NAMES = {1: "basic", 2: "fingerprint", 3: "spatial", 4: "velocity", 5: "full"}


def peer_figures(peer_dets, ours, ours_gospa, timing, cache=None, tracks=None) -> dict:
    """Stone Soup and our IMM-UKF tracker on the same (stage-4) detections of
    the first ``--peer-cases`` test cases of fold 0 (the peer's tracks kept
    in ``cache``, a StageCache, keyed by the detections; ``tracks``: those
    of :func:`peer_tracks`, computed elsewhere)."""
    counts, gospa, times = M.DetectionCounts(), 0.0, []
    for i, case in enumerate(peer_dets):   # each case is its own sequence: a fresh tracker
        outs, ms = tracks[i] if tracks is not None else _peer_tracks([d for d, _ in case], cache)
        c, g = M.DetectionCounts(), 0.0          # scored as stonesoup_peer.run_peer scores them
        for out, (_, gt) in zip(outs, case):
            c.add(out, gt)
            g += M.gospa(out, gt)["total"]
        counts = counts.merge(c)
        gospa += g / max(c.frames, 1) * c.frames
        times += [float(t) for t in ms]
    return {"tracker_f1_pct": ours.f1_pct, "stonesoup_f1_pct": counts.f1_pct,
            "tracker_mean_loc_error_m": ours.mean_error_m, "stonesoup_mean_loc_error_m": counts.mean_error_m,
            "tracker_gospa": ours_gospa / max(ours.frames, 1), "stonesoup_gospa": gospa / max(counts.frames, 1),
            "tracker_median_ms": float(np.median(timing["tracker"])) if timing.get("tracker") else float("nan"),
            "stonesoup_median_ms": float(np.median(times)) if times else float("nan")}


def peer_tracks(peer_dets, cache_enabled: bool, cache_root) -> list:
    """:func:`_peer_tracks` of each case of ``peer_dets`` (as :func:`peer_figures`
    takes them), with a StageCache of its own: for a worker process."""
    from sense_nodes.eval.bsense_cache import StageCache

    cache = StageCache(enabled=cache_enabled, root=cache_root)
    return [_peer_tracks([d for d, _ in case], cache) for case in peer_dets]


def _peer_tracks(detections, cache=None) -> tuple[list, np.ndarray]:
    """Stone Soup's (N, 3) outputs per frame over one case's detections and
    its ms per frame (as measured when the tracks were computed)."""
    from sense_nodes.eval.stonesoup_peer import StoneSoupTracker

    def compute():
        tracker, outs, ms = StoneSoupTracker(), [], []
        for det in detections:
            t0 = time.perf_counter()
            outs.append(np.asarray(tracker.step(det), float).reshape(-1, 3))
            ms.append((time.perf_counter() - t0) * 1e3)
        return outs, np.asarray(ms, float)
    if cache is None:
        return compute()
    from importlib.metadata import version

    from sense_nodes.eval.bsense_cache import code_hash, digest
    key = digest(code_hash(("eval/stonesoup_peer.py", "eval/bsense_cache.py")), version("stonesoup"),
                 *[np.asarray(d, float) for d in detections])
    return cache.memoised("peer", key, compute, _encode_rows,
                          lambda z: ([z["rows"][a:b] for a, b in zip(z["off"], z["off"][1:])], z["ms"]))


def _encode_rows(value) -> dict:
    outs, ms = value
    off = np.concatenate([[0], np.cumsum([len(o) for o in outs])]).astype(np.int64)
    return {"rows": np.concatenate(outs) if outs else np.zeros((0, 3)), "off": off, "ms": ms}


def stage_figures(per_stage, gospa, hota_frames, points, objects, raw_objects, specials, timing, n_folds):
    full, basic = per_stage[5], per_stage[1]
    f = {
        "noise_points_per_frame": points.noise_per_frame,
        "noise_after_filter_per_frame": points.noise_after_per_frame,
        "noise_removed_pct": points.noise_removed_pct,
        "uav_points_lost_pct": points.uav_lost_pct,
        "raw_false_objects_per_frame": raw_objects.false_per_frame,
        "false_objects_per_frame": objects.false_per_frame,
        "object_recall_pct": objects.recall_pct,
        "f1_pct": full.f1_pct, "precision_pct": full.precision_pct, "recall_pct": full.recall_pct,
        "mean_loc_error_m": full.mean_error_m, "false_per_frame": full.false_per_frame,
        "basic_f1_pct": basic.f1_pct, "basic_precision_pct": basic.precision_pct,
        "uav_free_fp_rate_pct": specials["uav_free"].fp_frame_rate_pct,
        "multi_uav_f1_pct": specials["multi_uav"].f1_pct,
        "multi_uav_precision_pct": specials["multi_uav"].precision_pct,
        "multi_uav_recall_pct": specials["multi_uav"].recall_pct,
        "multi_uav_basic_f1_pct": specials["multi_uav_basic"].f1_pct,
        "cross_site_f1_pct": specials["cross_site"].f1_pct,
        "cross_site_precision_pct": specials["cross_site"].precision_pct,
        "cross_site_recall_pct": specials["cross_site"].recall_pct,
        "cross_site_basic_f1_pct": specials["cross_site_basic"].f1_pct,
        "gospa": gospa[5] / max(full.frames, 1),
        "basic_gospa": gospa[1] / max(basic.frames, 1),
    }
    h = M.hota(hota_frames[5])
    f.update({"hota": h["HOTA"], "hota_deta": h["DetA"], "hota_assa": h["AssA"]})
    f["basic_hota"] = M.hota(hota_frames[1])["HOTA"]
    for s in (2, 3, 4):
        f[f"stage{s}_{STAGE_NAMES[s]}_f1_pct"] = per_stage[s].f1_pct
    for k, v in timing.items():
        f[f"{k}_median_ms"] = float(np.median(v))
    f["folds"] = n_folds
    for key, value in PAPER.items():
        if key in f:
            f[f"paper_{key}"] = value
    return f


def print_details(per_stage, per_family, bands, fold_info):
    print("\nAblation (Figure 13): precision / recall / F1 %")
    for s, c in per_stage.items():
        print(f"  ({s}) {STAGE_NAMES[s]:<12} {c.precision_pct:7.2f} {c.recall_pct:7.2f} {c.f1_pct:7.2f}"
              f"   false/frame {c.false_per_frame:.3f}")
    print("\nPer trajectory family (Figure 22), full system: precision / recall / F1 %, error m")
    for fam, c in sorted(per_family.items()):
        print(f"  {fam:<12} {c.precision_pct:7.2f} {c.recall_pct:7.2f} {c.f1_pct:7.2f}  {c.mean_error_m:6.2f}")
    print("\nPer range band (Figure 23), full system: F1 %, error m")
    for lo, c in sorted(bands.bands.items()):
        print(f"  {lo:4d}-{lo + 100:<4d} m   F1 {c.f1_pct:7.2f}   error {c.mean_error_m:6.2f}   (n={c.tp + c.fn})")
    print("\nFolds: " + "; ".join(f"{d['fold']}: test {','.join(d['test_types'])}, "
                                 f"tau_s={d['tau_s']:.3f} tau_v={d['tau_v']:.3f} keep={d.get('keep_rule', 'or')} "
                                 f"K={d.get('ramp_frames', 0)} policy={d['output_policy']}"
                                 for d in fold_info))
    for d in fold_info:
        t = d["oof_f1_by_policy"]
        if t:
            top = sorted(t.items(), key=lambda kv: -kv[1])[:6]
            print(f"  fold {d['fold']} out-of-fold F1 (smoothed) of the best output policies: "
                  + " ".join(f"{k}:{v:.1f}" for k, v in top))
    print("Definitions: UAV point = within 10 m of a true UAV; objects and outputs matched to true UAVs "
          "by minimum-distance binary matching, true positive within 10 m (the object-level gate, used at "
          "the trajectory level too); fingerprints refit per day from 700 UAV-free frames; UAV-free FP rate = "
          "share of frames with any output; GOSPA c=20 m, p=1, alpha=2; HOTA similarity "
          "max(0, 1 - d / (10 m + 0.02 r)).")


def plot_figure14(folder, cases, plots):
    """Figure 14-like picture: raw points, basic-pipeline outputs, BSense outputs, truth."""
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Path(folder).mkdir(parents=True, exist_ok=True)
    for name, by_stage in list(plots.items())[:2]:
        if 1 not in by_stage or 5 not in by_stage:
            continue
        case = cases[name]
        fig, axes = plt.subplots(1, 3, figsize=(16, 5.6), dpi=100, sharex=True, sharey=True)
        pts = np.concatenate([np.stack([f.points["x"], f.points["y"]], 1) for f in case.frames])
        truth = np.concatenate([uav_truth(f)[1] for f in case.frames if uav_truth(f)[1].size] or [np.zeros((0, 3))])
        axes[0].scatter(pts[:, 0], pts[:, 1], s=1, c="grey", alpha=0.3)
        axes[0].set_title(f"{name}: raw points ({len(case.frames)} frames)")
        for ax, s, title in ((axes[1], 1, "(1) basic pipeline"), (axes[2], 5, "(5) BSense")):
            out = np.concatenate([o for o in by_stage[s] if o.size] or [np.zeros((0, 3))])
            ax.scatter(out[:, 0], out[:, 1], s=3, c="tab:blue", label="output")
            ax.set_title(title)
        for ax in axes:
            ax.plot(truth[:, 0], truth[:, 1], ".", ms=1.5, c="red", label="UAV truth")
            ax.set_xlabel("x (m)")
            ax.set_aspect("equal")
        axes[0].set_ylabel("y (m)")
        axes[2].legend(loc="upper right")
        fig.tight_layout()
        fig.savefig(Path(folder) / f"figure14_{name}.png")
        plt.close(fig)
