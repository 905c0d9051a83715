"""The demo's imaging, DiffLoc and FWA parts: each system's deployment run
through its ROS nodes on the embedded default, what it published collected
by a probe node, and scored against the source's truth with the paper's
metric beside the paper's value.

What cannot ship is made on first use and cached: the DiffLoc dataset and
consistency model (a small ray-traced set and a short training when the
full ones of ``sense data generate --kind diffloc`` and ``sense train
diffloc --model ct`` are not in the cache), and a small FWA dataset when the
full one is not. The imaging network, the FWA networks and the TrajFormer
ship with the package.
"""
from __future__ import annotations

import sys
import time

import numpy as np

# the demo's own small DiffLoc set: enough users for a model that localises at
# all, small enough to trace and train in about two minutes on one thread
DIFFLOC_DEMO_USERS = {"pedestrian": 50, "vehicular": 10}
DIFFLOC_DEMO_SNAPSHOTS = 5
DIFFLOC_DEMO_STEPS = 300        # optimiser steps per BS of the demo's ct model
FWA_DEMO_SAMPLES = 40
# the shipped networks were trained on seed 0's draws: the demo's are new
FWA_DEMO_SEED = 1
# the paper's values the demo compares with (the deployed model of each paper)
PAPER = {
    "imaging_ospa_m": 29.9405,          # off-grid ISAC imaging, Table IV, Net10 (the shipped network)
    "imaging_dr_pct": 97.55,
    "diffloc_mean_error_cm": 0.5,       # DiffLoc, Table IV, consistency model, fused over the BSs
    "fwa_mdp_pct": 0.63,                # FWA cooperative sensing, Sec. VI
    "fwa_fap_pct": 0.0,
    "fwa_ape_mean_m": 3.09,
}


def _say(msg: str) -> None:
    print(msg, flush=True)


# --- first use: data and models ----------------------------------------------
def diffloc_assets() -> tuple[str, str, str]:
    """(dataset, checkpoint, split) for the DiffLoc part: the cache's full
    dataset and ct.pt when both exist, else the demo's small ones, made now
    when missing."""
    from sense_nodes.core.diffloc.models import default_path
    from sense_nodes.data.csi.dataset import default_dir
    full_ds, full_ck = default_dir("diffloc", False, 0), default_path("ct")
    if (full_ds / "manifest.json").exists() and full_ck.exists():
        return str(full_ds), str(full_ck), "test"
    ds = full_ds.with_name("diffloc-demo-seed0")
    ck = default_path("ct", tag="demo")
    if not (ds / "manifest.json").exists():
        from sense_nodes.data.csi import srs_positioning
        _say(f"DiffLoc: no dataset in the cache; ray-tracing a small one ({sum(DIFFLOC_DEMO_USERS.values())} users "
             f"x {DIFFLOC_DEMO_SNAPSHOTS} snapshots, about a minute) -> {ds}")
        srs_positioning.generate(ds, seed=0, users=dict(DIFFLOC_DEMO_USERS), snapshots=DIFFLOC_DEMO_SNAPSHOTS,
                                 tiny=True, progress=sys.stderr.isatty())
    if not ck.exists():
        from sense_nodes.core.diffloc.dataset import load_positioning
        from sense_nodes.core.diffloc.training import TrainConfig, train
        from sense_nodes.data.csi.dataset import load_dataset
        _say(f"DiffLoc: no trained model in the cache; training a small consistency model "
             f"({DIFFLOC_DEMO_STEPS} steps per BS on one thread, about a minute) -> {ck}\n"
             f"  (the full one: sense data generate --kind diffloc; sense train diffloc --model ct)")
        t0 = time.monotonic()
        train(load_positioning(load_dataset(ds)), TrainConfig(model="ct", steps=DIFFLOC_DEMO_STEPS), ck,
              progress=True, log=lambda *_: None)
        _say(f"DiffLoc: trained in {time.monotonic() - t0:.0f} s, cached for the next run")
    else:
        _say(f"DiffLoc: using the cached demo model {ck}")
    return str(ds), str(ck), "test"


def fwa_assets() -> tuple[str, str]:
    """(dataset, split): the cache's full FWA dataset's test split when it
    exists, else a small one traced now (every sample: the shipped networks
    never saw this draw)."""
    from sense_nodes.data.csi.dataset import default_dir
    full = default_dir("fwa", False, 0)
    if (full / "manifest.json").exists():
        return str(full), "test"
    ds = full.with_name("fwa-demo-seed0")
    if not (ds / "manifest.json").exists():
        from sense_nodes.data.csi import fwa_pairs
        _say(f"FWA: no dataset in the cache; ray-tracing a small one ({FWA_DEMO_SAMPLES} samples of the "
             f"dataset's scene, new draws) -> {ds}")
        fwa_pairs.generate(ds, seed=FWA_DEMO_SEED, samples=FWA_DEMO_SAMPLES, progress=sys.stderr.isatty())
    return str(ds), ""


# --- running a deployment and collecting what it published ------------------
def _xyz(points) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in points], float).reshape(-1, 3)


def _truth_xyz(msg) -> np.ndarray:
    return _xyz([o.position for o in msg.objects])


# --- imaging -------------------------------------------------------------------
def imaging(frames: int = 24, rate: float = 2.0) -> tuple[dict, dict]:
    """Scenes of the off-grid simulator through the imager node; OSPA (Eq. 25)
    of its detections and the detection rate as the paper counts it (a UAV
    is detected by a target with a voxel within one voxel of the UAV's)."""
    from sense_nodes.eval.imaging_metrics import detection_counts, ospa

    def image(m):
        dims = tuple(int(d) for d in m.dimensions)
        return {"values": np.asarray(m.values, np.float32).reshape(dims) if np.prod(dims) else None,
                "origin": np.array([m.origin.x, m.origin.y, m.origin.z]), "voxel": np.asarray(m.voxel_size, float),
                "detections": _xyz(m.detections)}

    from sense_nodes.runtime.collect import run_and_collect
    got = run_and_collect("imaging", {"image": "/isac/image", "truth": "/isac/truth"},
                  {"image": image, "truth": _truth_xyz}, frames, rate)
    stamps = [s for s in sorted(got["image"]) if s in got["truth"] and got["image"][s]["values"] is not None]
    ospas, hit, total = [], 0, 0
    for s in stamps:
        img, true = got["image"][s], got["truth"][s]
        ospas.append(ospa(img["detections"], true))
        matched, n_true, _false, _n = detection_counts(img["values"], truth_grid(img, true))
        hit, total = hit + matched, total + n_true
    figures = {"imaging_scenes": len(stamps), "imaging_ospa_m": float(np.mean(ospas)) if ospas else float("nan"),
               "imaging_dr_pct": 100.0 * hit / max(total, 1)}
    last = stamps[-1] if stamps else None
    return figures, {"image": got["image"].get(last), "truth": got["truth"].get(last)}


def truth_grid(img: dict, true: np.ndarray) -> np.ndarray:
    """The label image of the true UAVs: 1 in the voxel holding each (the
    voxel centres lie at origin + index x size)."""
    grid = np.zeros(img["values"].shape, np.float32)
    idx = np.floor((true - img["origin"]) / img["voxel"] + 0.5).astype(int)
    if grid.shape[2] == 1:  # a 2-D image: the UAVs' heights are not imaged
        idx[:, 2] = 0
    for i in idx:
        if np.all(i >= 0) and np.all(i < grid.shape):
            grid[tuple(i)] = 1.0
    return grid


# --- DiffLoc -------------------------------------------------------------------
def diffloc(frames: int = 30, rate: float = 4.0) -> tuple[dict, dict]:
    """Test-split UEs through the DiffLoc server node; mean 2D error of the
    fused estimate, with the covariance the node publishes."""
    dataset, checkpoint, split = diffloc_assets()

    def estimate(m):
        return {"xy": np.array([m.position.x, m.position.y]),
                "cov": np.asarray(m.covariance, float).reshape(3, 3)[:2, :2], "bs": _xyz(m.source_positions)}

    from sense_nodes.runtime.collect import run_and_collect
    got = run_and_collect("diffloc", {"position": "/diffloc/position", "truth": "/diffloc/truth"},
                  {"position": estimate, "truth": _truth_xyz}, frames, rate,
                  {"/diffloc/csi_source": {"dataset": dataset, "split": split},
                   "/diffloc/diffloc_server": {"checkpoint": checkpoint}})
    stamps = [s for s in sorted(got["position"]) if s in got["truth"] and len(got["truth"][s])]
    est = np.array([got["position"][s]["xy"] for s in stamps]).reshape(-1, 2)
    true = np.array([got["truth"][s][0, :2] for s in stamps]).reshape(-1, 2)
    err = np.linalg.norm(est - true, axis=1)
    from sense_nodes.data.csi.dataset import read_manifest
    bs = np.asarray(read_manifest(dataset)["geometry"]["bs_pos_m"], float)[:, :2]
    figures = {"diffloc_ues": len(stamps), "diffloc_mean_error_cm": 100.0 * float(err.mean()) if len(err) else float("nan"),
               "diffloc_median_error_m": float(np.median(err)) if len(err) else float("nan"),
               "diffloc_model": checkpoint}
    return figures, {"est": est, "true": true, "cov": [got["position"][s]["cov"] for s in stamps], "bs": bs}


# --- FWA -----------------------------------------------------------------------
def fwa(frames: int = 20, rate: float = 2.0) -> tuple[dict, dict]:
    """BS-CPE CSI through the BS encoders and the fusion centre; missed
    detections and false alarms (Sec. VI) and the position error of the
    detected UAVs."""
    dataset, split = fwa_assets()

    def detection(m):
        return {"present": bool(m.uav_present), "p": float(m.presence_probability),
                "attention": np.asarray(m.attention, float), "valid": bool(m.position_valid),
                "xyz": np.array([m.position.x, m.position.y, m.position.z])}

    from sense_nodes.runtime.collect import run_and_collect
    got = run_and_collect("fwa", {"detection": "/fwa/detection", "truth": "/fwa/truth"},
                  {"detection": detection, "truth": _truth_xyz}, frames, rate,
                  {"/fwa/csi_source": {"dataset": dataset, "split": split}})
    stamps = [s for s in sorted(got["detection"]) if s in got["truth"]]
    present = np.array([len(got["truth"][s]) > 0 for s in stamps], bool)
    said = np.array([got["detection"][s]["present"] for s in stamps], bool)
    ape = [float(np.linalg.norm(got["detection"][s]["xyz"] - got["truth"][s][0])) for s in stamps
           if len(got["truth"][s]) and got["detection"][s]["present"] and got["detection"][s]["valid"]]
    figures = {"fwa_samples": len(stamps), "fwa_with_uav": int(present.sum()),
               "fwa_mdp_pct": 100.0 * float(np.mean(~said[present])) if present.any() else float("nan"),
               "fwa_fap_pct": 100.0 * float(np.mean(said[~present])) if (~present).any() else float("nan"),
               "fwa_ape_mean_m": float(np.mean(ape)) if ape else float("nan")}
    shown = next((s for s in reversed(stamps) if len(got["truth"][s]) and got["detection"][s]["present"]),
                 stamps[-1] if stamps else None)
    from sense_nodes.data.csi.dataset import read_manifest
    geo = read_manifest(dataset)["geometry"]
    return figures, {"detection": got["detection"].get(shown), "truth": got["truth"].get(shown),
                     "bs": np.asarray(geo["bs_pos_m"], float), "cpe": np.asarray(geo["cpe_pos_m"], float)}
